# ttq_keras developer commands. `make demo` and `make test` are the README's Quickstart.
# Everything installs into .venv in the repository root; `make setup` is idempotent.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SETUP_STAMP := $(VENV)/.ttq-setup-stamp
FASHION_MNIST_DIR ?= /usr/share/datasets/fashion-mnist
# Pytest workers are not used: TF already uses both cores.
PYTEST_ARGS ?=

.PHONY: setup demo test test-python dataset clean delegate test-cpp build-deps lint test-aarch64
.PHONY: runtime-matrix aarch64-e2e jni-host tflite-runtime-venv test-runtime-matrix
.PHONY: test-fuzz test-tsan

setup: $(SETUP_STAMP) dataset delegate

$(SETUP_STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[test,litert,examples,lint]"
	touch $(SETUP_STAMP)

# Real Fashion-MNIST, the offline default dataset (Debian package dataset-fashion-mnist).
dataset:
	@bash scripts/install_fashion_mnist.sh "$(FASHION_MNIST_DIR)"

# The main job: ResNet-20 TTQ on real Fashion-MNIST (offline), ~15 min on 2 cores; writes
# output_demo/report.md and prints the results table.
demo: setup
	$(PY) -m examples.cifar_resnet --demo --fashion_mnist_dir $(FASHION_MNIST_DIR)

test: setup lint test-cpp test-aarch64 test-fuzz test-tsan test-python

# Check-only lint with the versions pinned in setup.cfg's `lint` extra (black and isort settings:
# pyproject.toml and setup.cfg; C++ style: tflite_delegate/.clang-format). It changes no file:
# `$(VENV)/bin/black $(LINT_PYTHON)`, `$(VENV)/bin/isort $(LINT_PYTHON)` and
# `$(VENV)/bin/clang-format -i --style=file:$(CLANG_FORMAT_STYLE) FILES` fix what it reports.
LINT_PYTHON ?= ttq_keras tests examples benchmarks scripts
CLANG_FORMAT_STYLE := tflite_delegate/.clang-format
LINT_CPP ?= $(shell git ls-files 'tflite_delegate/*.cc' 'tflite_delegate/*.h')

lint: $(SETUP_STAMP)
	$(VENV)/bin/flake8 $(LINT_PYTHON)
	$(VENV)/bin/isort --check-only --diff $(LINT_PYTHON)
	$(VENV)/bin/black --check $(LINT_PYTHON)
	$(VENV)/bin/clang-format --dry-run -Werror --style=file:$(CLANG_FORMAT_STYLE) $(LINT_CPP)

test-python: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# The C++ TFLite delegate (tflite_delegate/): Release build, installed as
# ttq_keras/lib/libttq_delegate.so. The TFLite headers come from a pinned registry artifact
# (scripts/fetch_tflite_headers.sh); the Debian build tools from scripts/install_build_deps.sh.
DELEGATE_DIR := tflite_delegate
DELEGATE_BUILD := $(DELEGATE_DIR)/build
DELEGATE_ASAN_BUILD := $(DELEGATE_DIR)/build-asan
DELEGATE_LIB := ttq_keras/lib/libttq_delegate.so

build-deps:
	@bash scripts/install_build_deps.sh

delegate: build-deps
	cmake -S $(DELEGATE_DIR) -B $(DELEGATE_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release
	cmake --build $(DELEGATE_BUILD) --target ttq_delegate
	mkdir -p $(dir $(DELEGATE_LIB))
	cp $(DELEGATE_BUILD)/libttq_delegate.so $(DELEGATE_LIB)

# gtest suites, then the same suites built with AddressSanitizer + UndefinedBehaviorSanitizer.
test-cpp: delegate
	cmake --build $(DELEGATE_BUILD)
	ctest --test-dir $(DELEGATE_BUILD) --output-on-failure
	cmake -S $(DELEGATE_DIR) -B $(DELEGATE_ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DTTQ_SANITIZE=ON -DTTQ_TFLITE_INCLUDE_DIR=$(CURDIR)/$(DELEGATE_BUILD)/tflite_headers/include
	cmake --build $(DELEGATE_ASAN_BUILD)
	ctest --test-dir $(DELEGATE_ASAN_BUILD) --output-on-failure

# The delegate and its gtests cross-compiled for aarch64 Linux (g++-aarch64-linux-gnu), run under
# qemu-aarch64 once per CPU model: cortex-a53 has no dotprod (plain NEON kernels), max has dotprod
# and i8mm (SDOT kernels). Each entry is <qemu -cpu model>:<kernel family kernels_test must see
# selected>; the selected kernel of every op and mode is printed after each ctest run.
DELEGATE_AARCH64_BUILD := $(DELEGATE_DIR)/build-aarch64
AARCH64_TOOLCHAIN := $(DELEGATE_DIR)/cmake/aarch64-linux-gnu.cmake
AARCH64_QEMU_CPUS ?= cortex-a53:neon max:neon_dotprod
AARCH64_SYSROOT := /usr/aarch64-linux-gnu

test-aarch64: delegate
	cmake -S $(DELEGATE_DIR) -B $(DELEGATE_AARCH64_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/$(AARCH64_TOOLCHAIN) \
	  -DTTQ_TFLITE_INCLUDE_DIR=$(CURDIR)/$(DELEGATE_BUILD)/tflite_headers/include
	cmake --build $(DELEGATE_AARCH64_BUILD)
	set -e; for entry in $(AARCH64_QEMU_CPUS); do \
	  cpu=$${entry%%:*}; isa=$${entry##*:}; \
	  echo "== aarch64 ctest under qemu-aarch64 -cpu $$cpu (expects the $$isa kernels) =="; \
	  QEMU_CPU=$$cpu TTQ_EXPECTED_ISA=$$isa ctest --test-dir $(DELEGATE_AARCH64_BUILD) \
	    --output-on-failure; \
	  QEMU_CPU=$$cpu TTQ_EXPECTED_ISA=$$isa qemu-aarch64 -L $(AARCH64_SYSROOT) \
	    $(DELEGATE_AARCH64_BUILD)/kernels_test --gtest_filter='NeonDispatchTest.*' \
	    | grep '^\[ kernels'; \
	done

# The runtime matrix (issue 8). `make test` runs it inside test-python (pytest), after building:
# - aarch64-e2e: the aarch64 delegate and tools/tflite_runner (the cross build above) and
#   TFLite 2.18's C API for aarch64 (pinned Maven artifact) -> tests/aarch64_e2e_test.py
#   runs the packed test models under qemu-aarch64 -cpu cortex-a53 / max (and the x86 build of
#   the runner with the x86-64 artifact, without qemu);
# - jni-host: a host build of the JNI shim, the pinned tensorflow-lite-api classes.jar and the
#   JavaCPP TFLite 2.18 jars -> tests/jni_test.py runs TtqDelegate on the host JVM, alone and
#   inside a real TFLite interpreter;
# - tflite-runtime-venv: tflite_runtime 2.14 with numpy<2 in its own venv
#   -> tests/tflite_runtime_test.py.
# LiteRT 2.3 and TF 2.21 tf.lite are in the main venv (tests/delegate_test.py).
TFLITE_C_API_AARCH64_DIR := $(DELEGATE_AARCH64_BUILD)/tflite_c_api
DELEGATE_JNI_BUILD := $(DELEGATE_BUILD)
TFLITE_RUNTIME_VENV := .venv-tflite-runtime
TFLITE_RUNTIME_STAMP := $(TFLITE_RUNTIME_VENV)/.ttq-stamp

runtime-matrix: aarch64-e2e jni-host tflite-runtime-venv
test-python: runtime-matrix

aarch64-e2e: delegate
	cmake -S $(DELEGATE_DIR) -B $(DELEGATE_AARCH64_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/$(AARCH64_TOOLCHAIN) \
	  -DTTQ_TFLITE_INCLUDE_DIR=$(CURDIR)/$(DELEGATE_BUILD)/tflite_headers/include
	cmake --build $(DELEGATE_AARCH64_BUILD) --target ttq_delegate tflite_runner
	bash scripts/fetch_pinned_artifact.sh tflite-c-api-linux-arm64 $(TFLITE_C_API_AARCH64_DIR)
	cmake --build $(DELEGATE_BUILD) --target tflite_runner
	bash scripts/fetch_pinned_artifact.sh tflite-c-api-linux-x86_64 $(DELEGATE_BUILD)/tflite_c_api

# The JNI shim is built in the main build (it reuses its core objects): the option stays on.
jni-host: delegate
	cmake -S $(DELEGATE_DIR) -B $(DELEGATE_BUILD) -DTTQ_BUILD_JNI=ON
	cmake --build $(DELEGATE_BUILD) --target ttq_delegate_jni
	set -e; for a in tflite-java-api javacpp javacpp-linux-x86_64 tflite-bytedeco \
	    tflite-bytedeco-linux-x86_64; do \
	  bash scripts/fetch_pinned_artifact.sh $$a $(DELEGATE_JNI_BUILD)/java; \
	done

tflite-runtime-venv: $(TFLITE_RUNTIME_STAMP)

$(TFLITE_RUNTIME_STAMP): scripts/tflite_runtime_requirements.txt
	test -x $(TFLITE_RUNTIME_VENV)/bin/python || $(PYTHON) -m venv $(TFLITE_RUNTIME_VENV)
	$(TFLITE_RUNTIME_VENV)/bin/pip install --quiet -r scripts/tflite_runtime_requirements.txt
	touch $@

# Only the matrix's own tests (the full suite runs them too).
test-runtime-matrix: setup runtime-matrix
	$(PY) -m pytest $(PYTEST_ARGS) tests/aarch64_e2e_test.py tests/jni_test.py \
	  tests/tflite_runtime_test.py

# libFuzzer targets (clang, ASan + UBSan; tflite_delegate/fuzz/README.md), each for a bounded
# time: the structured one-op fuzzer, and raw .tflite bytes through TFLite 2.18's C API (pinned
# Maven artifact) seeded with the hostile corpus and the converter's models in tests/data/hostile/.
DELEGATE_FUZZ_BUILD := $(DELEGATE_DIR)/build-fuzz
FUZZ_SECONDS ?= 30
FUZZ_FLAGS = -max_total_time=$(FUZZ_SECONDS) -malloc_limit_mb=256 -rss_limit_mb=2048 \
  -print_final_stats=1 -seed=1 -timeout=10
test-fuzz: delegate
	CC=clang CXX=clang++ cmake -S $(DELEGATE_DIR) -B $(DELEGATE_FUZZ_BUILD) -G Ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTTQ_SANITIZE=ON -DTTQ_BUILD_FUZZERS=ON \
	  -DTTQ_BUILD_TESTS=OFF -DTTQ_TFLITE_INCLUDE_DIR=$(CURDIR)/$(DELEGATE_BUILD)/tflite_headers/include
	cmake --build $(DELEGATE_FUZZ_BUILD) --target fuzz_one_op fuzz_tflite_file
	rm -rf $(DELEGATE_FUZZ_BUILD)/run && mkdir -p $(DELEGATE_FUZZ_BUILD)/run/one_op $(DELEGATE_FUZZ_BUILD)/run/file
	cp tests/data/hostile/*.tflite $(DELEGATE_FUZZ_BUILD)/run/file/
	cp $(DELEGATE_DIR)/fuzz/regressions/one_op/* $(DELEGATE_FUZZ_BUILD)/run/one_op/
	cp $(DELEGATE_DIR)/fuzz/regressions/file/* $(DELEGATE_DIR)/fuzz/seeds/* $(DELEGATE_FUZZ_BUILD)/run/file/
	$(DELEGATE_FUZZ_BUILD)/fuzz_one_op $(FUZZ_FLAGS) \
	  -artifact_prefix=$(DELEGATE_FUZZ_BUILD)/run/ $(DELEGATE_FUZZ_BUILD)/run/one_op
	bash scripts/fetch_pinned_artifact.sh tflite-c-api-linux-x86_64 $(DELEGATE_FUZZ_BUILD)/tflite_runtime
	TTQ_TFLITE_C_LIB=$(CURDIR)/$(DELEGATE_FUZZ_BUILD)/tflite_runtime/libjnitensorflowlite.so \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/$(DELEGATE_DIR)/fuzz/lsan_suppressions.txt \
	  $(DELEGATE_FUZZ_BUILD)/fuzz_tflite_file $(FUZZ_FLAGS) -max_len=65536 \
	  -artifact_prefix=$(DELEGATE_FUZZ_BUILD)/run/ $(DELEGATE_FUZZ_BUILD)/run/file

# The gtests (kernels with their thread pool, the delegate glue, concurrent delegates) built
# with ThreadSanitizer (clang); any reported race fails.
DELEGATE_TSAN_BUILD := $(DELEGATE_DIR)/build-tsan
test-tsan: delegate
	CC=clang CXX=clang++ cmake -S $(DELEGATE_DIR) -B $(DELEGATE_TSAN_BUILD) -G Ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTTQ_TSAN=ON \
	  -DTTQ_TFLITE_INCLUDE_DIR=$(CURDIR)/$(DELEGATE_BUILD)/tflite_headers/include
	cmake --build $(DELEGATE_TSAN_BUILD)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	  ctest --test-dir $(DELEGATE_TSAN_BUILD) --output-on-failure

clean:
	rm -rf $(VENV) build *.egg-info $(DELEGATE_BUILD) $(DELEGATE_ASAN_BUILD) \
	  $(DELEGATE_AARCH64_BUILD) $(DELEGATE_FUZZ_BUILD) $(DELEGATE_TSAN_BUILD) ttq_keras/lib \
	  $(TFLITE_RUNTIME_VENV)
