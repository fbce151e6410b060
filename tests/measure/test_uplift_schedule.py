"""The uplift model refits on a schedule, not every day (issue 28; `beacon.measure.uplift_store`).

On a world of several days with late outcomes, the campaign report (scheduled) against the from-scratch paths: on a
refit day its `ml.uplift` equals a refit on a fresh copy of that day's warehouse; between refits it equals the public
`uplift.scores` fitted on the refit day's warehouse and scoring that day's features; the lift is the from-scratch
lift every day, and a report page is written every day."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from support.event_days import add_event_day_views

from beacon.generate.engagement import Effect, EffectBook, randomize, respond, simulate_people
from beacon.measure import uplift_store
from beacon.measure.report import write_report
from beacon.measure.uplift import UpliftScorer, fit_scorer, scores
from beacon.measure.warehouse import (
    COVARIATES,
    _features_at,
    campaign_frames,
    campaign_lift,
    refresh_uplift_scores,
    uplift_training_frame,
)

PEOPLE = 4000
# report days -> warehouse clock; day 8 is seven days after day 1, when the model is due again
CLOCKS = {1: pd.Timestamp("2026-07-01 23:00"), 2: pd.Timestamp("2026-07-02 23:00"),
          3: pd.Timestamp("2026-07-03 23:00"), 8: pd.Timestamp("2026-07-08 23:00")}
CAMPAIGNS = {"audience:win_back": 20, "audience:welcome": 50}  # holdout %
LATE_DAYS = 2  # a quarter of the outcome events reach the warehouse this much after they happened


def make_world(seed: int = 4) -> dict:
    """Everyone, their exposures (a new quarter of each campaign's people every report day) and every event."""
    pop = simulate_people(PEOPLE, seed)
    rng = np.random.default_rng(seed)
    parts = []
    for k, (campaign, holdout) in enumerate(CAMPAIGNS.items()):
        members = pop.sample(frac=0.6, random_state=seed + k)
        for j, (day, clock) in enumerate(CLOCKS.items()):
            who = members.iloc[j::len(CLOCKS)]
            e = randomize(who, campaign, 100 * k + day, clock.normalize() + pd.Timedelta(hours=6),
                          {"treatment": 100 - holdout, "control": holdout})
            parts.append(e.assign(holdout_pct=float(holdout)))
    exp = pd.concat(parts, ignore_index=True)
    book = EffectBook({c: {"treatment": Effect(conversion=0.08, heterogeneity=1.0, days=3.0)} for c in CAMPAIGNS})
    ev = respond(exp, pop, seed=seed, effects=book)
    ev["occurred_at"] = ev.occurred_at.dt.tz_localize(None)
    late = rng.random(len(ev)) < 0.25
    ev["arrives_at"] = ev.occurred_at + pd.to_timedelta(np.where(late, LATE_DAYS, 0), unit="D")
    n_hist = pop.prior_orders.to_numpy()  # the orders before the first exposure: what the features learn from
    history = pd.DataFrame({"customer_id": np.repeat(pop.customer_id, n_hist),
                            "ordered_at": pd.Timestamp("2026-06-30") - pd.to_timedelta(
                                rng.uniform(0, 90, n_hist.sum()), unit="D"),
                            "total_amount": rng.uniform(5, 200, n_hist.sum()).round(2), "status": "completed"})
    exp = exp.merge(pop.rename(columns={f"prior_{c}": f"prior_{c}_90d" for c in ("orders", "revenue", "visits")})
                    [["customer_id", *COVARIATES]], on="customer_id")
    exp = exp.assign(source_name=exp.campaign.str.split(":").str[1], messages=exp.sent.astype(int), run_id="r",
                     exposed_at=exp.exposed_at.dt.tz_localize(None))
    return {"pop": pop, "exp": exp, "ev": ev, "history": history}


def load_day(con: duckdb.DuckDBPyConnection, w: dict, clock: pd.Timestamp) -> None:
    """The warehouse as it stands at `clock`: the exposures so far and the events that have arrived (late ones
    reach earlier exposures' windows on a later day); what the report wrote (ml.*, lift results) stays."""
    con.execute("CREATE SCHEMA IF NOT EXISTS measurement; CREATE SCHEMA IF NOT EXISTS marts")
    ev = w["ev"][w["ev"].arrives_at <= clock]
    orders = ev[ev.event_type == "order"]
    tables = {
        "measurement.campaign_exposures": w["exp"][w["exp"].exposed_at <= clock],
        "measurement.campaign_outcome_events": ev[ev.event_type != "open"][
            ["customer_id", "event_type", "occurred_at", "revenue"]],
        "marts.dim_customers": w["pop"][["customer_id"]].assign(first_seen_at=pd.Timestamp("2025-01-01"),
                                                                company_id=None, phone_e164=None),
        "marts.fct_orders": pd.concat([w["history"], pd.DataFrame({
            "customer_id": orders.customer_id, "ordered_at": orders.occurred_at, "total_amount": orders.revenue,
            "status": "completed"})], ignore_index=True),
        "marts.fct_email_events": ev[ev.event_type.isin(["open", "click"])].rename(
            columns={"occurred_at": "event_at", "event_type": "event_name"})[["customer_id", "event_at", "event_name"]],
        "marts.fct_web_events": pd.DataFrame({"customer_id": pd.Series([], dtype=str), "event_name": pd.Series(
            [], dtype=str), "event_at": pd.Series([], dtype="datetime64[us]")}),
        "marts.fct_web_sessions": pd.DataFrame({"customer_id": pd.Series([], dtype=str),
                                                "session_started_at": pd.Series([], dtype="datetime64[us]")}),
        "marts.warehouse_as_of": pd.DataFrame({"as_of_at": [clock]}),
    }
    for name, df in tables.items():
        con.register("_t", df)
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _t")
        con.unregister("_t")
    add_event_day_views(con)


def uplift_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute("SELECT customer_id, uplift, decile FROM ml.uplift ORDER BY customer_id").df()


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """The report run daily on one warehouse (the scheduled path): each day's info, ml.uplift and lift."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BEACON_RETRAIN_EVERY_DAYS", "7")
    mp.setenv("BEACON_MEASUREMENT_WINDOW_DAYS", "7")
    w = make_world()
    out = tmp_path_factory.mktemp("reports")
    con = duckdb.connect()
    got = {}
    try:
        for day, clock in CLOCKS.items():
            load_day(con, w, clock)
            info = write_report(con, out, clock)
            got[day] = {"info": info, "uplift": uplift_table(con), "lift": campaign_lift(con)}
        yield w, out, con, got
    finally:
        mp.undo()
        con.close()


def test_the_world_has_late_outcomes_for_earlier_exposures(days):
    # Without late events the scheduled and the from-scratch paths would be compared on an easy world.
    w, _, _, _ = days
    con = duckdb.connect()
    first = w["exp"].exposed_at <= CLOCKS[1]
    conv = {}
    for day in (1, 2, 3):
        load_day(con, w, CLOCKS[day])
        f, _ = campaign_frames(con, None, 7)
        conv[day] = int(f[f.exposed_at <= CLOCKS[1]].converted.sum())
    assert first.sum() > 0 and conv[1] < conv[2] < conv[3]
    late = w["ev"][(w["ev"].arrives_at > CLOCKS[2]) & (w["ev"].occurred_at <= CLOCKS[2])]
    assert (late.event_type == "order").any()


def test_the_model_refits_on_day_one_and_when_due_and_is_reused_in_between(days):
    _, _, con, got = days
    refit = {d: g["info"]["uplift"]["refit"] for d, g in got.items()}
    assert refit == {1: True, 2: False, 3: False, 8: True}, {d: g["info"]["uplift"]["reason"] for d, g in got.items()}
    assert got[1]["info"]["uplift"]["reason"] == "no stored uplift model yet"
    assert "7.0 days ago (every 7)" in got[8]["info"]["uplift"]["reason"]
    models = con.execute("SELECT trained_at, trained_rows FROM ml.uplift_models ORDER BY trained_at").fetchall()
    assert [m[0] for m in models] == [CLOCKS[1], CLOCKS[8]] and models[0][1] < models[1][1]
    for g in got.values():  # everyone scored every day, deciles 1..10
        assert g["info"]["uplift"]["scored"] == PEOPLE == len(g["uplift"]) and g["uplift"].decile.nunique() == 10


def test_on_refit_days_the_scores_equal_a_refit_from_scratch(days):
    w, _, _, got = days
    for day in (1, 8):
        fresh = duckdb.connect()
        load_day(fresh, w, CLOCKS[day])
        info = refresh_uplift_scores(fresh, CLOCKS[day])  # no schedule: refits on every call
        assert info["refit"] and info["features"] == got[day]["info"]["uplift"]["features"]
        pd.testing.assert_frame_equal(uplift_table(fresh), got[day]["uplift"], check_exact=True)


def test_between_refits_the_stored_model_scores_as_the_refit_days_model(days):
    """Days 2 and 3 score with day 1's stored model: equal, to the last bit, to `uplift.scores` fitted on day 1's
    warehouse and scoring that day's features; a daily refit would have given other scores (late outcomes)."""
    w, _, _, got = days
    ref = duckdb.connect()
    load_day(ref, w, CLOCKS[1])
    frame, _ = campaign_frames(ref, None, 7)
    train = uplift_training_frame(ref, frame.assign(arm=frame.arm.where(frame.arm == "control", "treatment")))
    features = got[1]["info"]["uplift"]["features"]
    for day in (2, 3):
        load_day(ref, w, CLOCKS[day])
        now = _features_at(ref, CLOCKS[day], ref.execute("SELECT customer_id FROM marts.dim_customers").df())
        now = now.sort_values("customer_id", ignore_index=True)  # ties in uplift take their deciles in this order
        want = scores(train, "arm", "control", "converted", features, score_rows=now, strata=train.campaign)
        want = want.sort_values("customer_id", ignore_index=True)[["customer_id", "uplift", "decile"]]
        pd.testing.assert_frame_equal(got[day]["uplift"], want, check_exact=True, check_dtype=False)
        daily = duckdb.connect()
        load_day(daily, w, CLOCKS[day])
        refresh_uplift_scores(daily, CLOCKS[day])
        assert not np.array_equal(uplift_table(daily).uplift, got[day]["uplift"].uplift)


def test_the_lift_is_the_from_scratch_lift_and_a_page_is_written_every_day(days):
    w, out, con, got = days
    for day, clock in CLOCKS.items():
        fresh = duckdb.connect()
        load_day(fresh, w, clock)
        assert campaign_lift(fresh)["results"] == got[day]["lift"]["results"]
        assert (out / f"campaigns_{clock.date().isoformat()}.html").is_file()
    stored = con.execute("SELECT count(DISTINCT as_of) FROM measurement.lift_results").fetchall()[0][0]
    assert stored == len(CLOCKS)


def test_the_stored_scorer_predicts_exactly_as_the_fitted_learner():
    # LightGBM's model text round trip (no pickle): the same predictions, to the last bit, as the fitted learner.
    from beacon.measure.uplift import LEARNERS
    from beacon.measure.uplift_features import choose_features, design, levels

    rng = np.random.default_rng(1)
    n = 3000
    df = pd.DataFrame({"customer_id": range(n), "arm": rng.choice(["t", "c"], n),
                       "history": rng.gamma(2, 100, n), "region": rng.choice(["n", "s", "e"], n)})
    df["y"] = (rng.random(n) < 0.1 + 0.1 * ((df.arm == "t") & (df.region == "n"))).astype(int)
    rows = df.sample(500, random_state=2).assign(region=lambda d: d.region.where(d.index % 7 > 0, "unseen"))
    for learner in LEARNERS:
        scorer = fit_scorer(df, "arm", "c", "y", ["history", "region"], learner=learner)
        choice = choose_features(df, "arm", ["y"], ["history", "region"])
        cats = levels(df, choice)
        model = LEARNERS[learner]().fit(design(df, choice, cats), df.y.to_numpy(float), (df.arm == "t").to_numpy(int))
        want = model.predict(design(rows, choice, cats))
        assert np.array_equal(scorer.predict(rows), want), learner
        assert np.array_equal(UpliftScorer.from_json(scorer.to_json()).predict(rows), want), learner


def _stored(trained_at="2026-07-01 23:00", window=7.0, source="customer_features", features=("a",)):
    scorer = UpliftScorer("response_model", "converted", list(features), {}, {"m1": "x"}, None, 10)
    return uplift_store.StoredModel(pd.Timestamp(trained_at), window, source, {}, scorer)


@pytest.mark.parametrize(("stored", "as_of", "kw", "due", "why"), [
    (None, "2026-07-02", {}, True, "no stored uplift model yet"),
    (_stored(), "2026-07-02 23:00", {}, False, "next refit due at 2026-07-08 23:00"),
    (_stored(), "2026-07-08 22:59", {}, False, "next refit due"),
    (_stored(), "2026-07-08 23:00", {}, True, "7.0 days ago (every 7)"),
    (_stored(), "2026-07-02 23:00", {"every_days": 1}, True, "1.0 days ago (every 1)"),
    (_stored(), "2026-06-30", {}, True, "after the warehouse clock"),
    (_stored(window=3.0), "2026-07-02", {}, True, "within 3 days, this run 7"),
    (_stored(source="covariates"), "2026-07-02", {}, True, "features came from covariates"),
    (_stored(features=("a", "gone")), "2026-07-02", {"columns": ["a", "b"]}, True, "['gone'] are not among"),
    (_stored(features=("a",)), "2026-07-02", {"columns": ["a", "b"]}, False, "next refit due"),
    (_stored(), "2026-07-02", {"force": True}, True, "forced"),
])
def test_the_refit_schedule_decides(stored, as_of, kw, due, why):
    kw = {"every_days": 7.0} | kw
    d = uplift_store.decide(stored, pd.Timestamp(as_of), 7.0, "customer_features", **kw)
    assert d.due is due and why in d.reason, d


def test_the_schedule_refuses_a_period_that_is_not_positive():
    with pytest.raises(ValueError, match="every_days must be positive"):
        uplift_store.decide(None, pd.Timestamp("2026-07-02"), 7.0, "customer_features", 0)


@pytest.mark.parametrize(("damage", "why"), [
    ("""json_set(model, '$.models.tau0', '"not a model"')""", "the stored uplift model cannot score"),
    ("""'{"learner": "x_learner"}'""", "the stored uplift model cannot be read"),
])
def test_a_damaged_stored_model_is_refitted_not_a_crash(monkeypatch, damage, why):
    monkeypatch.setenv("BEACON_MEASUREMENT_WINDOW_DAYS", "7")
    w = make_world(seed=6)
    con = duckdb.connect()
    load_day(con, w, CLOCKS[2])
    assert refresh_uplift_scores(con, CLOCKS[2], every_days=7)["refit"] is True
    con.execute(f"UPDATE {uplift_store.TABLE} SET model = {damage}")
    load_day(con, w, CLOCKS[3])
    out = refresh_uplift_scores(con, CLOCKS[3], every_days=7)
    assert out["refit"] is True and out["reason"].startswith(why) and out["scored"] == PEOPLE, out
    assert con.execute(f"SELECT count(*) FROM {uplift_store.TABLE}").fetchall()[0][0] == 2
