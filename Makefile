# Quick start: `make run` serves the API, `make test` runs the whole test suite.
# Both set up everything they need (virtual environment, PostgreSQL + PostGIS, migrations).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PORT ?= 8000

.PHONY: run test venv lint fmt typecheck stop-db bench-analytics bench

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@scripts/venv.sh "$(PYTHON)"
	@touch $@

run: venv
	@PORT=$(PORT) scripts/run.sh

test: venv
	@scripts/test.sh $(ARGS)

# The timing side-channel micro-benchmarks (tests/integration/test_timing.py), on a quiet machine.
.PHONY: test-timing
test-timing: venv
	@scripts/test.sh -m timing $(ARGS)

# The dashboard's front-end assets: npm packages pinned by dashboard/package-lock.json, copied into
# api/dashboard/static (scripts/dashboard.sh, docs/dashboard.md). The browser tests also need its
# node_modules (axe-core), so `make test` insists on npm.
.PHONY: dashboard
run: dashboard
test: DASHBOARD_ARGS = --for-tests
test: dashboard
dashboard:
	@scripts/dashboard.sh $(DASHBOARD_ARGS)

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

# Time every analytics call on a million check-ins (builds database co_bench_analytics).
bench-analytics: venv
	@[ -n "$$DATABASE_URL" ] || { scripts/pg.sh start >/dev/null; }; \
	DATABASE_URL=$${DATABASE_URL:-$$(scripts/pg.sh url postgres)} .venv/bin/python -m bench.analytics $(ARGS)

# The demo personas against the server of `make run` (which loads the Helsinki demo on an empty
# database): a readable story of check-ins, unlocks, rejections and redemptions.
.PHONY: demo
demo: venv
	@$(VENV)/bin/python -m mobile_stub.demo run --url "http://127.0.0.1:$(PORT)" $(ARGS)

# What proof of presence costs the server: a tap's SUN verification, a tap check-in next to a GPS
# check-in (bench/presence.py; `make bench` runs it too). Writes bench/out/presence.json.
.PHONY: bench-presence
bench-presence: venv
	@[ -n "$$DATABASE_URL" ] || { scripts/pg.sh start >/dev/null; }; \
	DATABASE_URL=$${DATABASE_URL:-$$(scripts/pg.sh url postgres)} \
	NFC_MASTER_KEY=$${NFC_MASTER_KEY:-$$(scripts/devkey.sh)} .venv/bin/python -m bench.presence $(ARGS)

# The service at SCALE venues (10k, 100k or 1m) against its pgbench ceiling, with the realistic
# mix at peak and at 70%: writes bench/out/report.json and report.md (docs/performance.md).
# ARGS passes more options, e.g. ARGS="--reuse --servers gthread,granian,sync --scaling".
SCALE ?= 10k
bench: venv
	@scripts/bench.sh $(SCALE) $(ARGS)
