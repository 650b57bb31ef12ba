# Quick start: `make run` serves the API, `make test` runs the whole test suite.
# Both set up everything they need (virtual environment, PostgreSQL + PostGIS, migrations).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
# `make run` serves on PORT when it is set, else on the first free port from 8000 (it says which).
PORT ?= 8000

.PHONY: run test venv lint fmt typecheck stop-db bench-analytics bench

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@scripts/venv.sh "$(PYTHON)"
	@touch $@

run: venv
	@scripts/run.sh

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

# The OpenAPI document's linters and TypeScript tools (tests/openapi/package-lock.json), which
# tests/e2e/test_openapi_tools.py runs on the live document.
.PHONY: openapi-tools
test: openapi-tools
openapi-tools:
	@scripts/openapi-tools.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: venv
	$(VENV)/bin/mypy

# Stop the private PostgreSQL cluster (its data stays for the next run; `scripts/pg.sh where`
# says where: .pg/ in the checkout, or /var/lib/checkin-offers/... when run as root).
stop-db:
	@scripts/pg.sh stop

# Stop it and delete its data, password and SECRET_KEY for good (the next run makes a new one).
.PHONY: destroy-db
destroy-db:
	@scripts/pg.sh destroy

# Time every analytics call on a million check-ins (builds database co_bench_analytics).
bench-analytics: venv
	@if [ -z "$$DATABASE_URL" ]; then \
		scripts/pg.sh start >/dev/null && DATABASE_URL=$$(scripts/pg.sh url postgres) || exit 1; \
	fi; \
	APP_ENV=$${APP_ENV:-development} NFC_MASTER_KEY=$${NFC_MASTER_KEY:-$$(scripts/devkey.sh)} DATABASE_URL=$$DATABASE_URL .venv/bin/python -m bench.analytics $(ARGS)

# A check-in's cost against history: a venue with a million past check-ins and a regular with
# 10,000, main's offers/checkins.py and this tree's in one run (bench/history.py; builds
# database co_bench_history, rebuilt when older than an hour).
.PHONY: bench-history
bench-history: venv
	@if [ -z "$$DATABASE_URL" ]; then \
		scripts/pg.sh start >/dev/null && DATABASE_URL=$$(scripts/pg.sh url postgres) || exit 1; \
	fi; \
	APP_ENV=$${APP_ENV:-development} DATABASE_URL=$$DATABASE_URL .venv/bin/python -m bench.history $(ARGS)

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
