#!/usr/bin/env bash
# Installs the Debian packages the C++ delegate build needs, only when one is missing:
# cmake, ninja, g++, GoogleTest, Maven (to fetch the TFLite headers) and unzip; for the aarch64
# cross build (make test-aarch64): g++-aarch64-linux-gnu and qemu-user. The aarch64 GoogleTest is
# built from /usr/src/googletest (installed by libgtest-dev) inside the cross build.
# For the fuzzers and the ThreadSanitizer build (make test-fuzz, make test-tsan): clang with its
# libFuzzer / ThreadSanitizer runtimes.
set -euo pipefail

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v ninja >/dev/null || need+=(ninja-build)
command -v g++ >/dev/null || need+=(g++)
command -v mvn >/dev/null || need+=(maven)
command -v unzip >/dev/null || need+=(unzip)
[[ -f /usr/include/gtest/gtest.h && -f /usr/src/googletest/CMakeLists.txt ]] || need+=(libgtest-dev)
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
# The Java binding's host test (make jni-host, tests/jni_test.py): a JDK for javac, java, jni.h.
command -v javac >/dev/null || need+=(default-jdk-headless)
# clang with the libFuzzer and ThreadSanitizer runtimes (make test-fuzz, make test-tsan).
command -v clang++ >/dev/null || need+=(clang)
compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null ||
  need+=(libclang-rt-14-dev)

if ((${#need[@]})); then
  echo "install_build_deps: installing ${need[*]}" >&2
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
