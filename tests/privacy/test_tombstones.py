"""The keyed hash of an identifier is one rule in three places: Python (`keyed_hash`: the service, the requests),
the ingest's and governance's SQL (`sql_hash`) and the dbt staging filter (`privacy_hash` in
dbt_project/macros/privacy.sql, keyed by the variable the dbt plugin sets). They must agree on every value."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beacon.dbt import macros
from beacon.privacy import dbt_plugin
from beacon.privacy.requests import ensure_tables
from beacon.tombstones import check_key, keyed_hash, sql_hash

KEY = "k3y-for-the-tests-0123456789"
CON = duckdb.connect()
CON.execute("CREATE TEMP TABLE _privacy_key AS SELECT ?::VARCHAR AS k", [KEY])
CON.execute("SET VARIABLE beacon_privacy_key = ?", [KEY])
PRIVACY = macros("privacy")

values = st.one_of(st.text(max_size=30), st.sampled_from(["  Ann@Example.COM ", "(415) 555-0100", "+1 415 555 0100",
                                                          "123456", "anon-1", "", "   ", "ÉLODIE@exemple.fr"]))


@settings(max_examples=150, deadline=None)
@given(value=values, kind=st.sampled_from(["email", "phone", "id"]))
def test_python_sql_and_dbt_macro_hash_alike(value, kind):
    py = keyed_hash(KEY, kind, value)
    sql = CON.execute(f"SELECT {sql_hash(kind, '$v', 'SELECT k FROM _privacy_key')}", {"v": value}).fetchone()[0]
    dbt = CON.execute(f"SELECT {PRIVACY.privacy_hash(kind, '$v')}", {"v": value}).fetchone()[0]
    assert py == sql == dbt


def test_formats_of_one_identifier_hash_alike_and_others_do_not():
    assert keyed_hash(KEY, "email", " Ann@Example.com") == keyed_hash(KEY, "email", "ann@example.com")
    assert keyed_hash(KEY, "phone", "(415) 555-0100") == keyed_hash(KEY, "phone", "+1 415 555 0100")
    assert keyed_hash(KEY, "phone", "12345") is None  # too few digits to single anyone out
    assert keyed_hash(KEY, "id", "c1") != keyed_hash(KEY, "email", "c1")  # kinds never collide
    assert keyed_hash(KEY, "id", "c1") != keyed_hash(KEY + "x", "id", "c1")  # the key matters
    with pytest.raises(ValueError, match="BEACON_PRIVACY_KEY"):
        check_key("short")


def test_dbt_plugin_sets_the_key_and_refuses_a_connection_when_tombstones_exist_without_it(monkeypatch):
    con = duckdb.connect()
    monkeypatch.setenv("BEACON_PRIVACY_KEY", KEY)
    dbt_plugin.configure(con)
    assert con.execute("SELECT getvariable('beacon_privacy_key')").fetchone()[0] == KEY
    monkeypatch.delenv("BEACON_PRIVACY_KEY")
    other = duckdb.connect()
    dbt_plugin.configure(other)  # no tombstones: nothing to enforce
    ensure_tables(other)
    other.execute("INSERT INTO privacy.tombstones VALUES ('h', 'pr-1', now())")
    with pytest.raises(ValueError, match="BEACON_PRIVACY_KEY"):
        dbt_plugin.configure(other)
