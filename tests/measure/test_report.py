"""The warehouse path (assignments -> outcomes -> lift -> report) on a small warehouse filled by the engagement model."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import pandas as pd
import pytest
from support.measure_world import write_measurement_tables

from beacon.generate.engagement import Effect, EffectBook, randomize, respond, simulate_people
from beacon.measure import stats
from beacon.measure.outcomes import exposure_outcomes
from beacon.measure.report import write_report
from beacon.measure.warehouse import COVARIATES, campaign_lift

AS_OF = datetime(2026, 7, 20, 12, 0)
CAMPAIGNS = {"audience:win_back_lapsed": (10, 0.06), "audience:cart_abandoners": (20, 0.0),
             "audience:rfm_loyal": (10, 0.03)}


def build(con: duckdb.DuckDBPyConnection, people: int = 3000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """measurement.* and the few marts the report reads, from one population in three randomized campaigns."""
    pop = simulate_people(people, 1).rename(columns={"prior_orders": "prior_orders_90d",
                                                     "prior_revenue": "prior_revenue_90d",
                                                     "prior_visits": "prior_visits_90d"})
    parts = []
    for i, (c, (holdout, _)) in enumerate(CAMPAIGNS.items()):
        e = randomize(pop, c, 100 + i, f"2026-07-0{i + 1} 06:00", {"treatment": 100 - holdout, "control": holdout})
        parts.append(e.assign(holdout_pct=float(holdout)))
    exp = pd.concat(parts, ignore_index=True)
    book = EffectBook({c: {"treatment": Effect(conversion=eff)} for c, (_, eff) in CAMPAIGNS.items()})
    ev = respond(exp, pop, seed=3, effects=book)
    exp = exp.merge(pop[["customer_id", *COVARIATES]], on="customer_id")
    exp = exp.assign(source_name=exp.campaign.str.split(":").str[1], messages=exp.sent.astype(int), run_id="r1",
                     exposed_at=exp.exposed_at.dt.tz_localize(None))
    write_measurement_tables(con, exp, ev)
    return exp, ev


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    con = duckdb.connect()
    exp, ev = build(con)
    out = tmp_path_factory.mktemp("reports")
    info = write_report(con, out, AS_OF)
    return con, exp, ev, info


def test_warehouse_lift_equals_the_file_path(world):
    con, exp, ev, _ = world
    d = campaign_lift(con, audience="win_back_lapsed")
    # The same frame computed directly and analysed as `--csv` would: identical numbers.
    one = exp[exp.campaign == "audience:win_back_lapsed"]
    frame = exposure_outcomes(one, ev[ev.event_type != "open"].drop(columns="campaign"), 7.0)
    direct = stats.lift_table(frame, "arm", "control", ["converted", "revenue"], COVARIATES)
    got = {(r["outcome"]): r for r in d["results"]}
    for r in direct:
        assert got[r.outcome]["abs_low"] == pytest.approx(r.abs_low, abs=1e-12)
        assert got[r.outcome]["cuped_high"] == pytest.approx(r.cuped_high, abs=1e-12)
    assert d["srm_by_campaign"]["audience:win_back_lapsed"]["mismatch"] is False
    roi = d["roi"]["audience:win_back_lapsed"]["treatment"]
    assert roi["messages"] == int(one.sent.sum()) and roi["cost"] == pytest.approx(0.001 * roi["messages"])


def test_report_shows_every_campaign_with_its_interval_and_stores_results(world):
    con, exp, _, info = world
    page = open(info["report"]).read()
    for c in CAMPAIGNS:
        assert f"data-campaign='{c}'" in page
    assert page.count("<img") >= 3 + len(CAMPAIGNS)  # lift, revenue, ROI + one cumulative chart per campaign
    assert "95% interval" in page and "Last-touch view" in page
    stored = con.execute("SELECT campaign, outcome, result FROM measurement.lift_results").df()
    assert set(stored.campaign) == set(CAMPAIGNS)
    assert all(json.loads(r)["abs_low"] <= json.loads(r)["abs_high"] for r in stored.result)
    # Uplift scores for everyone, usable by segments.
    up = con.execute("SELECT count(*), count(DISTINCT decile) FROM ml.uplift").fetchall()[0]
    assert up == (exp.customer_id.nunique(), 10) and info["uplift"]["scored"] == up[0]


def test_last_touch_credits_each_order_once(world):
    from beacon.measure.warehouse import attribution_last_touch

    con, exp, ev, _ = world
    lt = attribution_last_touch(con, 7)
    orders_after_any_sent = con.execute("""SELECT count(*) FROM measurement.campaign_outcome_events o
        WHERE event_type = 'order' AND EXISTS (SELECT 1 FROM measurement.campaign_exposures e
            WHERE e.customer_id = o.customer_id AND e.sent AND o.occurred_at > e.exposed_at
              AND o.occurred_at <= e.exposed_at + INTERVAL 7 DAY)""").fetchall()[0][0]
    assert lt.orders.sum() == orders_after_any_sent  # every order once, none twice


def test_campaign_report_renders_in_chromium(world, browser_page):
    # A real browser: every audience has a section with its interval, and every chart decodes to an image.
    _, _, _, info = world
    page = browser_page.page
    page.goto(f"file://{info['report']}")
    sections = page.locator("section[data-campaign]")
    assert sections.count() == len(CAMPAIGNS)
    for c in CAMPAIGNS:
        text = page.locator(f"section[data-campaign='{c}']").inner_text()
        assert "95% interval" in text and "[" in text and "What this means" in text
    sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    assert len(sizes) >= 3 + len(CAMPAIGNS) and all(ok and w > 0 for ok, w in sizes)
    assert browser_page.console_errors == [] and browser_page.failed_requests == []


def test_cli_lift_on_the_warehouse_with_a_window(tmp_path, monkeypatch, capsys):
    from beacon.cli import main

    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    build(con, people=1500)
    # One of the campaigns as a journey's (its exposures are named journey:<name>): `--journey` selects it.
    con.execute("UPDATE measurement.campaign_exposures SET campaign = 'journey:loyal_path' "
                "WHERE campaign = 'audience:rfm_loyal'")
    con.close()
    monkeypatch.setenv("BEACON_WAREHOUSE", str(path))
    assert main(["measure", "lift", "--journey", "loyal_path", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {r["campaign"] for r in d["results"]} == {"journey:loyal_path"} and d["results"]
    got = {}
    for window in ("2", "7"):
        assert main(["measure", "lift", "--audience", "win_back_lapsed", "--window", window, "--json"]) == 0
        d = json.loads(capsys.readouterr().out)
        got[window] = {r["outcome"]: r for r in d["results"]}
        assert d["window_days"] == float(window) and {r["campaign"] for r in d["results"]} == {"audience:win_back_lapsed"}
    # A shorter window counts fewer conversions, in both groups.
    short, full = got["2"]["converted"], got["7"]["converted"]
    assert short["total_arm"] < full["total_arm"] and short["total_control"] <= full["total_control"]
    assert main(["measure", "lift", "--audience", "nope"]) == 2
    assert "no assignments for 'audience:nope'" in " ".join(capsys.readouterr().err.split())


def test_intervals_cover_the_engagement_models_true_effects(world):
    """Against outside truth: the engagement model's closed-form true lift of each campaign (not the code under
    test) lies inside the warehouse path's 95% interval, for each planted effect (6, 3 and 0 points of
    conversion); the planted null is not called an effect."""
    from beacon.generate.engagement import true_effects

    con, exp, _, _ = world
    d = campaign_lift(con)
    pop = simulate_people(3000, 1)
    book = EffectBook({c: {"treatment": Effect(conversion=eff)} for c, (_, eff) in CAMPAIGNS.items()})
    truth = true_effects(exp[["customer_id", "campaign", "arm", "exposed_at", "sent", "channel"]], pop, book,
                         window_days=d["window_days"])
    got = {r["campaign"]: r for r in d["results"] if r["outcome"] == "converted" and r["arm"] == "treatment"}
    for c, (_, planted) in CAMPAIGNS.items():
        true_lift = float(truth[(truth.campaign == c) & (truth.arm == "treatment")].abs_lift.iloc[0])
        assert (true_lift > 0) == (planted > 0)
        assert got[c]["abs_low"] <= true_lift <= got[c]["abs_high"], (c, true_lift, got[c])
    assert got["audience:cart_abandoners"]["abs_low"] <= 0 <= got["audience:cart_abandoners"]["abs_high"]


def test_last_touch_credits_the_latest_sent_message_not_the_first():
    from beacon.measure.warehouse import attribution_last_touch

    con = duckdb.connect()
    con.execute("CREATE SCHEMA measurement")
    con.execute("""CREATE TABLE measurement.campaign_exposures AS SELECT * FROM (VALUES
        ('p1', 'audience:first', true, TIMESTAMP '2026-07-01 09:00'),
        ('p1', 'audience:second', true, TIMESTAMP '2026-07-02 09:00'),
        ('p2', 'audience:first', true, TIMESTAMP '2026-07-01 09:00'),
        ('p2', 'audience:second', false, TIMESTAMP '2026-07-02 09:00'),  -- held out: not a touch
        ('p3', 'audience:first', true, TIMESTAMP '2026-07-01 09:00')
        ) t(customer_id, campaign, sent, exposed_at)""")
    con.execute("""CREATE TABLE measurement.campaign_outcome_events AS SELECT * FROM (VALUES
        ('p1', 'order', TIMESTAMP '2026-07-03 09:00', 10.0),
        ('p2', 'order', TIMESTAMP '2026-07-03 09:00', 20.0),
        ('p3', 'order', TIMESTAMP '2026-07-12 09:00', 40.0)  -- 11 days later: outside the 7-day window
        ) t(customer_id, event_type, occurred_at, revenue)""")
    lt = attribution_last_touch(con, 7)
    assert {r.campaign: (r.orders, r.revenue) for r in lt.itertuples()} == {"audience:first": (1, 20.0),
                                                                            "audience:second": (1, 10.0)}


def test_the_sample_ratio_check_fires_when_the_holdout_was_not_applied(tmp_path):
    """A 10% holdout of which half the control people were in fact sent (and so logged as treatment): the
    split is 95/5, the check must fire in the lift and say so on the report."""
    con = duckdb.connect()
    build(con, people=2000)
    con.execute("""UPDATE measurement.campaign_exposures SET arm = 'treatment', sent = true
        WHERE campaign = 'audience:win_back_lapsed' AND arm = 'control' AND hash(customer_id) % 2 = 0""")
    d = campaign_lift(con, audience="win_back_lapsed")
    assert d["srm_by_campaign"]["audience:win_back_lapsed"]["mismatch"] is True
    page = open(write_report(con, tmp_path, AS_OF)["report"]).read()
    assert "the split does not match the design; do not trust this lift" in page
