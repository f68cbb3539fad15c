# The only commands the README needs. Everything bootstraps itself: a bare machine with
# Python 3.11+ and make is enough.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
SOURCES := app tests migrations bench .ci

.PHONY: install run test lint format typecheck pytest migrate revision seed bench clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Python 3.11 or newer is required (PYTHON=$(PYTHON))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/sipas serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)

format: $(STAMP)
	$(BIN)/ruff check --fix $(SOURCES)
	$(BIN)/ruff format $(SOURCES)

typecheck: $(STAMP)
	$(BIN)/mypy

# The suite in parallel: one pytest-xdist worker per core, each on a database of its own
# (tests/conftest.py); `make pytest PYTEST_WORKERS=0` runs it in one process, and
# `make pytest PYTEST_ARGS=tests/api/test_plans.py` runs some of it.
PYTEST_WORKERS ?= auto
PYTEST_ARGS ?=
pytest: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test: lint typecheck pytest

migrate: $(STAMP)
	$(BIN)/sipas migrate

revision: $(STAMP)
	@test -n "$(m)" || { echo 'usage: make revision m="what changes"'; exit 1; }
	$(BIN)/alembic revision --autogenerate -m "$(m)"

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
