"""The demo evaluation: measured lift beside the planted truth, on a small warehouse filled by the engagement model,
and the annotated campaign report checked in headless Chromium."""

from __future__ import annotations

import json
import re
from datetime import datetime

import duckdb
import pandas as pd
import pytest
from support.measure_world import write_measurement_tables

from beacon.generate.engagement import (
    Effect,
    EffectBook,
    nudge_chances,
    randomize,
    respond,
    simulate_people,
    true_effects,
)
from beacon.generate.responses import EFFECTS_FILE, MESSAGES_FILE
from beacon.measure.planted import evaluate, write_annotated_report
from beacon.measure.report import write_page
from beacon.measure.warehouse import campaign_lift

CLOCK = datetime(2026, 7, 9, 12, 0)  # more than the 7-day window after every exposure
# campaign -> (arms with weights, planted effect); a small world, so larger effects than the demo's.
CAMPAIGNS = {
    "journey:win_back": ({"email": 75, "control": 25}, 0.15),
    "audience:engaged_browsers": ({"treatment": 80, "control": 20}, 0.10),
    "audience:rfm_loyal": ({"treatment": 90, "control": 10}, 0.0),
}


def _build(con, world, people: int = 4000):
    pop = simulate_people(people, 21)
    book = EffectBook({c: {a: Effect(conversion=eff, heterogeneity=0.5, days=2.0) for a in arms if a != "control"}
                       for c, (arms, eff) in CAMPAIGNS.items()})
    parts = []
    for i, (c, (arms, _)) in enumerate(CAMPAIGNS.items()):
        e = randomize(pop, c, 40 + i, f"2026-07-0{i + 1} 06:00", arms)
        # A third of the treated could not be sent (no consent, say): intent to treat counts them all the same.
        e["sent"] = e.sent & (pd.Series(range(len(e))) % 3 != 0).to_numpy()
        parts.append(e.assign(holdout_pct=float(arms["control"])))
    exp = pd.concat(parts, ignore_index=True)
    ev = respond(exp, pop, seed=4, effects=book)
    # The world's truth: one row per message with its planted chance of an order (what `respond` drew from).
    sent = exp[exp.sent].reset_index(drop=True)
    msgs = sent.assign(email="x@example.com", node="", destination="email", sent_at=sent.exposed_at,
                       person_idx=range(len(sent)), reached=True, in_shop=True,
                       delta=nudge_chances(sent, pop, book),
                       order_rate=sent.merge(pop, on="customer_id").order_rate,
                       effect_days=2.0, planted=[book.effect(c, a).conversion for c, a in zip(sent.campaign, sent.arm,
                                                                                              strict=True)])
    (world / "truth" / "2026-07-01").mkdir(parents=True)
    msgs.drop(columns=["sent", "channel", "exposed_at", "holdout_pct"]).to_parquet(
        world / "truth" / "2026-07-01" / MESSAGES_FILE)
    (world / "truth" / EFFECTS_FILE).write_text(json.dumps(book.to_dict()))
    tables = exp.assign(source_name=exp.campaign.str.split(":").str[1], messages=exp.sent.astype(int), run_id="r1",
                        exposed_at=exp.exposed_at.dt.tz_localize(None))
    write_measurement_tables(con, tables, ev)
    return exp, pop, book


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    world = tmp_path_factory.mktemp("world")
    con = duckdb.connect()
    exp, pop, book = _build(con, world)
    info = write_annotated_report(con, world / "reports", CLOCK, world)
    return con, world, exp, pop, book, info


def test_expected_lift_is_the_engagement_models_truth_and_the_intervals_cover_it(demo):
    con, world, exp, pop, book, info = demo
    rows = {(r["campaign"], r["arm"]): r for r in info["planted"]}
    assert set(rows) == {(c, a) for c, (arms, _) in CAMPAIGNS.items() for a in arms if a != "control"}
    # The engagement model's own truth for the people who were sent, diluted by the share of the arm sent (intent
    # to treat): the same latent quantities averaged over other people (sent and control), so close, not identical.
    truth = true_effects(exp[exp.sent | (exp.arm == "control")], pop, book, window_days=7.0).dropna(subset=["abs_lift"])
    share = exp[exp.arm != "control"].groupby(["campaign", "arm"]).sent.mean()
    for t in truth.itertuples():
        r = rows[(t.campaign, t.arm)]
        assert r["expected"] == pytest.approx(t.abs_lift * share[(t.campaign, t.arm)], abs=0.005), t.campaign
        assert r["planted"] == book.effect(t.campaign, t.arm).conversion
        assert r["covered"] and r["low"] <= r["measured"] <= r["high"]
        assert r["excludes_zero"] == (r["planted"] >= 0.03)  # big planted effects found, the zero one not
    assert rows[("audience:rfm_loyal", "treatment")]["expected"] == 0.0
    assert evaluate(con, world, CLOCK) == info["planted"]  # the report shows what evaluate computes


def test_the_pipelines_report_knows_no_truth(demo, tmp_path):
    # The DAG's report (write_report -> write_page without `planted`) has no demo evaluation: only `beacon demo`
    # passes the truth.
    con, *_ = demo
    page = write_page(con, tmp_path, CLOCK, campaign_lift(con)).read_text()
    assert "demo-evaluation" not in page and "Planted" not in page and "data-campaign='journey:win_back'" in page


def _pts(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"[+-]\d+\.\d+", text)]


def test_annotated_report_in_chromium_shows_planted_and_measured_per_campaign(demo, browser_page):
    _, _, _, _, _, info = demo
    page = browser_page.page
    page.goto(f"file://{info['report']}")
    assert "Demo evaluation" in page.locator("#demo-evaluation h2").inner_text()
    for r in info["planted"]:
        row = page.locator(f"#demo-evaluation tr[data-campaign='{r['campaign']}'][data-arm='{r['arm']}']")
        cells = row.locator("td").all_inner_texts()
        planted, expected, interval = cells[2], cells[3], cells[5]
        assert _pts(planted) == [pytest.approx(100 * r["planted"], abs=0.005)]
        assert _pts(expected) == [pytest.approx(100 * r["expected"], abs=0.005)]
        est, low, high = _pts(interval)  # "+9.12 [+6.01, +12.20]"
        assert low <= est <= high
        if r["planted"] >= 0.03:  # a planted effect of 3 points or more: the interval excludes zero
            assert low > 0 and cells[7] == "yes", r["campaign"]
        # The campaign's own section says the same beside its results table.
        line = page.locator(f"section[data-campaign='{r['campaign']}'] p.planted[data-arm='{r['arm']}']").inner_text()
        assert f"[95% interval {low:+.2f}, {high:+.2f}]" in line and f"{100 * r['planted']:+.2f} points" in line
    sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    assert sizes and all(ok and w > 0 for ok, w in sizes)
    assert browser_page.console_errors == [] and browser_page.failed_requests == []
