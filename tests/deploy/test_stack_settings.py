"""`make up` (beacon.stack) and docker-compose.yml share one description of their settings: deploy/airflow.env
and deploy/pools.json. Neither may redefine a shared setting on its own, so they cannot drift."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from beacon.config import settings
from beacon.orchestration import WAREHOUSE_POOL
from beacon.stack import ENV_FILE, POOLS_FILE, read_env_file, shared_env, stack_env

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = {"airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker"}


def _services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_compose_reads_the_shared_file_and_never_overrides_it():
    shared = read_env_file(ROOT / ENV_FILE)
    assert shared and shared == shared_env(settings())
    for name, svc in _services().items():
        if name not in AIRFLOW_SERVICES:
            continue
        assert svc.get("env_file") == [ENV_FILE], name
        redefined = set(svc.get("environment") or {}) & set(shared)
        assert redefined == set(), f"{name} redefines shared settings {redefined}: change {ENV_FILE} instead"


def test_make_up_uses_every_shared_setting_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("BEACON_STACK_DIR", str(tmp_path / "stack"))
    env = stack_env(settings())
    shared = read_env_file(ROOT / ENV_FILE)
    assert {k: env[k] for k in shared} == shared
    # Both deployments get the one-slot writer pool from the same file.
    assert f"airflow pools import /opt/airflow/project/{POOLS_FILE}" in " ".join(_services()["airflow-init"]["command"])
    assert json.loads((ROOT / POOLS_FILE).read_text())[WAREHOUSE_POOL]["slots"] == 1
    # Secrets are generated into the git-ignored stack folder, never read from the committed file.
    assert not any(k.endswith(("FERNET_KEY", "SECRET_KEY", "JWT_SECRET")) for k in shared)
    assert (tmp_path / "stack" / "secrets.json").stat().st_mode & 0o077 == 0


def test_env_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "airflow.env"
    bad.write_text("# comment\nGOOD=1\nno equals sign here\n")
    import pytest

    with pytest.raises(ValueError, match=r"airflow.env:3: expected KEY=VALUE"):
        read_env_file(bad)


def test_make_up_hands_the_engine_choice_to_every_component(tmp_path, monkeypatch):
    # `BEACON_ENGINE=spark BEACON_SPARK_MASTER=spark://… make up`: the components' tasks see both (an external
    # Spark), and no stack setting overrides them.
    from beacon.stack.env import component_env

    monkeypatch.setenv("BEACON_STACK_DIR", str(tmp_path / "stack"))
    monkeypatch.setenv("BEACON_ENGINE", "spark")
    monkeypatch.setenv("BEACON_SPARK_MASTER", "spark://spark.example:7077")
    s = settings()
    assert (s.engine, s.spark_master) == ("spark", "spark://spark.example:7077")
    env = component_env(s)
    assert (env["BEACON_ENGINE"], env["BEACON_SPARK_MASTER"]) == ("spark", "spark://spark.example:7077")
    assert not {"BEACON_ENGINE", "BEACON_SPARK_MASTER"} & set(stack_env(s))
