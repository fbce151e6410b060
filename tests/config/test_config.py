"""Settings: every environment variable Beacon reads is a field of `beacon.config.Settings`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from beacon.config import settings

ROOT = Path(__file__).resolve().parents[2]


def _env_reads(path: Path) -> list[str]:
    """Places in `path` that read the environment (os.environ.get, os.getenv, os.environ[...] as a value)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        text = ast.unparse(node)
        if isinstance(node, ast.Call) and text.startswith(("os.environ.get(", "os.getenv(")):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text}")
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and text.startswith("os.environ["):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text}")
    return found


def test_only_beacon_config_reads_the_environment():
    files = [p for d in ("include", "ml", "dags") for p in (ROOT / d).rglob("*.py")]
    reads = [r for p in files if p != ROOT / "include/beacon/config.py" for r in _env_reads(p)]
    assert reads == []
    assert _env_reads(ROOT / "include/beacon/config.py")  # the scan itself finds reads where they are


def test_settings_read_their_variables(monkeypatch):
    monkeypatch.setenv("BEACON_FREQUENCY_CAP", "5")
    monkeypatch.setenv("BEACON_DUCKDB_MEMORY_LIMIT", "1GB")
    monkeypatch.setenv("BEACON_RETRY_DELAY_SECONDS", "7")
    s = settings()
    assert (s.frequency_cap, s.duckdb_memory_limit, s.retry_delay_seconds) == (5, "1GB", 7)
    monkeypatch.delenv("BEACON_RETRY_DELAY_SECONDS")
    assert settings().retry_delay_seconds is None


def test_a_bad_number_names_the_variable(monkeypatch):
    monkeypatch.setenv("BEACON_FREQUENCY_CAP", "three")
    with pytest.raises(ValueError, match="BEACON_FREQUENCY_CAP='three'"):
        settings()


def test_the_warehouse_applies_the_memory_limit(monkeypatch, tmp_path):
    from beacon.warehouse import connect

    monkeypatch.setenv("BEACON_DUCKDB_MEMORY_LIMIT", "300MB")
    with connect(tmp_path / "w.duckdb") as con:
        limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit == "286.1 MiB"  # 300 MB as DuckDB reports it (the default, 8GB, would read 7.4 GiB)


def test_transaction_commits_on_success_and_rolls_back_everything_on_error():
    import duckdb

    from beacon.warehouse import transaction

    con = duckdb.connect()
    con.execute("CREATE TABLE t (x INTEGER)")
    with transaction(con):
        con.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(ZeroDivisionError), transaction(con):
        con.execute("INSERT INTO t VALUES (2)")
        1 / 0  # noqa: B018 - a failure halfway
    assert con.execute("SELECT list(x) FROM t").fetchone()[0] == [1]  # the half-written 2 is gone
    con.execute("INSERT INTO t VALUES (3)")  # and the connection is usable: no transaction left open
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 2
