# Quick start: `make run` serves the API, `make test` runs the whole test suite.
# Both set up everything they need (virtual environment, PostgreSQL + PostGIS, migrations).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PORT ?= 8000

.PHONY: run test venv lint fmt typecheck migrate clean-db

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@scripts/venv.sh "$(PYTHON)"
	@touch $@

run: venv
	@PORT=$(PORT) scripts/run.sh

test: venv
	@scripts/test.sh $(ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: venv
	$(VENV)/bin/mypy

# Stop the private PostgreSQL cluster (it keeps its data in .pg/ for the next run).
stop-db:
	@scripts/pg.sh stop
