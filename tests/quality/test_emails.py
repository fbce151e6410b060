"""One email rule: the Python form (GX checks, benchmarks) agrees with the dbt macro DuckDB runs."""

from __future__ import annotations

import re

import duckdb

from beacon.emails import macro_sql, raw_email_regex

SAMPLES = ["ann.lee@gmail.com", "  Ann.Lee+promo@Gmail.COM ", "o'neil@example.co.uk", "bob@localhost", "a@b.c",
           "no-at-sign.com", "two@@signs.com", "spa ce@x.com", "", "ünï@example.com", "x@y.io"]


def test_raw_regex_agrees_with_the_dbt_macro_on_every_sample():
    con = duckdb.connect()
    con.execute("CREATE TABLE t (email VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[e] for e in SAMPLES])
    sql_valid = dict(con.execute(f"SELECT email, {macro_sql('is_valid_email', 'email')} FROM t").fetchall())
    rx = re.compile(raw_email_regex())
    py_valid = {e: bool(rx.match(e)) for e in SAMPLES}
    assert py_valid == sql_valid
    assert 0 < sum(py_valid.values()) < len(SAMPLES)  # the samples exercise both outcomes


def test_canonical_email_drops_plus_tags_and_gmail_dots():
    con = duckdb.connect()
    got = con.execute(f"SELECT {macro_sql('canonical_email', 'e')} FROM (SELECT ' Ann.Lee+x@Gmail.com' AS e)").fetchall()
    assert got == [("annlee@gmail.com",)]
