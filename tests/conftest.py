"""Test environment: a throwaway data folder and a project-local Airflow home, set before Airflow is imported."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_DATA = Path(tempfile.mkdtemp(prefix="beacon-test-"))
os.environ["BEACON_DATA_DIR"] = str(_DATA)
os.environ["BEACON_DBT_TARGET_DIR"] = str(_DATA / "dbt_target")
os.environ["AIRFLOW_HOME"] = str(ROOT / ".airflow-test")

from beacon.pipeline import airflow_env  # noqa: E402  (needs the variables above)

os.environ.update(airflow_env())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _DATA


@pytest.fixture(scope="session")
def manifest() -> Path:
    """A current dbt manifest (DAG parsing and audience discovery read it)."""
    from beacon.dbt import ensure_manifest

    return ensure_manifest()


@pytest.fixture(scope="session")
def airflow_home(manifest) -> Path:
    from beacon.pipeline import ensure_airflow

    return ensure_airflow()


@pytest.fixture(scope="session")
def dagbag(manifest):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))
