"""One SQL toolkit: table_exists, quote_ident, sql_literal and transaction live in `beacon.warehouse` only.

The scan reads every Python file under include/, ml/, dags/ and plugins/ with `ast` and reports, by file and
line, code that re-implements one of them: a query on the catalog (information_schema.tables, duckdb_tables(),
duckdb_views()) that asks whether a table exists or lists table names; identifier quoting
(`.replace('"', '""')`); string-literal quoting (`.replace("'", "''")`); BEGIN / COMMIT / ROLLBACK executed
by hand. Docstrings and comments are not code and are not read. Legitimate catalog reads (sizes, columns)
are not flagged: the checker's own cases below show both sides."""

from __future__ import annotations

import ast
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from beacon.warehouse import quote_ident, sql_literal, table_exists, transaction

ROOT = Path(__file__).resolve().parents[2]
HOME = Path("include/beacon/warehouse.py")
SCANNED = ("include", "ml", "dags", "plugins")

CATALOG = re.compile(r"information_schema\s*\.\s*tables|duckdb_(tables|views)\s*\(\s*\)", re.I)
ASKS_FOR_TABLES = re.compile(r"\b(table_name|view_name)\b|\bcount\s*\(", re.I)
TX_STATEMENT = re.compile(r"^\s*(BEGIN|START\s+TRANSACTION|COMMIT|ROLLBACK|ABORT)\b", re.I)
EXECUTES = {"execute", "executemany", "sql", "query"}


def _static_text(node: ast.AST) -> str | None:
    """The text of a string expression: a constant, an f-string (each placeholder as {}) or a `+` of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _static_text(node.left), _static_text(node.right)
        if left is not None or right is not None:
            return (left or "{}") + (right or "{}")
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _is_replace(node: ast.AST, old: str, new: str) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "replace"
            and len(node.args) == 2 and all(isinstance(a, ast.Constant) for a in node.args)
            and [a.value for a in node.args] == [old, new])


def copies(source: str, where: str = "<code>") -> list[str]:
    """Every re-implementation of the toolkit in `source`, as 'where:line: what'."""
    tree = ast.parse(source)
    docs, seen, found = _docstrings(tree), set(), []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if _is_replace(node, '"', '""'):
            found.append(f"{where}:{line}: identifier quoting by hand (use beacon.warehouse.quote_ident)")
        elif _is_replace(node, "'", "''"):
            found.append(f"{where}:{line}: string literal by hand (use beacon.warehouse.sql_literal)")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in EXECUTES
              and node.args and (text := _static_text(node.args[0])) is not None
              and any(TX_STATEMENT.match(part) for part in text.split(";"))):
            found.append(f"{where}:{line}: BEGIN/COMMIT/ROLLBACK by hand (use beacon.warehouse.transaction)")
        if id(node) in seen or id(node) in docs:
            continue
        text = _static_text(node)
        if text is None:
            continue
        seen.update(id(n) for n in ast.walk(node))  # the parts of a string expression are not read again
        if CATALOG.search(text) and ASKS_FOR_TABLES.search(text):
            found.append(f"{where}:{line}: table-exists query on the catalog (use beacon.warehouse.table_exists)")
    return found


def test_no_copy_of_the_sql_toolkit_outside_beacon_warehouse():
    files = sorted(p for d in SCANNED for p in (ROOT / d).rglob("*.py") if p.relative_to(ROOT) != HOME)
    assert len(files) > 100  # the scan reads the code base, not an empty folder
    found = [c for p in files for c in copies(p.read_text(), str(p.relative_to(ROOT)))]
    assert found == [], "copies of the SQL toolkit (beacon.warehouse):\n" + "\n".join(found)


@pytest.mark.parametrize("code", [
    # The copies this test exists to catch, each as it was written somewhere in the code base.
    'def _has(con, s, t):\n    return con.execute("SELECT count(*) FROM information_schema.tables '
    'WHERE table_schema = ? AND table_name = ?", [s, t]).fetchall()[0][0] > 0',
    'if con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = \'j\' "\n'
    '               "AND table_name = \'events\'").fetchall()[0][0] == 0: pass',
    'have = {f"{a}.{b}" for a, b in con.execute("SELECT table_schema, table_name FROM information_schema.tables")}',
    'q = f"SELECT 1 FROM duckdb_views() WHERE view_name = {name!r}"',
    'def _q(name):\n    return \'"\' + name.replace(\'"\', \'""\') + \'"\'',
    'lit = "\'" + a.name.replace("\'", "\'\'") + "\'"',
    'con.execute("BEGIN TRANSACTION")',
    'con.execute("  commit")',
    'con.execute("ROLLBACK")',
    'con.execute("BEGIN; DELETE FROM t; COMMIT")',
])
def test_the_scan_finds_each_kind_of_copy(code):
    assert len(copies(code)) == 1, code


@pytest.mark.parametrize("code", [
    # Legitimate code that mentions the same words: none of it is a copy.
    '"""Uses BEGIN and COMMIT via beacon.warehouse.transaction; see information_schema.tables."""',
    'size = con.execute("SELECT sum(estimated_size) FROM duckdb_tables() WHERE schema_name = \'j\'")',
    'cols = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?", [t])',
    'con.execute("SELECT committed_at, rollback_reason FROM runs")',
    'path = "\'$.\\"" + f.replace(\'"\', \'\\\\"\') + "\\"\'"',
    'from beacon.warehouse import table_exists\nok = table_exists(con, "ml", "scores")',
    'log.info("BEGIN TRANSACTION")',
])
def test_the_scan_leaves_legitimate_code_alone(code):
    assert copies(code) == [], code


# ------------------------------------------------------------------------------------------- the toolkit


def test_table_exists_sees_tables_and_views():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA s; CREATE TABLE s.t (a INT); CREATE VIEW s.v AS SELECT 1 AS a")
    assert table_exists(con, "s", "t") and table_exists(con, "s", "v")
    assert not table_exists(con, "s", "nope") and not table_exists(con, "other", "t")


@pytest.mark.parametrize("name", ["plain", "with space", 'quo"te', "select", "ünï"])
def test_quote_ident_round_trips_any_name(name):
    con = duckdb.connect()
    cur = con.execute(f"SELECT 1 AS {quote_ident(name)}")
    assert cur.description[0][0] == name


def test_quote_ident_refuses_what_is_not_a_name():
    for bad in ("", None, "a\x00b"):
        with pytest.raises(ValueError, match="not an identifier"):
            quote_ident(bad)


@pytest.mark.parametrize("value, back", [
    (None, None), (True, True), (False, False), (42, 42), (-7, -7), (2.5, 2.5), (Decimal("1.10"), Decimal("1.10")),
    ("o'brien; DROP TABLE x --", "o'brien; DROP TABLE x --"), ("", ""),
    (date(2026, 7, 1), date(2026, 7, 1)), (datetime(2026, 7, 1, 6, 5, 4, 3), datetime(2026, 7, 1, 6, 5, 4, 3)),
    (time(9, 30), time(9, 30)), (timedelta(days=7), timedelta(days=7)),
    (timedelta(seconds=1, microseconds=5), timedelta(seconds=1, microseconds=5)),
])
def test_sql_literal_reads_back_as_the_value(value, back):
    got = duckdb.connect().execute(f"SELECT {sql_literal(value)}").fetchone()[0]
    assert got == back and type(got) is type(back)


def test_sql_literal_stores_an_aware_time_as_utc():
    # The warehouse keeps UTC without a zone: 08:00 at +02:00 is 06:00.
    aware = datetime(2026, 7, 1, 8, 0, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert duckdb.connect().execute(f"SELECT {sql_literal(aware)}").fetchone()[0] == datetime(2026, 7, 1, 8, 0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), Decimal("NaN"), object(), b"bytes", "nul\x00"])
def test_sql_literal_refuses_what_it_cannot_spell(bad):
    with pytest.raises(ValueError, match="no SQL literal"):
        sql_literal(bad)


def test_transaction_commits_or_rolls_back_and_keeps_the_first_error():
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a INT PRIMARY KEY)")
    with transaction(con):
        con.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(KeyError, match="stop"):  # any error inside: nothing of the block stays
        with transaction(con):
            con.execute("INSERT INTO t VALUES (2)")
            raise KeyError("stop")
    with pytest.raises(duckdb.ConstraintException):  # the statement's own error, not a ROLLBACK complaint
        with transaction(con):
            con.execute("INSERT INTO t VALUES (3)")
            con.execute("INSERT INTO t VALUES (1)")
    assert con.execute("SELECT list(a ORDER BY a) FROM t").fetchone()[0] == [1]
