"""The dialect check of `make lint` (beacon.dbt_dialect): compiled SQL that Spark cannot run is named, by file and
function; the committed baseline lets today's findings pass and fails a new one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beacon.dbt_dialect import check_compiled, check_sql, compare, counts, function_names, load_baseline, main

ROOT = Path(__file__).resolve().parents[2]

PORTABLE = """
with orders as (select customer_id, amount, ordered_at from raw.orders)
select customer_id, count(*) as n, sum(amount) as total, max_by(amount, ordered_at) as last_amount,
       coalesce(nullif(trim(lower(max(email))), ''), 'none') as email,
       row_number() over (partition by customer_id order by max(ordered_at) desc) as rn
from orders
group by customer_id
"""


def test_a_portable_model_has_no_findings():
    assert check_sql(PORTABLE) == set()


def test_a_planted_duckdb_only_function_is_named():
    planted = PORTABLE.replace("max_by(amount, ordered_at)", "arg_max(amount, ordered_at)")
    assert check_sql(planted) == {"function:arg_max"}


@pytest.mark.parametrize(("sql", "finding"), [
    ("select strip_accents(name) as n from t", "function:strip_accents"),
    ("select date_diff('day', a, b) as d from t", "function:date_diff"),
    ("select x + to_days(3) as d from t", "function:to_days"),
    ("select some_function_nobody_has(x) as d from t", "function:some_function_nobody_has"),
    ("select beacon_e164(phone, 'US') as p from t", "udf:beacon_e164"),
    ("select * exclude (secret) from t", "construct:SELECT * EXCLUDE"),
    ("select a::int as a from t", "construct:x::type cast"),
    ("select cast(a as varchar) as a from t", "type:varchar without a length"),
    ("select cast(a as json) as a from t", "type:json"),
])
def test_duckdb_only_functions_and_constructs(sql, finding):
    assert finding in check_sql(sql)


def test_portable_casts_and_aliases_pass():
    assert check_sql("select cast(a as string) as json, cast(b as varchar(20)) as b, cast(c as double) as c from t") \
        == set()


def test_a_struct_literal_is_duckdb_only():
    found = check_sql("select {'street': street, 'city': city} as address from t")
    assert {"construct:struct literal {...}", "parse:spark"} <= found


def test_function_names_are_taken_as_written_not_keywords_or_qualified_names():
    sql = "select left(a, 2), count(*) filter (where b in (1, 2)), s.fn(x) from t join u using (id)"
    assert function_names(sql) == ["left", "count"]


def test_a_derived_tables_column_list_is_no_call():
    for alias in ("as v", "v"):
        assert function_names(f"select v.a from (values (1, 2)) {alias} (a, b)") == []


def test_the_checker_reads_a_compiled_tree_and_names_files(tmp_path):
    (tmp_path / "beacon/models").mkdir(parents=True)
    (tmp_path / "beacon/models/ok.sql").write_text(PORTABLE)
    (tmp_path / "beacon/models/bad.sql").write_text("select regexp_full_match(email, '.+@.+') as ok from t")
    assert check_compiled(tmp_path) == {"beacon/models/bad.sql": ["function:regexp_full_match"]}
    with pytest.raises(FileNotFoundError, match="dbt compile"):
        check_compiled(tmp_path / "empty")


def test_baseline_new_fails_known_passes_fixed_is_removable():
    baseline = {"a.sql": ["function:arg_max", "function:to_days"], "gone.sql": ["function:strip_accents"]}
    findings = {"a.sql": ["function:arg_max"], "b.sql": ["function:date_diff"]}
    new, removable = compare(findings, baseline)
    assert new == {"b.sql": ["function:date_diff"]}
    assert removable == {"a.sql": ["function:to_days"], "gone.sql": ["function:strip_accents"]}
    assert compare(baseline, baseline) == ({}, {})
    # A model gaining a second DuckDB-only function fails even though the model is in the baseline.
    assert compare({"a.sql": ["function:arg_max", "function:to_days", "function:json_extract"]}, baseline)[0] == {
        "a.sql": ["function:json_extract"]}
    assert counts(findings) == {"function:arg_max": 1, "function:date_diff": 1}


def _tree(tmp_path: Path, sql: str) -> Path:
    (tmp_path / "target/compiled/beacon/models").mkdir(parents=True, exist_ok=True)
    (tmp_path / "target/compiled/beacon/models/m.sql").write_text(sql)
    return tmp_path


def test_main_fails_on_a_new_finding_and_passes_once_in_the_baseline(tmp_path, capsys):
    args = ["--no-compile", "--target-dir", str(_tree(tmp_path, "select arg_min(a, b) from t") / "target"),
            "--baseline", str(tmp_path / "baseline.json")]
    assert main(args) == 1
    assert "NEW DuckDB-only use in beacon/models/m.sql: function:arg_min" in capsys.readouterr().err
    (tmp_path / "baseline.json").write_text(json.dumps({"beacon/models/m.sql": ["function:arg_min"]}))
    assert main(args) == 0
    _tree(tmp_path, "select min_by(a, b) from t")
    assert main(args) == 0
    assert "fixed (remove from the baseline): beacon/models/m.sql: function:arg_min" in capsys.readouterr().out


def test_a_broken_baseline_is_a_clear_error(tmp_path):
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(ValueError, match="b.json: not valid JSON"):
        load_baseline(tmp_path / "b.json")
    (tmp_path / "b.json").write_text('{"m.sql": "function:x"}')
    with pytest.raises(ValueError, match="file -> list of findings"):
        load_baseline(tmp_path / "b.json")


def test_the_committed_baseline_is_well_formed():
    baseline = load_baseline(ROOT / "dbt_project/dialect_baseline.json")
    assert baseline and all(f.startswith("beacon/models/") for f in baseline)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_findings_or_none_never_a_crash(text):
    assert isinstance(check_sql(text), set)
