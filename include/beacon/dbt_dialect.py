"""The dialect check (issue 29, docs/scale.md): every compiled dbt model and test must be SQL that Spark can run too.

dbt-spark runs the compiled SQL as written: nothing transpiles it. So a function is portable only if Spark has a
function of that name (with the same meaning), and a construct only if Spark's SQL parses it. For each compiled file
(`<target>/compiled/**.sql`) the check

- tokenizes it (sqlglot, DuckDB) and takes every function name as written, checked against SPARK_FUNCTIONS
  (Spark 3.5's built-in functions that the models may use) and DUCKDB_ONLY (DuckDB functions with no Spark
  function of that name, or one of another meaning, each with the Spark way); and every cast as written
  (`x::type`, a bare `varchar`, DUCKDB_ONLY_TYPES);
- parses it as DuckDB and as Spark SQL (sqlglot): a DuckDB-only construct (a struct literal `{'k': v}`,
  `SELECT * EXCLUDE`, …) fails Spark's parse or shows in the DuckDB tree;
- asks sqlglot's Spark generator what it cannot express (unsupported_level=IGNORE, messages collected).

The findings today live in a committed baseline (dbt_project/dialect_baseline.json: file -> constructs); `make lint`
fails only on a finding that is not in the baseline, and reports baseline entries that are gone (removable).
Bottom layer: imports nothing of ours.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import sqlglot
from sqlglot import Dialect, exp
from sqlglot.errors import ErrorLevel, ParseError, TokenError
from sqlglot.tokens import TokenType

# DuckDB functions the models use (or could) with no Spark function of that name and meaning: name -> the Spark way.
DUCKDB_ONLY = {
    "arg_max": "max_by", "arg_min": "min_by",
    "json_extract": "get_json_object", "json_extract_string": "get_json_object",
    "regexp_full_match": "rlike '^…$'", "regexp_matches": "rlike / regexp_like",
    "starts_with": "startswith", "strip_accents": "a UDF (no built-in)", "nfc_normalize": "a UDF (no built-in)",
    "to_days": "make_dt_interval / interval literal", "to_hours": "make_dt_interval / interval literal",
    "to_microseconds": "make_dt_interval / interval literal",
    "date_diff": "datediff(end, start) counts days; DuckDB's date_diff(part, start, end) takes a part first",
    "string_agg": "concat_ws(sep, collect_list(x))", "list_aggregate": "aggregate", "list_filter": "filter",
    "list_transform": "transform", "struct_pack": "named_struct", "epoch": "unix_timestamp", "epoch_ms": "unix_millis",
    "strftime": "date_format", "strptime": "to_timestamp", "read_parquet": "a source table", "read_csv": "a source table",
    "read_json": "a source table", "unnest": "explode", "list_value": "array",
    "today": "current_date", "age": "months_between / datediff",
}
# Beacon's own scalar functions, registered on DuckDB by the dbt-duckdb plugin beacon.identity.normalize and on Spark
# by beacon.spark.session (with DuckDB's strip_accents and nfc_normalize, which Spark lacks).
BEACON_UDFS = {"beacon_e164", "beacon_name_aliases", "beacon_strip_accents", "beacon_nfc_normalize"}

# Spark 3.5 built-in functions (the subset a warehouse model plausibly calls; a name missing here is reported as
# unknown to Spark, so an addition is a deliberate edit). https://spark.apache.org/docs/3.5.0/api/sql/
SPARK_FUNCTIONS = frozenset("""
abs acos add_months aggregate and any any_value approx_count_distinct approx_percentile array array_agg array_contains
array_distinct array_except array_intersect array_join array_max array_min array_position array_remove array_repeat
array_size array_sort array_union arrays_overlap arrays_zip ascii asin atan atan2 avg base64 between bigint bit_and
bit_count bit_or bit_xor bool_and bool_or boolean btrim cardinality case cast cbrt ceil ceiling char char_length
character_length chr coalesce collect_list collect_set concat concat_ws contains conv corr cos cosh cot count
count_if covar_pop covar_samp crc32 cume_dist current_date current_timestamp current_timezone date date_add
date_diff date_format date_from_unix_date date_part date_sub date_trunc dateadd datediff datepart day dayofmonth
dayofweek dayofyear decimal decode degrees dense_rank double element_at elt encode endswith every exists exp explode
explode_outer expm1 extract factorial filter find_in_set first first_value flatten float floor forall format_number
format_string from_json from_unixtime from_utc_timestamp get_json_object greatest grouping hash hex hour if ifnull
ilike initcap inline instr int isnan isnotnull isnull json_array_length json_object_keys json_tuple kurtosis lag
last last_day last_value lcase lead least left len length levenshtein like ln locate log log10 log1p log2 lower lpad
ltrim make_date make_dt_interval make_interval make_timestamp make_ym_interval map map_concat map_entries
map_filter map_from_arrays map_from_entries map_keys map_values max max_by md5 mean median min min_by minute mod
mode monotonically_increasing_id month months_between named_struct nanvl negative next_day not now nth_value ntile
nullif nvl nvl2 octet_length or overlay percent_rank percentile percentile_approx pi pmod posexplode position
positive pow power quarter radians raise_error rand randn random range rank reduce regexp regexp_count
regexp_extract regexp_extract_all regexp_instr regexp_like regexp_replace regexp_substr repeat replace reverse right
rint rlike round row_number rpad rtrim schema_of_json second sentences sequence sha sha1 sha2 shuffle sign signum
sin sinh size skewness slice smallint sort_array soundex space split split_part sqrt stack startswith std stddev
stddev_pop stddev_samp string struct substr substring substring_index sum tan tanh timestamp timestamp_micros
timestamp_millis timestamp_seconds timestampadd timestampdiff tinyint to_char to_date to_json to_number
to_timestamp to_unix_timestamp to_utc_timestamp transform transform_keys transform_values translate trim trunc
try_add try_avg try_cast try_divide try_element_at try_multiply try_subtract try_sum try_to_number try_to_timestamp
typeof ucase unbase64 unhex unix_date unix_micros unix_millis unix_seconds unix_timestamp upper uuid var_pop
var_samp variance weekday weekofyear when width_bucket xxhash64 year zip_with
""".split())

# Keywords that are also function names when followed by "(".
_KEYWORD_FUNCTIONS = {TokenType.LEFT, TokenType.RIGHT, TokenType.REPLACE}


def function_names(sql: str) -> list[str]:
    """The names of the functions `sql` calls, as written (lower case), in order, repeats included."""
    tokens = Dialect.get_or_raise("duckdb").tokenize(sql)
    names = []
    for prev, tok, nxt in zip([None, *tokens], tokens, tokens[1:], strict=False):
        if nxt.token_type != TokenType.L_PAREN or (prev is not None and prev.token_type == TokenType.DOT):
            continue
        if prev is not None and prev.token_type == TokenType.STAR:  # SELECT * EXCLUDE (…) / * REPLACE (…)
            continue
        # A derived table's alias with its columns, `(values …) as t (a, b)` or `(values …) t (a, b)`: no call.
        if prev is not None and prev.token_type in (TokenType.ALIAS, TokenType.R_PAREN):
            continue
        if tok.token_type == TokenType.VAR or tok.token_type in _KEYWORD_FUNCTIONS:
            names.append(tok.text.lower())
    return names


# DuckDB types Spark has no type of that name for (Spark: string for json/uuid, binary for blob, unsigned -> wider).
DUCKDB_ONLY_TYPES = frozenset("json hugeint uhugeint ubigint uinteger usmallint utinyint uuid blob timestamptz varint bit"
                              .split())


def _type_findings(sql: str) -> set[str]:
    """`x::type` (Spark 3.5 has no `::` cast; 4.0 has), a bare `varchar` (Spark needs a length), DuckDB-only types."""
    found, in_cast = set(), [False]  # in_cast: per open parenthesis, whether it is a cast(…)'s
    tokens = Dialect.get_or_raise("duckdb").tokenize(sql)
    for prev, tok, nxt in zip([None, *tokens], tokens, [*tokens[1:], None], strict=False):
        after = prev.token_type if prev is not None else None
        if tok.token_type == TokenType.L_PAREN:
            in_cast.append(prev is not None and prev.text.lower() in ("cast", "try_cast"))
        elif tok.token_type == TokenType.R_PAREN and len(in_cast) > 1:
            in_cast.pop()
        if tok.token_type == TokenType.DCOLON:
            found.add("construct:x::type cast")
        elif not (after == TokenType.DCOLON or (after == TokenType.ALIAS and in_cast[-1])):
            continue  # a type is named after `::` or a cast's `as` (not an alias's)
        elif tok.text.lower() == "varchar" and (nxt is None or nxt.token_type != TokenType.L_PAREN):
            found.add("type:varchar without a length")
        elif tok.text.lower() in DUCKDB_ONLY_TYPES:
            found.add(f"type:{tok.text.lower()}")
    return found


def _function_findings(sql: str) -> set[str]:
    found = _type_findings(sql)
    for name in function_names(sql):
        if name in BEACON_UDFS:
            found.add(f"udf:{name}")
        elif name in DUCKDB_ONLY or name not in SPARK_FUNCTIONS:
            found.add(f"function:{name}")
    return found


def _construct_findings(trees: list[exp.Expression], sql: str) -> set[str]:
    found = set()
    spark = Dialect.get_or_raise("spark")
    # A DuckDB struct literal is written with braces (Spark's struct(…) / named_struct(…) are plain functions).
    if any(t.token_type == TokenType.L_BRACE for t in Dialect.get_or_raise("duckdb").tokenize(sql)):
        found.add("construct:struct literal {...}")
    for tree in trees:
        for star in tree.find_all(exp.Star):
            for arg, what in (("except_", "SELECT * EXCLUDE"), ("except", "SELECT * EXCLUDE"),
                              ("replace", "SELECT * REPLACE"), ("rename", "SELECT * RENAME")):
                if star.args.get(arg):
                    found.add(f"construct:{what}")
        generator = spark.generator(unsupported_level=ErrorLevel.IGNORE)
        generator.generate(tree)
        found.update(f"unsupported:{m}" for m in generator.unsupported_messages)
    return found


def check_sql(sql: str) -> set[str]:
    """The DuckDB-only functions and constructs of one compiled file, e.g. {"function:arg_max", "parse:spark"}."""
    try:
        found = _function_findings(sql)
    except TokenError:
        return {"parse:duckdb"}  # sqlglot cannot read it as DuckDB: reported, so it is looked at
    # The check runs on what dbt compiled for Spark (dispatch macros in their Spark form), which DuckDB's grammar
    # may not read: the constructs are looked for in the DuckDB tree when there is one, else in Spark's.
    trees = spark_trees = None
    try:
        trees = [t for t in sqlglot.parse(sql, read="duckdb") if t is not None]
    except ParseError:
        pass
    try:
        spark_trees = [t for t in sqlglot.parse(sql, read="spark") if t is not None]
    except (ParseError, TokenError):
        found.add("parse:spark")
    if trees is None and spark_trees is None:
        return found | {"parse:duckdb"}
    return found | _construct_findings(trees if trees is not None else spark_trees, sql)


def check_compiled(compiled_dir: Path) -> dict[str, list[str]]:
    """{file relative to compiled_dir: sorted findings} for every compiled .sql file with at least one finding."""
    files = sorted(compiled_dir.rglob("*.sql"))
    if not files:
        raise FileNotFoundError(f"no compiled SQL under {compiled_dir}: did `dbt compile` run?")
    out = {}
    for path in files:
        found = check_sql(path.read_text(encoding="utf-8"))
        if found:
            out[path.relative_to(compiled_dir).as_posix()] = sorted(found)
    return out


def compare(findings: dict[str, list[str]], baseline: dict[str, list[str]]) -> tuple[dict, dict]:
    """(new, removable): findings not in the baseline (these fail), baseline entries no longer found (to delete)."""
    new = {f: sorted(set(v) - set(baseline.get(f, ()))) for f, v in findings.items()}
    gone = {f: sorted(set(v) - set(findings.get(f, ()))) for f, v in baseline.items()}
    return {f: v for f, v in new.items() if v}, {f: v for f, v in gone.items() if v}


def counts(findings: dict[str, list[str]]) -> Counter:
    """How many files use each construct."""
    return Counter(c for v in findings.values() for c in v)


def load_baseline(path: Path) -> dict[str, list[str]]:
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not all(isinstance(v, list) and all(isinstance(c, str) for c in v)
                                            for v in doc.values()):
        raise ValueError(f"{path}: expected an object of file -> list of findings")
    return doc


def compile_project(project_dir: Path, target_dir: Path, dbt: str = "dbt", target: str | None = "spark") -> Path:
    """`dbt compile` into target_dir (apart from the pipeline's target, so its manifest is left alone), for the
    profile's `target`: `spark` (the default) compiles what Spark is given, each dispatch macro in its Spark form,
    on a local Spark session whose (empty) catalog lives beside target_dir; None: the profile's default (DuckDB)."""
    cmd = [dbt, "compile", "--quiet", "--project-dir", str(project_dir), "--profiles-dir", str(project_dir),
           "--target-path", str(target_dir), *(["--target", target] if target else [])]
    env = {**os.environ, "BEACON_DATA_DIR": str(target_dir.parent / "engine")} if target == "spark" else None
    if subprocess.run(cmd, check=False, env=env).returncode != 0:
        raise RuntimeError(f"dbt compile failed for {project_dir}: see the dbt output above")
    return target_dir / "compiled"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m beacon.dbt_dialect", description=__doc__.splitlines()[0])
    p.add_argument("--project-dir", type=Path, default=Path("dbt_project"))
    p.add_argument("--target-dir", type=Path, default=Path("data/dialect/target"))
    p.add_argument("--baseline", type=Path, default=None, help="default: <project>/dialect_baseline.json")
    p.add_argument("--dbt", default=str(Path(sys.executable).with_name("dbt")))
    p.add_argument("--no-compile", action="store_true", help="check <target>/compiled as it is")
    p.add_argument("--target", default="spark", help="the profile's target to compile for (default spark; "
                   "'default': the profile's default, DuckDB)")
    p.add_argument("--update-baseline", action="store_true", help="write today's findings as the baseline")
    args = p.parse_args(argv)
    baseline_path = args.baseline or args.project_dir / "dialect_baseline.json"
    compiled = args.target_dir / "compiled"
    if not args.no_compile:
        compiled = compile_project(args.project_dir.resolve(), args.target_dir.resolve(), args.dbt,
                                   None if args.target == "default" else args.target)
    findings = check_compiled(compiled)
    if args.update_baseline:
        baseline_path.write_text(json.dumps(findings, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    new, removable = compare(findings, load_baseline(baseline_path))
    total = counts(findings)
    print(f"dialect check: {sum(total.values())} DuckDB-only uses in {len(findings)} compiled files "
          f"({len(total)} constructs; baseline {baseline_path})")
    for construct, n in total.most_common():
        print(f"  {n:4d}  {construct}")
    for f, v in removable.items():
        print(f"fixed (remove from the baseline): {f}: {', '.join(v)}")
    for f, v in new.items():
        print(f"NEW DuckDB-only use in {f}: {', '.join(v)}", file=sys.stderr)
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
