"""The demo world answers what Beacon sent: sends read from delivered files, people found by address, answers
drawn with the planted effect, kept in the truth folder and written into the landing day they fall in."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from beacon.generate import GenConfig, generate, people
from beacon.generate.engagement import Effect, EffectBook
from beacon.generate.responses import (
    MESSAGES_FILE,
    answer_day,
    read_book,
    read_messages,
    read_sends,
    respond_to_sends,
    responses_between,
)

DAY1 = date(2026, 6, 30)
AS_OF = "2026-06-30 23:59:59"


def _deliver(root: Path, audience: str, rows: pd.DataFrame, as_of: str = AS_OF, destination: str = "file") -> None:
    """A file destination's output: <root>/<audience>/<day>/<stem>.csv and its manifest."""
    folder = root / audience / as_of[:10]
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{audience}-{hashlib.sha256(rows.to_csv().encode()).hexdigest()[:8]}"
    rows.to_csv(folder / f"{stem}.csv", index=False)
    (folder / f"{stem}.manifest.json").write_text(json.dumps(
        {"audience": audience, "destination": destination, "as_of": as_of, "file": f"{stem}.csv", "format": "csv",
         "row_count": len(rows)}))


def test_read_sends_counts_added_members_and_every_journey_send_once(tmp_path):
    exports, outbox = tmp_path / "exports", tmp_path / "outbox"
    aud = pd.DataFrame({"customer_id": ["c1", "c2", "c3", "c4"], "operation": ["add", "update", "remove", "add"],
                        "email": ["a@x.io", "b@x.io", "c@x.io", ""]})
    _deliver(exports, "win_back_lapsed", aud)
    _deliver(outbox, "win_back_lapsed", aud.iloc[:1], destination="email")  # the same message through email
    _deliver(exports, "win_back_lapsed", aud.assign(customer_id=["c5", "c6", "c7", "c8"]), "2026-07-01 23:59:59")
    j = pd.DataFrame({"customer_id": ["c1", "c2", "c9"], "operation": ["add", "update", "add"],
                      "email": ["a@x.io", "b@x.io", "z@x.io"], "journey": "win_back", "journey_node": "win_back_email",
                      "journey_arm": ["email", "email", ""]})
    _deliver(outbox, "journey__win_back__win_back_email", j, destination="email")
    got = read_sends([exports, outbox], DAY1)
    # The audience: only its added member with an address (update and removal are no message; the email copy of
    # the export is the same message); the journey: every send, an arm-less one counted as treated.
    assert sorted(zip(got.campaign, got.customer_id, got.arm, strict=True)) == [
        ("audience:win_back_lapsed", "c1", "treatment"), ("journey:win_back", "c1", "email"),
        ("journey:win_back", "c2", "email"), ("journey:win_back", "c9", "treatment")]
    assert (got.sent_at == pd.Timestamp(AS_OF, tz="UTC")).all()
    assert read_sends([tmp_path / "nothing"], DAY1).empty


@pytest.fixture(scope="module")
def answered(tmp_path_factory):
    """Day-1 messages to 400 shop customers, 100 people without a shop account and one unknown address."""
    out = tmp_path_factory.mktemp("world")
    cfg = GenConfig(people=3000, seed=3)
    P = people(cfg)
    shop = P[P.in_shop & P.email.notna()].head(400)
    other = P[~P.in_shop & P.email.notna()].head(100)
    sends = pd.DataFrame({
        "customer_id": [f"cus_{i}" for i in range(501)],
        "email": [*shop.email.str.upper(), *other.email, "nobody@nowhere.example"],  # addresses match in any case
        "campaign": "journey:win_back", "arm": "email", "node": "win_back_email",
        "sent_at": pd.Timestamp(AS_OF, tz="UTC"), "destination": "email"})
    book = EffectBook({"journey:win_back": {"email": Effect(conversion=0.4, days=1.5)}}, horizon_days=0.0)
    summary = respond_to_sends(out, cfg, sends, book)
    return out, cfg, sends, shop, other, summary


def test_people_are_found_by_address_and_only_shop_customers_can_be_nudged(answered):
    out, cfg, sends, shop, other, summary = answered
    m = read_messages(out)
    assert len(m) == 501 and summary["reached"] == 500 and not m.reached.iloc[-1]
    assert set(m.person_idx.dropna().astype(int)) == set(shop.person_idx) | set(other.person_idx)
    assert (m.delta[~m.in_shop] == 0).all() and (m.delta[m.in_shop] > 0).all()
    assert m.planted.eq(0.4).all() and read_book(out).effect("journey:win_back", "email").conversion == 0.4
    ev = pd.read_parquet(next(out.glob("truth/*/beacon_responses.parquet")))
    orders = ev[ev.kind == "order"]
    assert set(orders.person_idx) <= set(shop.person_idx)  # no shop account, no order
    # Nudged orders: about the sum of the planted chances (a binomial sum; 5 standard deviations of slack).
    d = m.delta.to_numpy()
    assert abs(len(orders) - d.sum()) < 5 * np.sqrt((d * (1 - d)).sum())
    assert (ev.ts >= pd.Timestamp(AS_OF, tz="UTC").timestamp()).all()  # nothing before the message
    assert orders.ts.max() <= pd.Timestamp(AS_OF, tz="UTC").timestamp() + 1.5 * 86400
    assert (ev.kind == "delivered").sum() == 500 and {"open", "click"} <= set(ev.kind)


def test_answers_land_in_the_day_they_fall_in(answered, tmp_path):
    out, cfg, *_ = answered
    t0 = int(pd.Timestamp("2026-07-01", tz="UTC").timestamp())
    day2, day3 = responses_between(out, t0, t0 + 86400), responses_between(out, t0 + 86400, t0 + 2 * 86400)
    everything = pd.read_parquet(next(out.glob("truth/*/beacon_responses.parquet")))
    assert len(day2) + len(day3) == len(everything) and len(day3) > 0  # 1.5 effect days reach into day 3
    # Day 2 of the world with its answers: the nudged orders are in the shop's file, the webhooks in the email file.
    world = tmp_path / "w"
    generate(GenConfig(people=3000, seed=3, day=2), world)
    generate(GenConfig(people=3000, seed=3, day=2), world / "answered", day2)
    con = duckdb.connect()
    land = "landing/2026-07-01"
    n0 = con.execute(f"SELECT count(*) FROM '{world}/{land}/shop_orders.parquet'").fetchall()[0][0]
    n1 = con.execute(f"SELECT count(*) FROM '{world}/answered/{land}/shop_orders.parquet'").fetchall()[0][0]
    assert n1 - n0 == (day2.kind == "order").sum() > 0
    # (The generator's deliberately malformed lines are skipped here; ingest quarantines them.)
    beacon = con.execute(f"""SELECT event, count(*) FROM read_json_auto('{world}/answered/{land}/email_events.jsonl',
        ignore_errors = true) WHERE campaign_id = 'cmp_beacon-journey-win_back' GROUP BY 1""").fetchall()
    assert dict(beacon)["delivered"] == 500 and dict(beacon)["open"] == (day2.kind == "open").sum()


def test_without_answers_the_world_is_byte_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    generate(GenConfig(people=800, seed=1, day=2), a)
    generate(GenConfig(people=800, seed=1, day=2), b, pd.DataFrame(columns=["person_idx", "kind", "ts"]))
    day = GenConfig(day=2).day_date().isoformat()
    for f in (a / "landing" / day).iterdir():
        assert f.read_bytes() == (b / "landing" / day / f.name).read_bytes(), f.name


def test_answer_day_reads_the_previous_days_deliveries(tmp_path):
    cfg = GenConfig(people=3000, seed=3, day=2)
    P = people(cfg)
    buyer = P[P.in_shop & P.email.notna()].iloc[0]
    _deliver(tmp_path / "exports", "rfm_loyal", pd.DataFrame({"customer_id": ["c1"], "operation": ["add"],
                                                               "email": [buyer.email]}))
    answers, summary = answer_day(tmp_path, cfg, [tmp_path / "exports"])
    assert summary["messages"] == summary["reached"] == 1 and (tmp_path / "truth" / "2026-06-30" / MESSAGES_FILE).exists()
    assert set(answers.person_idx) == {buyer.person_idx} and {"sent", "delivered"} <= set(answers.kind)
