# Two commands for a new machine:  make demo  (run the pipeline)  ·  make test  (run the tests; make test-fast skips e2e)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.beacon-installed
PEOPLE ?= 20000
DAYS ?= 3
UV_VERSION := 0.13.8

.PHONY: install demo test test-fast test-spark-demo test-journeys-thorough fuzz airflow-init lock bench bench-1m lint clean up down

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the lock or the project metadata changed.
$(STAMP): $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m pip check
	@touch $(STAMP)

install: $(STAMP)

airflow-init: install
	$(BIN)/python -c "from beacon.pipeline import ensure_airflow; print('Airflow home:', ensure_airflow())"

demo: install
	$(BIN)/beacon demo --people $(PEOPLE) --days $(DAYS)

# The import layers (.importlinter) are checked first: a broken contract fails CI before the suite runs.
# Deselected (opt-in, not skipped): the marker spark_demo, two whole demos (make test-spark-demo).
test: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -m "not spark_demo"

# The inner loop: everything but the end-to-end runs through Airflow (marker e2e).
test-fast: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -m "not e2e"

# On demand (not in CI's default set): `beacon demo` on DuckDB and on Spark over two days, summaries compared
# table for table (marker spark_demo; Java 17; docs/scale.md).
test-spark-demo: install
	$(BIN)/python -m pytest -p no:cacheprovider -m spark_demo tests/e2e/test_spark_demo.py

# On demand (not in CI): the journeys engine against its oracle on 500 random journeys x worlds (docs/testing.md).
test-journeys-thorough: install
	$(BIN)/python -m pytest -p no:cacheprovider tests/journeys/test_journeys_property.py \
	  --hypothesis-profile=journeys-thorough

# Every Hypothesis test randomized with a new seed (printed; SEED=<n> make fuzz replays it), beside CI's
# derandomized runs, which replay the same inputs every time.
# Every test file with a Hypothesis test (found, so a new fuzzer is never left out).
FUZZ_TESTS := $(shell grep -rl --include='*.py' '@given' tests | sort)
fuzz: install
	@seed=$${SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	  echo "make fuzz: hypothesis seed $$seed (replay: SEED=$$seed make fuzz)"; \
	  BEACON_FUZZ=1 $(BIN)/python -m pytest -p no:cacheprovider $(FUZZ_TESTS) --hypothesis-profile=fuzz \
	    --hypothesis-seed=$$seed; \
	  rc=$$?; echo "make fuzz: hypothesis seed $$seed, exit $$rc"; exit $$rc

lock: $(BIN)/python
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile -q --python-version 3.11 requirements.in -o requirements.lock

bench: install
	$(BIN)/beacon bench pipeline --people 20000 --json

bench-1m: install
	$(BIN)/beacon bench pipeline --people 1000000 --json

# Python style (ruff) and the dbt models' SQL style (sqlfluff, .sqlfluff; the dbt templater compiles the
# project, which needs a warehouse path but never reads the warehouse). Then the dialect check (beacon.dbt_dialect,
# docs/scale.md): the project compiled for Spark (a local Spark session: Java 17), every compiled model and test
# checked; fails on a DuckDB-only use that dbt_project/dialect_baseline.json does not list.
lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	@mkdir -p data
	BEACON_DBT_WAREHOUSE_PATH=$${BEACON_DBT_WAREHOUSE_PATH:-$(CURDIR)/data/sqlfluff.duckdb} \
	  $(BIN)/sqlfluff lint dbt_project/models
	BEACON_DBT_WAREHOUSE_PATH=$${BEACON_DBT_WAREHOUSE_PATH:-$(CURDIR)/data/sqlfluff.duckdb} \
	  $(BIN)/python -m beacon.dbt_dialect --project-dir dbt_project --target-dir data/dialect/target

# The real thing: scheduler, DAG processor, triggerer, API server on a local Postgres (beacon.stack; docs/operations.md).
# The warehouse is encrypted at rest: with BEACON_WAREHOUSE_KEY (or _FILE, _CONN) when set, else with a key generated
# once into the git-ignored .beacon/warehouse.key (keep a copy: without it the warehouse cannot be read; to use it
# from a shell, export BEACON_WAREHOUSE_KEY_FILE=.beacon/warehouse.key). docs/privacy.md "Encryption at rest".
up: install
	$(BIN)/beacon up

down: install
	$(BIN)/beacon down

clean:
	rm -rf data .airflow .airflow-test dbt_project/target dbt_project/logs
