"""The keyed hash of an identifier is one rule in three places: Python (`keyed_hash`: the service, the requests),
the ingest's and governance's SQL (`sql_hash`) and the dbt staging filter (`privacy_hash` in
dbt_project/macros/privacy.sql, keyed by the variable the dbt plugin sets). They must agree on every value."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beacon.config import settings as settings_
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


def test_dbt_plugin_sets_the_key_on_every_connection(monkeypatch):
    con = duckdb.connect()
    monkeypatch.setenv("BEACON_PRIVACY_KEY", KEY)
    dbt_plugin.configure(con)
    assert con.execute("SELECT getvariable('beacon_privacy_key')").fetchone()[0] == KEY
    monkeypatch.delenv("BEACON_PRIVACY_KEY")
    other = duckdb.connect()
    dbt_plugin.configure(other)
    assert other.execute("SELECT getvariable('beacon_privacy_key')").fetchone()[0] is None  # unset, never guessed


def test_staging_filter_drops_tombstoned_rows_and_fails_without_the_key():
    """The SQL `not_erased` renders once privacy.tombstones exists (rendered here with a stand-in adapter), for a
    table model and for a view."""
    import jinja2

    src = (settings_().dbt_project_dir / "macros" / "privacy.sql").read_text()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.globals.update(execute=True, target=type("T", (), {"database": "memory"})(),
                       adapter=type("A", (), {"get_relation": staticmethod(lambda **k: "privacy.tombstones")})(),
                       config={"materialized": "table"})
    sql = env.from_string(src).module.not_erased([["email", "email"], ["id", "contact_id"]])
    env.globals["config"] = {"materialized": "view"}
    view_sql = env.from_string(src).module.not_erased([["email", "email"], ["id", "contact_id"]])
    con = duckdb.connect()
    ensure_tables(con)
    con.execute("CREATE TABLE raw_rows AS SELECT * FROM (VALUES ('gone@x.example', 'k1'), ('stay@x.example', 'k2'), "
                "('other@x.example', 'k9')) t(email, contact_id)")
    con.execute("INSERT INTO privacy.tombstones VALUES (?, 'pr-1', now()), (?, 'pr-1', now())",
                [keyed_hash(KEY, "email", " GONE@x.example"), keyed_hash(KEY, "id", "k9")])
    with pytest.raises(duckdb.Error, match="BEACON_PRIVACY_KEY"):  # a table model refuses to build without the key
        con.execute(f"SELECT * FROM raw_rows WHERE {sql}").fetchall()
    assert len(con.execute(f"SELECT * FROM raw_rows WHERE {view_sql}").fetchall()) == 3  # a view read without it
    con.execute("SET VARIABLE beacon_privacy_key = ?", [KEY])
    assert con.execute(f"SELECT contact_id FROM raw_rows WHERE {sql}").fetchall() == [("k2",)]
    assert con.execute(f"SELECT contact_id FROM raw_rows WHERE {view_sql}").fetchall() == [("k2",)]


def test_every_bmp_character_at_the_ends_and_inside_hashes_alike_in_python_and_sql():
    # Case mapping and trimming differ between Python and DuckDB for a few characters (U+0130, a final sigma, the
    # Unicode spaces trim() removes): every character of the Basic Multilingual Plane is tried once.
    vals = [v for cp in range(1, 0x10000) if not 0xD800 <= cp <= 0xDFFF
            for v in (chr(cp) + "Ab@x" + chr(cp), "a" + chr(cp) + "B")]
    for kind in ("email", "id", "phone"):
        rows = CON.execute(f"SELECT v, {sql_hash(kind, 'v', 'SELECT k FROM _privacy_key')} "
                           "FROM unnest(?::VARCHAR[]) t(v)", [vals]).fetchall()
        bad = [(kind, v) for v, h in rows if h != keyed_hash(KEY, kind, v)]
        assert not bad, bad[:5]
