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

.PHONY: setup demo test test-python dataset clean

setup: $(SETUP_STAMP) dataset

$(SETUP_STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[test,litert,examples]"
	touch $(SETUP_STAMP)

# Real Fashion-MNIST, the offline default dataset (Debian package dataset-fashion-mnist).
dataset:
	@bash scripts/install_fashion_mnist.sh "$(FASHION_MNIST_DIR)"

demo: setup
	$(PY) -m ttq_keras.demo

test: setup test-python

test-python: setup
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
