# libFuzzer targets (clang only), included by ../CMakeLists.txt when TTQ_BUILD_FUZZERS is ON.
# Configure with CC=clang CXX=clang++ -DTTQ_SANITIZE=ON -DTTQ_BUILD_FUZZERS=ON; every
# library is then compiled with -fsanitize=fuzzer-no-link (coverage) and the targets link
# libFuzzer's main. See fuzz/README.md.
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "TTQ_BUILD_FUZZERS needs clang (libFuzzer); got ${CMAKE_CXX_COMPILER_ID}")
endif()

# fuzz_one_op: structured, one TTQ op on a hand-built TfLiteContext.
add_executable(fuzz_one_op fuzz/fuzz_one_op.cc src/ttq_delegate.cc src/input_affine.cc
                           src/external_delegate_adaptor.cc)
# fuzz_tflite_file: raw .tflite bytes through TFLite 2.18's C API (dlopen'ed at start-up).
add_executable(fuzz_tflite_file fuzz/fuzz_tflite_file.cc src/ttq_delegate.cc src/input_affine.cc
                                src/external_delegate_adaptor.cc)
foreach(_fuzzer fuzz_one_op fuzz_tflite_file)
  target_include_directories(${_fuzzer} PRIVATE "${PROJECT_SOURCE_DIR}/include"
                                                "${PROJECT_SOURCE_DIR}/src"
                                                "${TTQ_TFLITE_INCLUDE_DIR}")
  target_link_libraries(${_fuzzer} PRIVATE ttq_options ttq_core ${CMAKE_DL_LIBS})
  target_compile_options(${_fuzzer} PRIVATE ${TTQ_WARNINGS})
  target_link_options(${_fuzzer} PRIVATE -fsanitize=fuzzer)
endforeach()
