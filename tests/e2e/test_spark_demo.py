"""`BEACON_ENGINE=spark beacon demo` runs the whole chain on a local Spark and prints the summary the DuckDB demo
prints on the same seed (issue 29, Done when 1).

Both demos run as `beacon demo --json` in a process of their own (Airflow's and Spark's settings are per process),
each in its own data folder, on the same tiny world over two days: day 2 exercises the hand-over from the control
plane (the sync log of day 1's sends, the journeys' logs, the scores) to the Spark build of measurement and of the
score-based segments, and the retraining decision that reads the drift of day 1's scores. Compared: every table of
the summary (raw layer and quarantine, warehouse rows, audiences, champion models and their holdout metrics,
training per day, the world's answers and measured lift); only the fields that name the engine, the run's own
folders or the stage timings may differ (RUN_SPECIFIC).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Opt-in (two whole demos, about 20 minutes on a loaded 2-core machine): `make test` deselects the marker
# spark_demo, `make test-spark-demo` runs this file.
pytestmark = [pytest.mark.e2e, pytest.mark.spark_demo]

PEOPLE, SEED, DAYS = 300, 29, 2
# What names the run rather than what it computed: the engine, its timings, the folders of its own data dir.
RUN_SPECIFIC = ("engine", "seconds", "model_report", "campaign_report", "exports_dir")


def _demo(engine: str, data: Path) -> dict:
    # Everything under this run's folder: the data, dbt's target (its parse is per engine), Airflow's home.
    env = {**os.environ, "BEACON_ENGINE": engine, "BEACON_DATA_DIR": str(data),
           "BEACON_DBT_TARGET_DIR": str(data / "target"), "AIRFLOW_HOME": str(data / ".airflow")}
    env.pop("BEACON_WAREHOUSE", None)
    beacon = str(Path(sys.executable).with_name("beacon"))
    done = subprocess.run([beacon, "demo", "--people", str(PEOPLE), "--seed", str(SEED), "--days", str(DAYS),
                           "--json"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{engine} demo failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    """Both demos' summaries; a demo that fails is an AssertionError in each test (with its stderr's tail)."""
    root = tmp_path_factory.mktemp("engines_demo")
    out: dict = {}
    for engine in ("duckdb", "spark"):
        try:
            out[engine] = _demo(engine, root / engine)
        except AssertionError as exc:
            out[engine] = exc
    return out


def _summary(demos: dict, engine: str) -> dict:
    if isinstance(demos[engine], AssertionError):
        raise demos[engine]
    return demos[engine]


# Known failure (2026-12-06): on day 2 the Spark build stops at the incremental model int_web_sessions_split ("source
# and target schemas ... out of sync": session_date read back as timestamp_ntz), so the spark demo exits 2 before
# its summary. Strict: once the model runs incrementally on Spark these pass and the marker must go.
DAY_TWO_ON_SPARK = pytest.mark.xfail(strict=True, raises=AssertionError,
                                     reason="int_web_sessions_split's incremental run fails on Spark on day 2")


@DAY_TWO_ON_SPARK
def test_the_summary_names_the_engine_it_ran_on(demos):
    duck, spark = _summary(demos, "duckdb"), _summary(demos, "spark")
    assert duck["engine"] == "duckdb" and spark["engine"] == "spark"
    assert spark["seconds"]["beacon_warehouse (day 2)"] > 0  # the whole chain ran, both days


@DAY_TWO_ON_SPARK
def test_the_spark_demo_prints_the_duckdb_demos_summary(demos):
    duck, spark = ({k: v for k, v in _summary(demos, e).items() if k not in RUN_SPECIFIC} for e in ("duckdb", "spark"))
    # Something to compare: ingested rows, customers, scores, audiences with members, trained champions.
    assert duck["raw"]["rows_loaded"] > 1000 and duck["warehouse"]["marts.dim_customers"] > 100
    assert duck["warehouse"]["ml.scores"] > 100 and any(a["members"] > 0 for a in duck["audiences"])
    assert duck["models"] and duck["training"]
    for table in duck:  # table by table, so a failure names the table that differs
        assert spark[table] == duck[table], table
    assert spark == duck
