# CMake toolchain file: cross-compile the delegate and its gtests for aarch64 Linux (glibc) with
# Debian's g++-aarch64-linux-gnu, and run them under Debian's qemu-user (scripts/install_build_deps.sh
# installs both).
#
#   cmake -S tflite_delegate -B tflite_delegate/build-aarch64 -G Ninja \
#     -DCMAKE_TOOLCHAIN_FILE=tflite_delegate/cmake/aarch64-linux-gnu.cmake \
#     -DTTQ_TFLITE_INCLUDE_DIR=$PWD/tflite_delegate/build/tflite_headers/include
#   cmake --build tflite_delegate/build-aarch64
#   QEMU_CPU=cortex-a53 ctest --test-dir tflite_delegate/build-aarch64   # no dotprod
#   QEMU_CPU=max ctest --test-dir tflite_delegate/build-aarch64          # dotprod, i8mm
#
# ctest runs every test through CMAKE_CROSSCOMPILING_EMULATOR = qemu-aarch64 -L <sysroot>. The CPU
# model comes from QEMU_CPU in the environment (qemu-user reads it), or from -DTTQ_QEMU_CPU=<model>
# at configure time, which bakes `-cpu <model>` into the emulator command. `make test-aarch64`
# runs ctest once under cortex-a53 and once under max.
#
# Debian's libgtest-dev ships only x86-64 libraries, so a cross build compiles GoogleTest from
# its sources (TTQ_GTEST_SOURCE_DIR, default /usr/src/googletest, also from libgtest-dev).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(TTQ_CROSS_TRIPLE aarch64-linux-gnu)
set(TTQ_CROSS_SYSROOT /usr/${TTQ_CROSS_TRIPLE} CACHE PATH "aarch64 glibc/libstdc++ root (qemu -L)")

set(CMAKE_C_COMPILER ${TTQ_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${TTQ_CROSS_TRIPLE}-g++)

# Libraries and headers from the aarch64 sysroot only; build tools from the host.
set(CMAKE_FIND_ROOT_PATH ${TTQ_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(TTQ_GTEST_SOURCE_DIR /usr/src/googletest CACHE PATH
    "GoogleTest sources built into a cross build (Debian's libgtest-dev installs them here)")

set(TTQ_QEMU_CPU "" CACHE STRING
    "qemu-aarch64 -cpu model baked into the test command; empty = take QEMU_CPU from the environment")
find_program(TTQ_QEMU_AARCH64 qemu-aarch64)
if(TTQ_QEMU_AARCH64)
  set(_ttq_emulator "${TTQ_QEMU_AARCH64}" -L "${TTQ_CROSS_SYSROOT}")
  if(TTQ_QEMU_CPU)
    list(APPEND _ttq_emulator -cpu "${TTQ_QEMU_CPU}")
  endif()
  set(CMAKE_CROSSCOMPILING_EMULATOR "${_ttq_emulator}")
endif()
