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

.PHONY: setup demo test test-python dataset clean delegate test-cpp build-deps test-fuzz test-tsan

setup: $(SETUP_STAMP) dataset delegate

$(SETUP_STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[test,litert,examples]"
	touch $(SETUP_STAMP)

# Real Fashion-MNIST, the offline default dataset (Debian package dataset-fashion-mnist).
dataset:
	@bash scripts/install_fashion_mnist.sh "$(FASHION_MNIST_DIR)"

# The main job: ResNet-20 TTQ on real Fashion-MNIST (offline), ~15 min on 2 cores; writes
# output_demo/report.md and prints the results table.
demo: setup
	$(PY) -m examples.cifar_resnet --demo --fashion_mnist_dir $(FASHION_MNIST_DIR)

test: setup test-cpp test-fuzz test-tsan test-python

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
	$(DELEGATE_FUZZ_BUILD)/fuzz_one_op $(FUZZ_FLAGS) \
	  -artifact_prefix=$(DELEGATE_FUZZ_BUILD)/run/ $(DELEGATE_FUZZ_BUILD)/run/one_op
	TTQ_TFLITE_C_LIB=$$(bash scripts/fetch_tflite_runtime.sh $(CURDIR)/$(DELEGATE_FUZZ_BUILD)/tflite_runtime) \
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
	rm -rf $(VENV) build *.egg-info $(DELEGATE_BUILD) $(DELEGATE_ASAN_BUILD) ttq_keras/lib \
	  $(DELEGATE_FUZZ_BUILD) $(DELEGATE_TSAN_BUILD)
