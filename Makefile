# Plinth: the two commands for a fresh machine are `make quickstart` and `make test`.
# Every install step lives here; nothing is installed by hand.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: quickstart test install install-test services-deps lint format bench clean constraints

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The quickstart trains a LightGBM model and a PyTorch MLP and serves the first, so it
# installs those two extras and the serving one.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install --quiet -e '.[torch,lightgbm,serve]' -c constraints.txt
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install --quiet -e '.[dev]' -c constraints.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## Run the end-to-end flights example on the embedded default (SQLite + local Delta tables).
quickstart: install
	$(BIN)/plinth quickstart

## PostgreSQL and Redis binaries for the integration tests (the test session starts and stops
## the servers; the S3-compatible server is moto, installed with the dev extra), and Chromium
## for the dashboard's browser tests.
services-deps:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then \
		echo "PostgreSQL binaries: found"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
		echo "PostgreSQL binaries are missing: install the 'postgresql' package (15 or newer)."; \
	fi
	@if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then \
		echo "redis-server: found"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	else \
		echo "redis-server is missing: install the 'redis-server' package."; \
	fi
	@if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then \
		echo "chromium: found"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "chromium is missing: install the 'chromium' package (the dashboard's browser tests drive it)."; \
	fi

## Lint, then the whole suite against real PostgreSQL, Redis and S3-compatible servers and a
## local Ray head (the test session starts and stops each of them).
test: install-test services-deps lint
	$(BIN)/python -m pytest

lint: install-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: install-test
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: install
	$(BIN)/python benchmarks/lake.py

clean:
	rm -rf $(VENV) .plinth .pytest_cache .ruff_cache test-artifacts src/*.egg-info

## Pin the versions of the test environment (run after changing dependencies, once make test passes).
constraints: install-test
	@(sed -n '1,3p' constraints.txt; $(PIP) freeze --exclude-editable | grep -v -E '^(plinth-ai|py-spy)') > constraints.new
	mv constraints.new constraints.txt
