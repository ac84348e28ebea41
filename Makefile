# ptnudge — the commands people type. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DIR := .ptnudge/demo
# Test processes side by side (pytest-xdist): each test has its own databases, Redis keys
# and ports, so they never see each other.
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install prereqs demo run test test-fast lint fmt typecheck audit templates migrate bench clean

help: ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# setuptools tells every editable install "be careful with folders named like the
	@# package": information, not a problem, and noise in `make demo` on a fresh clone.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install ptnudge with test and dev tools

demo: $(STAMP) ## a fast-forwarded day for a demo patient, no server needed
	$(BIN)/ptnudge demo

run: $(STAMP) ## worker + beat + web on the configured backends (embedded by default)
	$(BIN)/ptnudge run

prereqs: ## what the suite needs besides .venv (Chromium: installed through apt as root)
	@.ci/prereqs

test: $(STAMP) prereqs ## the whole suite: SQLite and PostgreSQL, Redis, real workers, fake providers
	$(BIN)/ptnudge templates check
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) -m "not integration"
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) -m integration

test-fast: $(STAMP) ## unit tests only (no worker processes)
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) -m "not integration"

lint: $(STAMP) ## ruff, formatting and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: $(STAMP) ## mypy --strict only
	$(BIN)/mypy

audit: $(STAMP) ## known vulnerabilities in the installed dependencies (needs PyPI)
	$(BIN)/pip-audit --strict --skip-editable --progress-spinner off

fmt: $(STAMP) ## format and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

templates: $(STAMP) ## render every template against worst-case context
	$(BIN)/ptnudge templates check

migrate: $(STAMP) ## apply migrations to PTNUDGE_DATABASE_URL
	$(BIN)/ptnudge db upgrade

bench: $(STAMP) ## benchmarks (PostgreSQL + Redis on 127.0.0.1); prints tables
	$(BIN)/python bench/import_bench.py
	$(BIN)/python bench/pipeline_bench.py
	$(BIN)/python bench/send_bench.py
	$(BIN)/python bench/dispatch_bench.py
	$(BIN)/python bench/inbound_bench.py

clean: ## remove the venv, caches and local databases
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .ptnudge ptnudge.db ptnudge-broker.db
