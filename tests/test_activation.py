"""Activation: consent and holdout before export; CSV is safe for spreadsheets; the manifest is exact."""

from __future__ import annotations

import hashlib
import json

import duckdb
import pandas as pd

from beacon.activation.destinations.file import FileExport, neutralize_formulas
from beacon.activation.export import export_audience, governed_members
from beacon.audiences import Audience


def _audience(holdout: float = 0.0) -> Audience:
    return Audience(name="test_aud", description="d", owner="o", channels=("file",), priority=1, holdout_pct=holdout,
                    refresh="daily", relation="segments.test_aud", model="test_aud", path="models/segments/test_aud.sql")


def _warehouse(n: int = 200) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA segments; CREATE SCHEMA marts")
    con.execute(f"CREATE TABLE segments.test_aud AS SELECT 'c' || i AS customer_id, 'p' || i || '@x.com' AS email "
                f"FROM range({n}) t(i)")
    # c0..c99 opted in, c100..c149 opted out, the rest have no consent record.
    con.execute("""CREATE TABLE marts.dim_consent AS
        SELECT 'c' || i AS customer_id, 'email' AS channel, CASE WHEN i < 100 THEN 'opt_in' ELSE 'opt_out' END AS status
        FROM range(150) t(i)""")
    return con


def test_only_opted_in_members_are_exported(tmp_path):
    con = _warehouse()
    s = export_audience(con, _audience(), str(tmp_path), "2026-06-30")
    assert s.source_rows == 200 and s.delivered == 100
    assert s.suppressed == {"no_consent": 50, "opted_out": 50}
    df = pd.read_csv(tmp_path / "test_aud" / "2026-06-30" / "test_aud.csv")
    assert set(df.customer_id) == {f"c{i}" for i in range(100)}


def test_holdout_is_deterministic_and_close_to_the_share():
    con = _warehouse(5000)
    con.execute("UPDATE marts.dim_consent SET status = 'opt_in'")
    a = governed_members(con, _audience(20), "file")
    b = governed_members(con, _audience(20), "file")
    assert (a.held_out == b.held_out).all()
    assert 0.17 < a.held_out.mean() < 0.23
    other = governed_members(con, Audience(**{**_audience(20).__dict__, "name": "other"}), "file")
    assert (a.held_out != other.held_out).any()  # independent per audience


def test_held_out_members_are_logged_not_exported(tmp_path):
    con = _warehouse()
    s = export_audience(con, _audience(30), str(tmp_path), "2026-06-30")
    log = con.execute("SELECT status, count(*) FROM activation.deliveries GROUP BY 1").df().set_index("status")["count_star()"]
    assert s.held_out == log["held_out"] > 0 and s.delivered == log["delivered"]
    assert s.delivered + s.held_out == 100
    # Re-running the same day rewrites, it does not append.
    export_audience(con, _audience(30), str(tmp_path), "2026-06-30")
    assert con.execute("SELECT count(*) FROM activation.deliveries").fetchall()[0][0] == 200


def test_manifest_matches_the_file(tmp_path):
    con = _warehouse()
    export_audience(con, _audience(), str(tmp_path), "2026-06-30")
    folder = tmp_path / "test_aud" / "2026-06-30"
    m = json.loads((folder / "manifest.json").read_text())
    data = (folder / "test_aud.csv").read_bytes()
    assert m["sha256"] == hashlib.sha256(data).hexdigest()
    assert m["row_count"] == len(pd.read_csv(folder / "test_aud.csv")) == 100
    assert [c["name"] for c in m["columns"]][:2] == ["customer_id", "email"]


def test_formula_injection_is_neutralized(tmp_path):
    df = pd.DataFrame({"customer_id": ["a", "b", "c"], "first_name": ["=HYPERLINK(\"x\")", "+1", "Ann"], "n": [1, 2, 3]})
    out = neutralize_formulas(df)
    assert out.first_name.tolist() == ["'=HYPERLINK(\"x\")", "'+1", "Ann"]
    dest = FileExport(str(tmp_path))
    dest.send(dest.plan(df, "x", {"audience": "x"})[0])
    assert "'=HYPERLINK" in (tmp_path / "x" / "x.csv").read_text()
