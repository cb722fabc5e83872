# `make run` and `make test` are the README's two commands. Each installs what it needs first.
VENV    := .venv
PY      := $(VENV)/bin/python
PYTHON  ?= python3
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test lint lock install install-dev os-packages bench bench-wheels

run: install
	$(PY) app.py

# The linters first: they take seconds, the tests minutes.
test: install-dev os-packages lint
	$(PY) -m pytest

# Style and bugs (ruff), types (mypy), and the import contracts between packages (import-linter);
# all three read their settings from pyproject.toml.
lint: install-dev
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The lock files pin every package exactly; requirements*.txt are the floors they are made from.
$(VENV)/.installed: requirements.lock package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	npm ci --no-audit --no-fund
	touch $@

$(VENV)/.installed-dev: requirements-dev.lock $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.lock
	touch $@

# After editing requirements.txt or requirements-dev.txt: regenerate both lock files (pip-tools is
# needed only here, not to install). The dev lock is constrained by the app's lock, so the two
# agree on every package they share. `make lock PIP_COMPILE_ARGS=--upgrade` moves every pin to
# the newest release; `PIP_COMPILE_ARGS="--upgrade-package flask"` moves one.
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --strip-extras \
	--allow-unsafe --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
	$(PIP_COMPILE_ARGS)
lock:
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet pip-tools
	$(PIP_COMPILE) --output-file requirements.lock requirements.txt
	$(PIP_COMPILE) --constraint requirements.lock --output-file requirements-dev.lock requirements-dev.txt

# The tests drive Debian's Chromium through Playwright (its own browser download cannot work
# here) and put the sample nginx configuration in front of the app. Chinese in the screenshots
# needs a CJK font (Noto Sans CJK), which a bare Debian lacks.
os-packages:
	@[ -x $(CHROMIUM) ] && [ -x /usr/sbin/nginx ] && [ -x /usr/bin/openssl ] || { \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium nginx-light openssl; }
	@dpkg -s fonts-noto-cjk >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq fonts-noto-cjk; }

# The benchmark (bench/run.py): relay vs direct vs naive at 10-2,000 streams, then the page's
# rendering of a 20,000-token reply; writes docs/benchmarks.md. About 10 minutes.
# BENCH_ARGS=--quick for a smoke run (10 and 100 streams, no rendering).
bench: install-dev
	$(PY) -m pip install --quiet -r bench/requirements.txt
	@[ -x $(CHROMIUM) ] || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }
	$(PY) bench/run.py $(BENCH_ARGS)

# The app's packages as wheels in .whl/, for a machine that reaches no package registry: the
# bigger machine the benchmark is run on when one is lent (docs/benchmarks.md, "On a machine
# with more cores"). WHEEL_PYTHON is that machine's Python; x86-64 Linux.
WHEEL_PYTHON ?= 3.12
bench-wheels: install
	rm -rf .whl
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version $(WHEEL_PYTHON) \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 --dest .whl --requirement requirements.lock
