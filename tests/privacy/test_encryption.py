"""Encryption at rest of the warehouse file (issue 27, item 11; docs/privacy.md "Encryption at rest").

The same rows are written once without and once with a key: the plain file holds the e-mail addresses and names
in the clear (so the byte scan can fail), the encrypted one holds none of them; opening it without the key, with a
wrong key, or a plain file with a key, fails with an error naming the variable. dbt (the profile's `encrypted`
target through Beacon's plugin) builds into the encrypted file and Beacon reads what it built."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from beacon.config import override_env, settings
from beacon.warehouse import WarehouseKeyError, connect

EMAILS = ["ada.lovelace@example.org", "grace.hopper@example.com", "katherine.johnson@example.net"]
NAMES = ["Lovelace", "Hopper", "Johnson"]
KEY = "test-warehouse-key-0123456789"


def _write_people(path: Path) -> None:
    with connect(path) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute("CREATE TABLE marts.dim_customers (customer_id VARCHAR, email VARCHAR, last_name VARCHAR)")
        # Enough rows that DuckDB writes real data blocks, not only the few inlined into the header.
        rows = [(f"c{i}", EMAILS[i % 3], NAMES[i % 3]) for i in range(3000)]
        con.executemany("INSERT INTO marts.dim_customers VALUES (?, ?, ?)", rows)


def _plain_text_found(path: Path) -> list[str]:
    data = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())  # the file and its WAL
    return [v for v in EMAILS + NAMES if v.encode() in data]


def test_without_a_key_the_file_holds_the_data_in_the_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("BEACON_WAREHOUSE_KEY", raising=False)
    path = tmp_path / "plain.duckdb"
    _write_people(path)
    assert _plain_text_found(path) == EMAILS + NAMES  # the scan below finds data when it is there


def test_with_a_key_no_email_or_name_is_in_the_file_and_beacon_reads_it_back(tmp_path, monkeypatch):
    monkeypatch.setenv("BEACON_WAREHOUSE_KEY", KEY)
    path = tmp_path / "beacon.duckdb"
    _write_people(path)
    assert path.stat().st_size > 100_000
    assert _plain_text_found(path) == []
    with connect(path, read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT email) FROM marts.dim_customers").fetchall() == [(3000, 3)]
        # Nested connections in one process share the attached file (as duckdb.connect(path) shares its instance).
        with connect(path, read_only=True) as inner:
            assert inner.execute("SELECT min(email) FROM marts.dim_customers").fetchall()[0][0] == EMAILS[0]


def test_opening_without_the_key_names_the_variable(tmp_path, monkeypatch):
    path = tmp_path / "beacon.duckdb"
    monkeypatch.setenv("BEACON_WAREHOUSE_KEY", KEY)
    _write_people(path)
    monkeypatch.delenv("BEACON_WAREHOUSE_KEY")
    with pytest.raises(WarehouseKeyError, match=r"is encrypted: set BEACON_WAREHOUSE_KEY"), connect(path):
        pass
    monkeypatch.setenv("BEACON_WAREHOUSE_KEY", "not-the-key")
    with pytest.raises(WarehouseKeyError, match="BEACON_WAREHOUSE_KEY is not the key"), connect(path):
        pass


def test_a_key_for_a_plain_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("BEACON_WAREHOUSE_KEY", raising=False)
    path = tmp_path / "plain.duckdb"
    _write_people(path)
    monkeypatch.setenv("BEACON_WAREHOUSE_KEY", KEY)
    with pytest.raises(WarehouseKeyError, match="is not encrypted, but BEACON_WAREHOUSE_KEY is set"), connect(path):
        pass


def test_the_key_from_a_file_and_never_in_the_settings_repr(tmp_path, monkeypatch):
    monkeypatch.delenv("BEACON_WAREHOUSE_KEY", raising=False)
    key_file = tmp_path / "warehouse.key"
    key_file.write_text(KEY + "\n")
    monkeypatch.setenv("BEACON_WAREHOUSE_KEY_FILE", str(key_file))
    s = settings()
    assert s.warehouse_key == KEY and KEY not in repr(s)
    path = tmp_path / "beacon.duckdb"
    _write_people(path)
    assert _plain_text_found(path) == []
    monkeypatch.setenv("BEACON_WAREHOUSE_KEY_FILE", str(tmp_path / "missing.key"))
    with pytest.raises(ValueError, match="BEACON_WAREHOUSE_KEY_FILE=.*cannot read the file"):
        settings()


def test_an_unknown_crypto_mode_names_the_variable(monkeypatch):
    monkeypatch.setenv("BEACON_WAREHOUSE_CRYPTO", "rot13")
    with pytest.raises(ValueError, match="BEACON_WAREHOUSE_CRYPTO='rot13'"):
        settings()


def test_dbt_builds_into_the_encrypted_warehouse(tmp_path, monkeypatch):
    """The real profiles.yml (target `encrypted`, Beacon's plugin) on a one-model project: the table and the view dbt
    writes land encrypted, and Beacon's connect() reads both (the view resolves: the file is attached under its stem)."""
    from dbt.cli.main import dbtRunner

    from beacon.dbt import dbt_env, dbt_target, project_flags, release_warehouse

    project = tmp_path / "proj"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(textwrap.dedent("""\
        name: vault_check
        version: "1.0"
        profile: beacon
        models:
          vault_check:
            +schema: marts
        """))
    (project / "models" / "people.sql").write_text(
        "{{ config(materialized='table') }}\n"
        + " UNION ALL ".join(f"SELECT '{e}' AS email, '{n}' AS last_name FROM range(1000)"
                             for e, n in zip(EMAILS, NAMES, strict=True)))
    (project / "models" / "people_view.sql").write_text(
        "{{ config(materialized='view') }}\nSELECT email FROM {{ ref('people') }}")
    path = tmp_path / "wh" / "beacon.duckdb"
    path.parent.mkdir()
    monkeypatch.setenv("BEACON_WAREHOUSE", str(path))
    monkeypatch.setenv("BEACON_WAREHOUSE_KEY", KEY)
    s = settings()
    assert dbt_target(s) == "encrypted" and project_flags(s)[-2:] == ["--target", "encrypted"]
    with override_env(**dbt_env(s)):
        try:
            res = dbtRunner().invoke(["build", "--project-dir", str(project), "--profiles-dir",
                                      str(s.dbt_project_dir), "--target-path", str(tmp_path / "target")])
        finally:
            release_warehouse()
    assert res.success, res.exception
    assert _plain_text_found(path) == []
    with connect(path, read_only=True) as con:
        schema = con.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'people_view'"
                             ).fetchall()[0][0]
        assert con.execute(f"SELECT count(*) FROM {schema}.people_view").fetchall() == [(3000,)]
    monkeypatch.delenv("BEACON_WAREHOUSE_KEY")
    assert dbt_target(settings()) == "local" and project_flags(settings())[-2:] == ["--target", "local"]


def test_a_plain_target_without_a_key_is_readable_as_before(tmp_path, monkeypatch):
    monkeypatch.delenv("BEACON_WAREHOUSE_KEY", raising=False)
    path = tmp_path / "plain.duckdb"
    _write_people(path)
    import duckdb

    con = duckdb.connect(str(path), read_only=True)  # a plain file stays an ordinary DuckDB file
    try:
        assert con.execute("SELECT count(*) FROM marts.dim_customers").fetchall() == [(3000,)]
    finally:
        con.close()
    assert re.search(rb"example\.org", path.read_bytes())


def test_beacon_warehouse_encrypt_turns_a_plain_file_into_an_encrypted_one(tmp_path, monkeypatch):
    from beacon.cli import main

    path = tmp_path / "beacon.duckdb"
    monkeypatch.setenv("BEACON_WAREHOUSE", str(path))
    monkeypatch.delenv("BEACON_WAREHOUSE_KEY", raising=False)
    _write_people(path)
    with connect(path) as con:  # a view naming the catalog, as dbt writes them
        con.execute("CREATE VIEW marts.emails AS SELECT DISTINCT email FROM beacon.marts.dim_customers")
    assert main(["warehouse", "encrypt"]) == 2  # no key: refused, nothing changed
    assert _plain_text_found(path)
    monkeypatch.setenv("BEACON_WAREHOUSE_KEY", KEY)
    assert main(["warehouse", "encrypt", "--json"]) == 0
    assert _plain_text_found(path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["beacon.duckdb"]
    with connect(path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.emails").fetchall() == [(3,)]
        assert con.execute("SELECT count(*) FROM marts.dim_customers").fetchall() == [(3000,)]
    assert main(["warehouse", "encrypt"]) == 2  # already encrypted: refused


def test_journeys_simulate_runs_on_a_copy_of_the_encrypted_warehouse(tmp_path, monkeypatch, capsys):
    from support.activation_world import journeys_warehouse

    from beacon.cli import main
    from beacon.warehouse import encrypt_file

    path = tmp_path / "w.duckdb"
    con = journeys_warehouse(path)
    con.close()
    encrypt_file(path, KEY)
    monkeypatch.setenv("BEACON_WAREHOUSE", str(path))
    monkeypatch.setenv("BEACON_WAREHOUSE_KEY", KEY)
    assert main(["journeys", "simulate", "cart_abandonment", "--days", "1", "--step-minutes", "360", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] > 0


def test_make_up_encrypts_with_a_generated_key_file_unless_one_is_given(tmp_path, monkeypatch):
    from beacon.stack import stack_env

    monkeypatch.setenv("BEACON_STACK_DIR", str(tmp_path / "stack"))
    monkeypatch.delenv("BEACON_WAREHOUSE_KEY", raising=False)
    env = stack_env(settings())
    key_file = tmp_path / "stack" / "warehouse.key"
    assert env["BEACON_WAREHOUSE_KEY_FILE"] == str(key_file) and "BEACON_WAREHOUSE_KEY" not in env
    assert key_file.stat().st_mode & 0o077 == 0 and len(key_file.read_text().strip()) >= 32
    first = key_file.read_text()
    assert stack_env(settings())["BEACON_WAREHOUSE_KEY_FILE"] == str(key_file) and key_file.read_text() == first
    monkeypatch.setenv("BEACON_WAREHOUSE_KEY", KEY)  # the operator's own key: inherited, no generated one
    assert "BEACON_WAREHOUSE_KEY_FILE" not in stack_env(settings())


def test_the_key_from_an_airflow_connection(tmp_path, monkeypatch):
    from beacon.warehouse import _key_from_connection

    monkeypatch.delenv("BEACON_WAREHOUSE_KEY", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_BEACON_WAREHOUSE_TEST", json.dumps({"conn_type": "generic", "password": KEY}))
    monkeypatch.setenv("BEACON_WAREHOUSE_KEY_CONN", "beacon_warehouse_test")
    _key_from_connection.cache_clear()
    path = tmp_path / "beacon.duckdb"
    _write_people(path)
    assert _plain_text_found(path) == []
    monkeypatch.delenv("BEACON_WAREHOUSE_KEY_CONN")
    monkeypatch.setenv("BEACON_WAREHOUSE_KEY", KEY)  # the same key, given directly, opens it
    with connect(path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.dim_customers").fetchall() == [(3000,)]
