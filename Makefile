# `make run` and `make test` are the README's two commands. Each installs what it needs first.
VENV    := .venv
PY      := $(VENV)/bin/python
PYTHON  ?= python3
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test install install-dev os-packages bench

run: install
	$(PY) app.py

test: install-dev os-packages
	$(PY) -m pytest

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed: requirements.txt package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	npm ci --no-audit --no-fund
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# The tests drive Debian's Chromium through Playwright (its own browser download cannot work
# here) and put the sample nginx configuration in front of the app.
os-packages:
	@[ -x $(CHROMIUM) ] && [ -x /usr/sbin/nginx ] || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq chromium nginx-light; }

# The benchmark (bench/run.py): relay vs direct vs naive at 10-2,000 streams, then the page's
# rendering of a 20,000-token reply; writes docs/benchmarks.md. About 10 minutes.
# BENCH_ARGS=--quick for a smoke run (10 and 100 streams, no rendering).
bench: install-dev
	$(PY) -m pip install --quiet -r bench/requirements.txt
	@[ -x $(CHROMIUM) ] || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }
	$(PY) bench/run.py $(BENCH_ARGS)
