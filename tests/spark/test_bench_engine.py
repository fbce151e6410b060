"""`beacon bench engine`: its arguments, the two pipelines' stages and the engines they run on, their pairing side by
side, the medians it reports and the JVM heap it sets."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from beacon.bench import engine_stages
from beacon.bench.engine import bench_engine, spark_driver_memory, summarize
from beacon.bench.engine_stages import STEPS
from beacon.cli import build_parser


def test_the_engine_is_one_of_two_and_an_unknown_one_is_refused(capsys):
    args = build_parser().parse_args(["bench", "engine", "--people", "500", "--json"])
    assert (args.engine, args.people, args.repeat) == ("spark", 500, 1)
    assert (args.spark_driver_memory, args.duckdb_memory_limit) == (None, None)
    args = build_parser().parse_args(["bench", "engine", "--spark-driver-memory", "6g", "--duckdb-memory-limit",
                                      "3GB"])
    assert (args.spark_driver_memory, args.duckdb_memory_limit) == ("6g", "3GB")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "engine", "--engine", "snowflake"])
    assert "invalid choice: 'snowflake'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown engine 'trino'"):
        bench_engine("trino", people=10)
    with pytest.raises(ValueError, match="at least 1"):
        bench_engine("duckdb", people=10, repeat=0)


def test_the_jvm_heap_grows_with_the_world_within_bounds():
    assert spark_driver_memory(2_000) == "2g"
    assert spark_driver_memory(500_000) == "4g"  # 3.5, up
    assert spark_driver_memory(1_000_000) == "6g"
    assert spark_driver_memory(50_000_000) == "8g"


def _stage(stage: str, pipeline: str, engine: str, sec: float, cpu: float, mb: float = 100.0) -> dict:
    return {"stage": stage, "pipeline": pipeline, "engine": engine, "seconds": sec, "cpu_seconds": cpu,
            "peak_memory_mb": mb}


def _run(ingest: float, build_duck: float, build_spark: float, peak: float) -> dict:
    ingest_step, session, build = STEPS[0], STEPS[1], STEPS[2]
    return {"stages": [_stage("generate", "shared", "python", 1.0, 1.0),
                       _stage(ingest_step, "duckdb", "duckdb", ingest, ingest / 2),
                       _stage(build, "duckdb", "duckdb", build_duck, build_duck),
                       _stage(ingest_step, "spark", "duckdb (control plane)", ingest + 1, ingest),
                       _stage(session, "spark", "spark", 10.0, 5.0),
                       _stage(build, "spark", "spark", build_spark, 2 * build_spark, peak)],
            "peak_memory_mb": {"duckdb": peak, "spark": 2 * peak}}


def test_each_stage_is_reported_at_its_median_and_paired_with_the_other_pipeline():
    d = summarize([_run(1.0, 5.0, 50.0, 100), _run(3.0, 4.0, 70.0, 300), _run(2.0, 9.0, 60.0, 200)])
    assert [s["seconds"] for s in d["stages"]] == [1.0, 2.0, 5.0, 3.0, 10.0, 60.0]
    assert d["stages"][5]["cpu_seconds"] == 120.0 and d["stages"][5]["peak_memory_mb"] == 200.0
    # generate is shared (neither pipeline's); the session has no DuckDB counterpart
    assert d["side_by_side"] == [
        {"stage": STEPS[0], "duckdb": 2.0, "duckdb_cpu_seconds": 1.0, "spark": 3.0, "spark_cpu_seconds": 2.0,
         "ran_on": {"duckdb": "duckdb", "spark": "duckdb (control plane)"}},
        {"stage": STEPS[1], "spark": 10.0, "spark_cpu_seconds": 5.0, "ran_on": {"spark": "spark"}},
        {"stage": STEPS[2], "duckdb": 5.0, "duckdb_cpu_seconds": 5.0, "spark": 60.0, "spark_cpu_seconds": 120.0,
         "ran_on": {"duckdb": "duckdb", "spark": "spark"}}]
    assert d["total"] == {"duckdb": {"seconds": 7.0, "cpu_seconds": 6.0},
                          "spark": {"seconds": 73.0, "cpu_seconds": 127.0}}
    assert d["peak_memory_mb"] == {"duckdb": 200, "spark": 400}


@pytest.fixture
def recorded(monkeypatch):
    """The engines' work replaced by recorders (each call: its name, BEACON_ENGINE and data folder): what this test
    checks is which function each stage of each pipeline runs, with which settings, not the engines themselves
    (tests/dbt/test_spark_engine.py holds their results equal; docs/benchmarks.md has the measured runs)."""
    import ml.score
    import ml.train
    from beacon.spark import chain, session

    calls: list[tuple[str, str, str]] = []

    def rec(name, result):
        def fn(*args, **kwargs):
            from beacon.config import settings

            s = settings()
            calls.append((name, s.engine, s.data_dir.name))
            return result
        return fn

    scored = {"models": {"lead_score": {"rows": 7}, "churn": {"rows": 3}}}
    trained = {"models": {"lead_score": {"train_rows": 5}}, "failed": {}}
    monkeypatch.setattr(engine_stages, "dbt_build", rec("dbt build", {"results": [{"unique_id": "m", "execution_time":
                                                                                     0.1}]}))
    monkeypatch.setattr(ml.train, "train_scheduled", rec("train_scheduled", trained))
    monkeypatch.setattr(ml.score, "score_all", rec("duckdb score_all", scored))
    stopped = []
    monkeypatch.setattr(session, "session", rec("session", SimpleNamespace(stop=lambda: stopped.append(True))))
    monkeypatch.setattr(chain, "build_warehouse", rec("build_warehouse", {"models": 60, "raw_tables": 9}))
    monkeypatch.setattr(chain, "score_all", rec("spark score_all", scored))
    monkeypatch.setattr(chain, "build_score_based", rec("build_score_based", {"views": 1}))
    monkeypatch.setattr(chain, "build_measurement", rec("build_measurement", {"views": 1}))
    return calls, stopped


def test_both_pipelines_run_their_dags_functions_on_one_world_in_their_own_folders(recorded, tmp_path):
    calls, stopped = recorded
    d = bench_engine("spark", people=60, seed=3, workdir=tmp_path, driver_memory="3g", duckdb_memory_limit="1GB")
    assert calls == [("dbt build", "duckdb", "duckdb"),
                     ("train_scheduled", "duckdb", "duckdb"), ("duckdb score_all", "duckdb", "duckdb"),
                     ("dbt build", "duckdb", "duckdb"), ("dbt build", "duckdb", "duckdb"),
                     ("session", "spark", "spark"), ("build_warehouse", "spark", "spark"),
                     ("train_scheduled", "spark", "spark"), ("spark score_all", "spark", "spark"),
                     ("build_score_based", "spark", "spark"), ("build_measurement", "spark", "spark")]
    assert stopped == [True]
    # the same landing files, ingested (for real) once by each pipeline into its own warehouse
    assert d["duckdb"]["rows_loaded"] == d["spark"]["rows_loaded"] > 0
    assert (tmp_path / "duckdb" / "warehouse" / "beacon.duckdb").exists()
    assert (tmp_path / "spark" / "warehouse" / "beacon.duckdb").exists()
    assert [(r["stage"], r["ran_on"]) for r in d["side_by_side"]] == [
        (STEPS[0], {"duckdb": "duckdb", "spark": "duckdb (control plane)"}), (STEPS[1], {"spark": "spark"}),
        (STEPS[2], {"duckdb": "duckdb", "spark": "spark"}),
        (STEPS[3], {"duckdb": "duckdb", "spark": "node (Spark's Parquet)"}),
        *((step, {"duckdb": "duckdb", "spark": "spark"}) for step in STEPS[4:])]
    by = {(s["pipeline"], s["stage"]): s for s in d["stages"]}
    assert by[("spark", STEPS[4])]["rows"] == by[("duckdb", STEPS[4])]["rows"] == 10
    assert all(s["seconds"] >= 0 and s["cpu_seconds"] >= 0 and s["peak_memory_mb"] > 0 for s in d["stages"])
    assert d["total"]["spark"]["seconds"] == pytest.approx(sum(s["seconds"] for s in d["stages"]
                                                               if s["pipeline"] == "spark"), abs=0.02)
    assert set(d["peak_memory_mb"]) == {"generate", "duckdb", "spark"}
    assert d["memory_settings"] == {"spark_driver_memory": "3g", "duckdb_memory_limit": "1GB"}
    assert "control plane" in d["not_timed"]


def test_the_duckdb_engine_alone_runs_no_spark_stage(recorded, tmp_path):
    calls, _ = recorded
    d = bench_engine("duckdb", people=60, seed=3, workdir=tmp_path)
    assert {c[1] for c in calls} == {"duckdb"} and "spark" not in d and set(d["total"]) == {"duckdb"}
    assert d["memory_settings"]["spark_driver_memory"] == "2g"
