# Cadenza: `make serve` runs the server, `make test` runs the whole suite.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
TORCH   := torch==2.13.0
STAMP   := $(VENV)/.installed
TSTAMP  := $(VENV)/.installed-test

# `make cluster`: Redis, PostgreSQL, the API and two Celery workers on this machine (deploy/cluster.py).
.PHONY: serve cluster screenshots test services lint install install-test train-drums eval-drums eval-separation bench soak clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Torch first, pinned to the CPU wheel, so no dependency pulls the CUDA build.
# TinySoundFont renders audio in tune (symusic 0.5.9's synthesizer does not); its wheel declares pyaudio, which
# only live playback needs and which does not build without PortAudio, so it is installed without dependencies.
TSF     := tinysoundfont==0.3.7
# The drums sampler is compiled by Numba once per machine and kept in its on-disk cache (~10 s): done here, so
# neither the first drums job nor every test process pays for it.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps $(TSF)
	$(BIN)/python -c "from cadenza.engines.drums.model import load_model; load_model()"
	touch $@

$(TSTAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(STAMP)
install-test: $(TSTAMP)

serve: $(STAMP)
	$(BIN)/cadenza serve

# Screenshots of Cadenza Studio's panels for the README (docs/img/studio-*.png), from the browser test.
screenshots: $(TSTAMP) services
	CADENZA_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/e2e/test_studio_browser.py -k offline

cluster: $(TSTAMP) services
	$(BIN)/python deploy/cluster.py

# Real services the tests drive, from Debian's packages (CI runs as root on a fresh machine):
# Chromium renders /docs offline; redis-server is the broker of the distributed (Celery) tests.
APT_PACKAGES := chromium redis-server
services:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else echo "make services: missing Debian packages:$$missing (install them as root)"; fi; \
	fi

test: $(TSTAMP) services
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
	for script in drums_model drums_job_breakdown melody api_latency jobs_pickup separation_rtf client_batch; do $(BIN)/python benchmarks/$$script.py || exit 1; done

# Not part of `make test`: ~11 min against a live server, e.g. SOAK_ARGS='--duration-s 120 --worker-kills 10'.
SOAK_ARGS ?=
soak: $(STAMP)
	$(BIN)/python benchmarks/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) var
