"""BEACON_ENGINE (issue 29): one switch, DuckDB the default; an unknown engine is refused; Spark without a Java
runtime is refused by `beacon demo` before anything runs; the summary and --json name the engine."""

from __future__ import annotations

import contextlib
import json

import pytest

import beacon.pipeline
from beacon.cli import main
from beacon.config import ENGINES, settings


def test_duckdb_is_the_default(monkeypatch):
    monkeypatch.delenv("BEACON_ENGINE", raising=False)
    assert settings().engine == "duckdb"
    monkeypatch.setenv("BEACON_ENGINE", "")
    assert settings().engine == "duckdb"


@pytest.mark.parametrize("value", ["spark", "duckdb", " Spark "])
def test_known_engines_are_read(monkeypatch, value):
    monkeypatch.setenv("BEACON_ENGINE", value)
    assert settings().engine == value.strip().lower()
    assert settings().engine in ENGINES


def test_an_unknown_engine_is_refused_naming_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv("BEACON_ENGINE", "snowflake")
    with pytest.raises(ValueError, match=r"BEACON_ENGINE='snowflake': unknown engine \(allowed: duckdb, spark\)"):
        settings()


def _no_stage(*_a, **_k):
    raise AssertionError("a stage ran")


def test_demo_on_spark_without_java_refuses_at_once(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("BEACON_ENGINE", "spark")
    monkeypatch.setenv("BEACON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(beacon.pipeline.shutil, "which", lambda name: None)
    for stage in ("prepare_world", "ensure_airflow", "run_dags", "add_day", "collect"):
        monkeypatch.setattr(beacon.pipeline, stage, _no_stage)
    assert main(["demo", "--people", "10"]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "BEACON_ENGINE=spark" in err and "no Java runtime" in err
    assert not (tmp_path / "data").exists()  # no half-run: nothing generated


def test_demo_with_an_unknown_engine_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("BEACON_ENGINE", "oracle")
    monkeypatch.setattr(beacon.pipeline, "prepare_world", _no_stage)
    assert main(["demo", "--people", "10"]) == 2
    assert "unknown engine (allowed: duckdb, spark)" in " ".join(capsys.readouterr().err.split())


def _fake_stages(monkeypatch):
    import beacon.dbt

    monkeypatch.setattr(beacon.pipeline, "prepare_world", lambda s, people, seed: "2026-01-01")
    monkeypatch.setattr(beacon.pipeline, "ensure_airflow", lambda s: None)
    monkeypatch.setattr(beacon.dbt, "ensure_manifest", lambda s: None)
    monkeypatch.setattr(beacon.pipeline, "run_dags", lambda day, progress, *dags: {"beacon_ingest": 1.0})
    monkeypatch.setattr(beacon.pipeline, "demo_email_outbox", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(beacon.pipeline, "collect", lambda s, result: result)
    monkeypatch.setattr(beacon.pipeline, "engine_session", lambda s: contextlib.nullcontext())


def test_demo_json_and_summary_name_the_engine(monkeypatch, capsys):
    monkeypatch.delenv("BEACON_ENGINE", raising=False)
    _fake_stages(monkeypatch)
    assert main(["demo", "--people", "10", "--days", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["engine"] == "duckdb"
    monkeypatch.setenv("BEACON_ENGINE", "duckdb")
    assert main(["demo", "--people", "10", "--days", "1"]) == 0
    assert "Engine: duckdb" in capsys.readouterr().out


def test_demo_on_spark_names_spark(monkeypatch, capsys):
    monkeypatch.setenv("BEACON_ENGINE", "spark")
    monkeypatch.setenv("JAVA_HOME", "/usr/lib/jvm/any")  # the check only: no stage starts Spark here
    _fake_stages(monkeypatch)
    assert main(["demo", "--people", "10", "--days", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["engine"] == "spark"
