"""Ingest: quarantine matches the generator's truth row for row; nothing lost, nothing loaded twice."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from beacon.generate import GenConfig, generate
from beacon.ingest import load_landing, load_specs


@pytest.fixture()
def world(tmp_path) -> tuple[GenConfig, Path]:
    cfg = GenConfig(people=1500, seed=3, bad_rate=0.01)
    generate(cfg, tmp_path)
    return cfg, tmp_path


def test_quarantine_equals_truth_and_rows_add_up(world, tmp_path):
    cfg, out = world
    wh = tmp_path / "wh.duckdb"
    summary = load_landing(out / "landing", warehouse=wh)
    assert summary.totals()["files_failed"] == 0
    truth = pd.read_parquet(out / "truth" / cfg.day_date().isoformat() / "bad_rows.parquet")
    # Rows read per file against the generator's own record (its summary's rows per file plus the malformed
    # lines it appended), not against the loader's counters, which the loader checks itself.
    gen = json.loads((out / "truth" / cfg.day_date().isoformat() / "summary.json").read_text())["rows"]
    malformed = truth[truth.kind == "malformed"].groupby("file").size().to_dict()
    specs = load_specs()
    generated = {src: n + int(malformed.get(specs[src].file, 0)) for src, n in gen.items()}
    assert {f.source: f.rows_read for f in summary.files} == generated
    for f in summary.files:
        assert f.rows_read == f.rows_loaded + f.rows_quarantined, f.file
    con = duckdb.connect(str(wh))
    q = con.execute("SELECT file, line, reason FROM raw._quarantine").df()
    q["file"] = q.file.map(lambda p: Path(p).name)
    got = set(map(tuple, q[["file", "line", "reason"]].to_numpy().tolist()))
    want = set(map(tuple, truth[["file", "line", "kind"]].to_numpy().tolist()))
    assert got == want  # exactly the bad rows, with the right reason and location
    # Each loaded raw table holds exactly the file's good rows: the warehouse plus the quarantine hold every
    # generated line, and the quarantine exactly the generator's bad ones.
    per_file = q.groupby("file").size().to_dict()
    for f in summary.files:
        n = con.execute(f"SELECT count(*) FROM raw.{f.source}").fetchall()[0][0]
        assert n == f.rows_loaded, f.source
        assert n + per_file.get(specs[f.source].file, 0) == generated[f.source], f.source
    msg = con.execute("SELECT message FROM raw._quarantine WHERE reason = 'wrong_type' LIMIT 1").fetchall()[0][0]
    assert "is not a" in msg  # the message names the field and the expected type


def test_reloading_the_same_files_loads_nothing(world, tmp_path):
    cfg, out = world
    wh = tmp_path / "wh.duckdb"
    first = load_landing(out / "landing", warehouse=wh)
    again = load_landing(out / "landing", warehouse=wh)
    assert again.totals()["files_skipped"] == len(first.files)
    assert again.totals()["rows_loaded"] == 0
    con = duckdb.connect(str(wh))
    assert con.execute("SELECT count(*) FROM raw.crm_contacts").fetchall()[0][0] == \
        next(f.rows_loaded for f in first.files if f.source == "crm_contacts")


def test_changed_file_under_same_name_loads_as_new_version(world, tmp_path):
    cfg, out = world
    wh = tmp_path / "wh.duckdb"
    load_landing(out / "landing", warehouse=wh)
    p = out / "landing" / cfg.day_date().isoformat() / "shop_products.csv"
    p.write_text(p.read_text() + "SKU-99999,New thing,home,consumer,12.50\n")
    s = load_landing(out / "landing", warehouse=wh)
    loaded = [f for f in s.files if f.status == "loaded"]
    assert [f.source for f in loaded] == ["shop_products"]
    assert loaded[0].rows_loaded == 201


def test_missing_required_column_fails_that_file_only(world, tmp_path):
    cfg, out = world
    day = out / "landing" / cfg.day_date().isoformat()
    df = pd.read_csv(day / "crm_companies.csv", dtype=str, on_bad_lines="skip")
    df.drop(columns=["company_id"]).to_csv(day / "crm_companies.csv", index=False)
    s = load_landing(out / "landing", warehouse=tmp_path / "wh.duckdb")
    failed = [f for f in s.files if f.status == "failed"]
    assert [f.source for f in failed] == ["crm_companies"]
    assert "crm_companies.csv" in failed[0].error and "company_id" in failed[0].error
    assert s.totals()["files_loaded"] == len(s.files) - 1


def test_gzip_files_load_like_plain_ones(world, tmp_path):
    cfg, out = world
    day = out / "landing" / cfg.day_date().isoformat()
    plain = load_landing(out / "landing", warehouse=tmp_path / "a.duckdb")
    for name in ("web_events.jsonl", "consent.csv"):
        with open(day / name, "rb") as src, gzip.open(day / f"{name}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        (day / name).unlink()
    zipped = load_landing(out / "landing", warehouse=tmp_path / "b.duckdb")
    by = {f.source: (f.rows_loaded, f.rows_quarantined) for f in plain.files}
    for f in zipped.files:
        assert (f.rows_loaded, f.rows_quarantined) == by[f.source], f.source


def test_specs_reject_unknown_types(tmp_path):
    bad = tmp_path / "sources.yml"
    bad.write_text("sources:\n  x:\n    file: x.csv\n    format: csv\n    key: [id]\n    columns:\n      id: uuid\n")
    with pytest.raises(ValueError, match="x, column id: unknown type 'uuid'"):
        load_specs(bad)
