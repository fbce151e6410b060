"""The ten-person request world of the privacy tests: every folder a request touches inside tmp_path, the privacy
key set, the activation test warehouse with customer ids as long as real ones (erasure ignores keys under 6
characters). People are CUS-000000..CUS-000009 with p<i>@example.com and +1415555000<i>."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from beacon.config import Settings, settings
from support.activation_world import warehouse


def request_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str) -> tuple[Settings, duckdb.DuckDBPyConnection]:
    """Settings pointed at tmp_path and an open connection to its warehouse (the caller adds to it, then closes)."""
    for var, sub in (("BEACON_DATA_DIR", "data"), ("BEACON_LANDING_DIR", "data/landing"), ("AIRFLOW_HOME", "airflow"),
                     ("BEACON_STACK_DIR", "stack"), ("BEACON_WAREHOUSE", "data/warehouse/beacon.duckdb")):
        (tmp_path / sub).parent.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    monkeypatch.delenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", raising=False)
    monkeypatch.setenv("BEACON_PRIVACY_KEY", key)
    s = settings()
    con = duckdb.connect(str(s.warehouse_path))
    warehouse(10, con)
    for t in ("dim_customers", "dim_consent"):
        con.execute(f"UPDATE marts.{t} SET customer_id = 'CUS-' || lpad(substr(customer_id, 2), 6, '0')")
    return s, con
