# CADLINK Analytics — `make run` to try it, `make test` to check it.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
# No CADLINK_* defaults here: an exported one would override .env (the environment wins), and
# `cadlink` already defaults CADLINK_DATA_DIR to ./cadlink-data.

.PHONY: run test build install lint typecheck contracts bench clean services browser geoip screenshots

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

install: $(STAMP)

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

build: $(STAMP) $(NPM_STAMP)
	npm run --silent build

run: build geoip
	$(BIN)/cadlink init --ensure-admin admin@cadlink.local --demo
	@echo "Open http://127.0.0.1:8000 — credentials above (also in initial-admin-password in the data dir above)"
	$(BIN)/cadlink serve --host 127.0.0.1 --port 8000

# Local PostgreSQL/Redis and Debian's Chromium are needed by the test suite; Debian's
# tor-geoipdb (country data) by `make run` and the tests (best effort: apt needs root).
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start || true
	@redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true

browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium; }

geoip:
	@test -f /usr/share/tor/geoip || { apt-get update -qq && apt-get install -y -qq tor-geoipdb; } || echo "tor-geoipdb unavailable: countries will be unknown"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

test: build services browser geoip lint typecheck contracts
	$(BIN)/pytest -n 2 --dist loadfile

# The browser tests, saving their pages as the documentation's screenshots.
screenshots: build services browser
	CADLINK_TEST_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest -q tests/dashboard

bench: build
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules src/cadlink/web/static/t.js src/cadlink/web/static/app .pytest_cache .mypy_cache
