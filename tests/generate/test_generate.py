"""Generator: deterministic for a seed, truth consistent with the files, configured rates honoured."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from beacon.generate import FILES, GenConfig, generate


def _hashes(folder: Path) -> dict[str, str]:
    # summary.json holds timings and paths; everything else must be byte-identical.
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.name != "summary.json"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[GenConfig, Path]:
    out = tmp_path_factory.mktemp("world")
    cfg = GenConfig(people=3000, seed=7, dup_rate=0.1, bad_rate=0.01)
    generate(cfg, out)
    generate(GenConfig(people=3000, seed=7, dup_rate=0.1, bad_rate=0.01, day=2), out)
    return cfg, out


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(GenConfig(people=800, seed=1), a)
    generate(GenConfig(people=800, seed=1), b)
    generate(GenConfig(people=800, seed=2), c)
    day = GenConfig().day_date().isoformat()
    assert _hashes(a / "landing" / day) == _hashes(b / "landing" / day)
    assert _hashes(a / "truth" / day) == _hashes(b / "truth" / day)
    assert _hashes(a / "landing" / day)["crm_contacts.csv"] != _hashes(c / "landing" / day)["crm_contacts.csv"]


def test_writes_every_source_in_its_format(world):
    cfg, out = world
    landing = out / "landing" / cfg.day_date().isoformat()
    for name, fmt in FILES.items():
        assert (landing / f"{name}.{fmt}").stat().st_size > 0, name


def test_truth_maps_every_source_record_to_a_person(world):
    cfg, out = world
    day = cfg.day_date().isoformat()
    landing, truth = out / "landing" / day, out / "truth" / day
    rm = pd.read_parquet(truth / "record_map.parquet")
    people = pd.read_parquet(truth / "people.parquet")
    assert len(people) == cfg.people and people.person_id.is_unique
    assert set(rm.person_id) <= set(people.person_id)
    con = duckdb.connect()
    for source, file, key in (("crm_contacts", "crm_contacts.csv", "contact_id"),
                              ("shop_customers", "shop_customers.csv", "customer_id")):
        ids = {r[0] for r in con.execute(
            f"SELECT {key} FROM read_csv('{landing / file}', all_varchar=true, ignore_errors=true) "
            f"WHERE {key} IS NOT NULL AND {key} <> 'junk'").fetchall()}
        truth_ids = set(rm[rm.source == source].record_id)
        blanked = pd.read_parquet(truth / "bad_rows.parquet").query("file == @file and kind == 'missing_key'")
        # Every id in the file is in the truth; the truth also keeps the ids the bad rows lost.
        assert ids <= truth_ids, source
        assert len(truth_ids - ids) == len(blanked), source
    # People flagged as CRM or shop members really have records there.
    crm_people = set(rm[rm.source == "crm_contacts"].person_id)
    assert crm_people == set(people[people.in_crm].person_id)


def test_duplicate_rate_is_honoured(world):
    cfg, out = world
    rm = pd.read_parquet(out / "truth" / cfg.day_date().isoformat() / "record_map.parquet")
    per_person = rm[rm.source == "crm_contacts"].groupby("person_id").size()
    share = (per_person > 1).mean()
    assert abs(share - cfg.dup_rate) < 0.025, share


def test_bad_row_rate_is_honoured(world):
    cfg, out = world
    day = cfg.day_date().isoformat()
    bad = pd.read_parquet(out / "truth" / day / "bad_rows.parquet")
    summary = pd.read_json(out / "truth" / day / "summary.json", typ="series")
    rows = summary["rows"]
    for name, fmt in FILES.items():
        if name not in rows or name == "shop_order_items" or name == "shop_products":
            continue
        n = rows[name]
        in_place = (bad.file == f"{name}.{fmt}") & (bad.kind != "malformed")
        malformed = (bad.file == f"{name}.{fmt}") & (bad.kind == "malformed")
        assert in_place.sum() == round(n * cfg.bad_rate), name
        if fmt != "parquet":
            assert malformed.sum() == round(n * cfg.bad_rate / 2), name
    assert set(bad.kind) == {"malformed", "missing_key", "wrong_type", "future_timestamp"}


def test_sources_carry_realistic_variation(world):
    cfg, out = world
    crm = pd.read_csv(out / "landing" / cfg.day_date().isoformat() / "crm_contacts.csv", dtype=str, on_bad_lines="skip")
    emails = crm.email.dropna()
    assert (emails.str.contains(r"\+", regex=True)).mean() > 0.03  # plus-addressing
    assert (emails != emails.str.lower()).mean() > 0.05  # case
    assert (emails != emails.str.strip()).mean() > 0.01  # whitespace
    phones = crm.phone.dropna()
    assert phones.str.startswith("(").any() and phones.str.contains(r"^\d{3}\.\d{3}", regex=True).any()
    assert crm.street.str.contains(r" (?:St|Ave|Rd|Blvd|Dr|Ln)$", regex=True).any()


def test_day_two_adds_people_changes_and_events_without_rewriting_day_one(world):
    cfg, out = world
    d1, d2 = cfg.day_date(1).isoformat(), cfg.day_date(2).isoformat()
    p1 = pd.read_parquet(out / "truth" / d1 / "people.parquet")
    p2 = pd.read_parquet(out / "truth" / d2 / "people.parquet")
    assert len(p2) == round(cfg.people * cfg.new_people_rate)
    assert not set(p2.person_id) & set(p1.person_id)
    crm2 = pd.read_csv(out / "landing" / d2 / "crm_contacts.csv", dtype=str, on_bad_lines="skip")
    rm1 = pd.read_parquet(out / "truth" / d1 / "record_map.parquet")
    changed = set(crm2.contact_id.dropna()) & set(rm1.record_id)
    assert changed, "day 2 should re-deliver some changed day-1 contacts"
    con = duckdb.connect()
    lo, hi = con.execute(f"""SELECT min(timestamp), max(timestamp) FROM read_json('{out / 'landing' / d2 / 'email_events.jsonl'}',
                             ignore_errors=true) WHERE event_id IS NOT NULL""").fetchall()[0]
    start = pd.Timestamp(d2, tz="UTC").timestamp()
    assert lo >= start  # events are new facts of day 2 (bad rows may be in the future)


@pytest.mark.parametrize("people,seed", [(400, 7), (50, 3)])
def test_small_later_days_without_bad_event_rows_still_write(tmp_path, people, seed):
    """A small day can draw no bad event rows at all; the writers must not depend on there being some."""
    for day in (1, 2, 3):
        summary = generate(GenConfig(people=people, seed=seed, day=day), tmp_path)
        lines = (Path(summary.landing) / "web_events.jsonl").read_text().splitlines()
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:  # the planted malformed lines
                continue
        assert summary.rows["web_events"] > 0 and len(parsed) >= summary.rows["web_events"] - summary.bad_rows.get("malformed", 0)
        assert all(event["messageId"] for event in parsed)


def test_a_shorter_history_has_the_same_people_within_its_days(tmp_path):
    """`history_days`: the same people (names, contacts, traits), signing up and acting within the last N days
    before `as_of`; the default is a year."""
    full, short = GenConfig(people=800, seed=1), GenConfig(people=800, seed=1, history_days=30)
    assert full.history_days == 365
    generate(full, tmp_path / "full")
    generate(short, tmp_path / "short")
    day = full.day_date().isoformat()
    people = {k: pd.read_parquet(tmp_path / k / "truth" / day / "people.parquet") for k in ("full", "short")}
    traits = ["person_id", "first_name", "last_name", "email", "phone", "engagement", "intent", "value"]
    pd.testing.assert_frame_equal(people["full"][traits], people["short"][traits])
    first = pd.Timestamp(full.as_of, tz="UTC") - pd.Timedelta(days=29)
    end = pd.Timestamp(full.as_of, tz="UTC") + pd.Timedelta(days=1)
    for name, frame in people.items():
        created = pd.to_datetime(frame.created_ts, unit="s", utc=True)
        assert created.max() < end
        assert (created.min() >= first) == (name == "short"), name  # the year-long world starts long before
    con = duckdb.connect()
    # Web events carry ISO times, email events epoch seconds; bad rows in the future are left out.
    for source, time in (("web_events.jsonl", "TRY_CAST(timestamp AS TIMESTAMPTZ)"),
                         ("email_events.jsonl", "to_timestamp(TRY_CAST(timestamp AS BIGINT))")):
        lo, days = con.execute(f"""SELECT min(t), count(DISTINCT CAST(t AS DATE)) FROM (
                                     SELECT {time} AS t
                                     FROM read_json('{tmp_path / 'short' / 'landing' / day / source}',
                                                    ignore_errors=true, format='newline_delimited', union_by_name=true)
                                   ) WHERE t < '{end.isoformat()}'""").fetchone()
        assert pd.Timestamp(lo).tz_convert("UTC") >= first and 20 <= days <= 30, source
    orders = pd.read_parquet(tmp_path / "short" / "landing" / day / "shop_orders.parquet")
    assert len(orders) > 0
    with pytest.raises(ValueError, match="history_days"):
        GenConfig(history_days=0)
