# citearchive — `make run` and `make test` each do all set-up on a fresh Debian machine.
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp
PYTHON  ?= python3
TOOLS   := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed-stamp
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CONFIG  ?= config/citearchive.toml

.PHONY: install chromium ffmpeg services tools run test lint bench clean

install: $(STAMP) chromium ffmpeg

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# pywb and py-wacz (export tests): their own venv, they pin old redis/cryptography.
tools: $(TOOLS_STAMP)

$(TOOLS_STAMP):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --upgrade pip
	$(TOOLS)/bin/pip install -q pywb wacz
	touch $(TOOLS_STAMP)

# Debian's Chromium, driven by Playwright through executable_path (never `playwright install`).
chromium:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

# Debian's ffmpeg: ffprobe reads preserved media, ffmpeg merges HLS/DASH for yt-dlp.
ffmpeg:
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq ffmpeg; }

# Fleet tests start their own redis-server and PostgreSQL 15 (Debian's packages) on free
# ports; `make run` (SQLite, local folder) needs neither.
services:
	@command -v redis-server >/dev/null && test -x /usr/lib/postgresql/15/bin/initdb || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server postgresql-15; }

run: install
	$(BIN)/citearchive --config $(CONFIG) run-once --all
	$(BIN)/citearchive --config $(CONFIG) status

lint: $(STAMP)
	$(BIN)/ruff check .

test: install services tools lint
	$(BIN)/pytest -q

BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(BENCH_STAMP)

# Figures and ratios of one run, printed and written to bench/results/ (bench/README.md).
bench: install services $(BENCH_STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) archive .pytest_cache .ruff_cache
