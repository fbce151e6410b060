"""`beacon bench engine`: its arguments, the Python models it leaves to DuckDB, and the medians it reports."""

from __future__ import annotations

import json

import pytest

from beacon.bench.engine import bench_engine, python_models, summarize
from beacon.cli import build_parser


def test_the_engine_is_one_of_two_and_an_unknown_one_is_refused(capsys):
    args = build_parser().parse_args(["bench", "engine", "--people", "500", "--json"])
    assert (args.engine, args.people, args.repeat) == ("spark", 500, 1)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "engine", "--engine", "snowflake"])
    assert "invalid choice: 'snowflake'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown engine 'trino'"):
        bench_engine("trino", people=10)
    with pytest.raises(ValueError, match="at least 1"):
        bench_engine("duckdb", people=10, repeat=0)


def test_python_models_are_read_from_the_manifest(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"nodes": {
        "model.beacon.int_identity_events": {"resource_type": "model", "name": "int_identity_events",
                                             "language": "python"},
        "model.beacon.stg_web__events": {"resource_type": "model", "name": "stg_web__events", "language": "sql"},
        "seed.beacon.lead_point_rules": {"resource_type": "seed", "name": "lead_point_rules"}}}))
    assert python_models(manifest) == ["int_identity_events"]


def _run(ingest: float, dbt_duck: float, dbt_spark: float, peak: float) -> dict:
    return {"stages": [{"stage": "ingest", "engine": "duckdb", "seconds": ingest, "cpu_seconds": ingest / 2,
                        "rows": 10},
                       {"stage": "dbt", "engine": "duckdb", "seconds": dbt_duck, "nodes": 3},
                       {"stage": "dbt", "engine": "spark", "seconds": dbt_spark, "nodes": 3}],
            "peak_memory_mb": {"duckdb": peak, "spark": 2 * peak}}


def test_each_stage_is_reported_at_its_median_beside_the_other_engine():
    d = summarize([_run(1.0, 5.0, 50.0, 100), _run(3.0, 4.0, 70.0, 300), _run(2.0, 9.0, 60.0, 200)])
    assert [s["seconds"] for s in d["stages"]] == [2.0, 5.0, 60.0]
    assert d["stages"][0]["cpu_seconds"] == 1.0 and "cpu_seconds" not in d["stages"][1]
    assert d["side_by_side"] == [{"stage": "ingest", "duckdb": 2.0}, {"stage": "dbt", "duckdb": 5.0, "spark": 60.0}]
    assert d["peak_memory_mb"] == {"duckdb": 200, "spark": 400}
