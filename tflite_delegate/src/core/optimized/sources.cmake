# Included by tflite_delegate/CMakeLists.txt. Sets TTQ_OPTIMIZED_SOURCES (relative to the
# tflite_delegate directory) with per-file ISA flags, and TTQ_KERNEL_TEST_SOURCES.
#
# Only the *_avx2.cc / *_avx512.cc files get ISA flags; everything that runs before the cpuid
# dispatch (dispatch.cc, cpu_features.cc, pack.cc, thread_pool.cc) is compiled for the baseline,
# so the library loads and falls back to the reference kernels on any x86-64 CPU.
# aarch64 adds the NEON families (sources_neon.cmake); other targets compile only the portable
# files (CreateKernel returns the reference kernel).
set(_ttq_opt_dir src/core/optimized)
set(TTQ_OPTIMIZED_SOURCES
  ${_ttq_opt_dir}/dispatch.cc
  ${_ttq_opt_dir}/cpu_features.cc
  ${_ttq_opt_dir}/pack.cc)

set(_ttq_is_x86_64 OFF)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|x64)$")
  set(_ttq_is_x86_64 ON)
endif()

if(_ttq_is_x86_64 AND NOT MSVC)
  set(_ttq_avx2_sources
    ${_ttq_opt_dir}/fully_connected_avx2.cc
    ${_ttq_opt_dir}/conv_avx2.cc
    ${_ttq_opt_dir}/depthwise_avx2.cc)
  set(_ttq_avx512_sources
    ${_ttq_opt_dir}/fully_connected_avx512.cc
    ${_ttq_opt_dir}/conv_avx512.cc)
  set_source_files_properties(${_ttq_avx2_sources} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma")
  set_source_files_properties(${_ttq_avx512_sources} PROPERTIES COMPILE_OPTIONS
    "-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mavx512vnni;-mavx2;-mfma;-Wno-maybe-uninitialized")
  set_source_files_properties(${_ttq_opt_dir}/dispatch.cc PROPERTIES COMPILE_DEFINITIONS
    "TTQ_HAVE_AVX512_KERNELS=1")
  list(APPEND TTQ_OPTIMIZED_SOURCES ${_ttq_avx2_sources} ${_ttq_avx512_sources})
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$" AND NOT MSVC)
  include(${CMAKE_CURRENT_LIST_DIR}/sources_neon.cmake)
else()
  # No ISA kernels in this build: dispatch and the ISA levels report the reference only.
  set_source_files_properties(${_ttq_opt_dir}/dispatch.cc ${_ttq_opt_dir}/cpu_features.cc
    PROPERTIES COMPILE_DEFINITIONS "TTQ_NO_X86_KERNELS=1")
endif()

set(TTQ_KERNEL_TEST_SOURCES tests/kernels_test.cc)
