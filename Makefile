# Cadenza: `make serve` runs the server, `make test` runs the whole suite.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
TORCH   := torch==2.13.0
STAMP   := $(VENV)/.installed
TSTAMP  := $(VENV)/.installed-test

.PHONY: serve test lint install install-test train-drums eval-drums eval-separation bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Torch first, pinned to the CPU wheel, so no dependency pulls the CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e .
	touch $@

$(TSTAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(STAMP)
install-test: $(TSTAMP)

serve: $(STAMP)
	$(BIN)/cadenza serve

test: $(TSTAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(TSTAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

DATA ?= ../shared/data/groove
train-drums: $(STAMP)
	$(BIN)/cadenza train drums --data $(DATA)

eval-drums: $(STAMP)
	$(BIN)/cadenza eval drums --data $(DATA)

eval-separation: $(TSTAMP)
	$(BIN)/cadenza eval separation --data $(DATA)

bench: $(TSTAMP)
	for script in drums_model api_latency jobs_pickup separation_rtf; do $(BIN)/python benchmarks/$$script.py || exit 1; done

clean:
	rm -rf $(VENV) var
