# open-bess-edge: every target installs what it needs, so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
# Development environment (lint, type check, tests, benchmarks): the package with the dev extras
# (which include the train extras).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The demo's environment: the package and its runtime dependencies only, what an edge install
# gets with `pip install bessai`. A separate venv, so that `make demo` stays small and quick and
# a later `make test` still installs everything in $(VENV) (and the other way round).
RUN_VENV ?= .venv-run
RUN_STAMP := $(RUN_VENV)/.installed
# `make demo PORT=8001` serves the dashboard, API and metrics on that port (default: the
# configuration's gateway.http_port, 8000); ARGS go to `bessai run` as they are, e.g.
# `make demo ARGS='--duration-s 60'` or `make demo ARGS='--config examples/site.toml'`.
PORT ?=
ARGS ?=
# Debian packages the tests need, named after their binary: the brokers the telemetry tests start
# on free loopback ports, openssl (their throw-away TLS certificates) and the headless browser of
# the dashboard test, and prometheus (promtool and a real server for the deployment tests).
SYSTEM_DEPS := mosquitto nats-server openssl chromium prometheus
# The fleet tests start PostgreSQL (initdb/pg_ctl, off PATH under /usr/lib/postgresql).
PG_DEPS := postgresql

.PHONY: demo test lint typecheck pytest bench system-deps install install-run clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(RUN_VENV)
	$(RUN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(RUN_VENV)/bin/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

install: $(STAMP)

install-run: $(RUN_STAMP)

# Installed from Debian when missing.
system-deps:
	@missing=""; \
	for bin in $(SYSTEM_DEPS); do \
	  command -v $$bin >/dev/null 2>&1 || test -x /usr/sbin/$$bin || missing="$$missing $$bin"; \
	done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing $(PG_DEPS)"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

demo: $(RUN_STAMP)
	$(RUN_VENV)/bin/bessai run $(if $(PORT),--http-port $(PORT)) $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench deploy
	$(VENV)/bin/ruff format --check src tests bench deploy
	$(VENV)/bin/lint-imports --no-cache

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP) system-deps
	$(PY) -m pytest -q

test: lint typecheck pytest

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(RUN_VENV) .mypy_cache .ruff_cache .pytest_cache
