"""Balance within campaigns: a campaign mix with different holdout shares is no imbalance; a real one still is."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.contingency_tables import StratifiedTable
from support.event_days import add_event_day_views

from beacon.measure.balance import imbalance_p, levels_p, scores_p
from beacon.measure.uplift_features import BALANCE_P, choose_features

# campaign: (holdout share, mean past orders of its audience, its audience's share in the north)
CAMPAIGNS = {"win_back": (0.05, 6.0, 0.8), "welcome": (0.5, 0.5, 0.2), "loyal": (0.2, 3.0, 0.5)}


def campaigns_world(n: int = 9000, seed: int = 0, rigged: str | None = None) -> pd.DataFrame:
    """Exposures of three campaigns, each randomized on its own with its own holdout share and audience.

    `rigged`: that campaign's randomization is broken: its holdout takes the people with the fewest orders."""
    rng = np.random.default_rng(seed)
    campaign = rng.choice(list(CAMPAIGNS), n)
    holdout, orders, north = (np.array([CAMPAIGNS[c][k] for c in campaign]) for k in range(3))
    df = pd.DataFrame({"campaign": campaign, "orders": rng.poisson(orders).astype(float),
                       "region": np.where(rng.random(n) < north, "north", "south")})
    df["vip"] = rng.random(n) < 0.05 + df.orders.clip(0, 10) / 15  # the more orders, the likelier a VIP
    df["arm"] = np.where(rng.random(n) < holdout, "control", "treatment")
    if rigged:
        mine = df.campaign == rigged
        few = df.orders < df.orders[mine].median()
        df.loc[mine, "arm"] = np.where(few[mine] & (rng.random(n)[mine] < 2 * CAMPAIGNS[rigged][0]), "control",
                                       "treatment")
    df["opens"] = rng.poisson(np.where(df.arm == "treatment", 1.3, 1.0))  # recorded after the send
    df["converted"] = (rng.random(n) < 0.05 + 0.01 * df.orders.clip(0, 5)).astype(int)
    return df


def test_one_stratum_is_kruskal_wallis_and_chi_square_and_two_by_two_is_mantel_haenszel():
    # The generalized CMH statistics against independent implementations: scipy (one stratum), statsmodels (2x2xK).
    rng = np.random.default_rng(1)
    n = 3000
    arms = pd.Series(rng.choice(["a", "b", "c"], n))
    x = pd.Series(rng.poisson(3, n).astype(float)) + 0.15 * (arms == "a")  # ties, and a small real difference
    one = pd.Series(0, index=x.index)
    assert scores_p(x, arms, one) == pytest.approx(sps.kruskal(*[x[arms == k] for k in "abc"]).pvalue, rel=1e-9)
    level = pd.Series(rng.choice(list("pqrs"), n))
    chi2 = sps.chi2_contingency(pd.crosstab(level, arms).to_numpy(), correction=False)[0]
    assert levels_p(level, arms, one) == pytest.approx(sps.chi2.sf(chi2 * (n - 1) / n, 6), rel=1e-9)
    strata = pd.Series(rng.choice(list("ABCDE"), n))
    arm2 = pd.Series(rng.choice(["t", "c"], n))
    yes = pd.Series((rng.random(n) < 0.3 + 0.1 * (strata == "A") + 0.04 * (arm2 == "t")).astype(int))
    tables = [pd.crosstab(yes[strata == k], arm2[strata == k]).to_numpy() for k in "ABCDE"]
    cmh = StratifiedTable(tables).test_null_odds(correction=False).pvalue
    assert levels_p(yes, arm2, strata) == pytest.approx(cmh, rel=1e-9) and cmh < 0.05


def test_a_campaign_mix_fails_the_pooled_check_but_passes_within_campaigns():
    df = campaigns_world()
    for col, kind in (("orders", "numeric"), ("region", "categorical"), ("vip", "categorical")):
        assert imbalance_p(df[col], df.arm, kind) < 1e-6, col  # pooled: the audiences differ, not the arms
        assert imbalance_p(df[col], df.arm, kind, df.campaign) > 0.01, col
    candidates = df[["arm", "converted", "orders", "region", "vip", "opens"]]
    with pytest.raises(ValueError, match="no pre-treatment feature columns.*orders: differs between the arms"):
        choose_features(candidates, "arm", ["converted"])  # pooled: every column fails (the day-5 failure)
    within = choose_features(candidates, "arm", ["converted"], strata=df.campaign)
    assert within.features == ["orders", "region", "vip"] and within.categorical == ["region", "vip"]
    assert "recorded after assignment" in within.excluded["opens"]  # what the send changed is still caught


def test_a_real_imbalance_within_one_campaign_fails_the_stratified_check():
    df = campaigns_world(rigged="loyal")
    assert imbalance_p(df.orders, df.arm, "numeric", df.campaign) < BALANCE_P
    assert imbalance_p(df.vip, df.arm, "categorical", df.campaign) < BALANCE_P  # vip follows orders
    assert imbalance_p(df.region, df.arm, "categorical", df.campaign) > 0.01  # region was not rigged
    choice = choose_features(df[["arm", "converted", "orders", "region"]], "arm", ["converted"], strata=df.campaign)
    assert choice.features == ["region"] and "differs between the arms" in choice.excluded["orders"]


def test_missing_values_that_follow_the_arm_fail_within_campaigns():
    # A column filled in only for the treated (e.g. a first-open time) is missing more in the control.
    df = campaigns_world()
    filled = df.orders.where((df.arm == "treatment") | (np.arange(len(df)) % 3 == 0))
    assert imbalance_p(filled, df.arm, "numeric", df.campaign) < BALANCE_P


def test_the_stratified_check_holds_its_level_under_random_assignment():
    # 300 balanced worlds: a test that cannot fail, or fails too often, is caught here.
    ps = np.array([[imbalance_p(w.orders, w.arm, "numeric", w.campaign),
                    imbalance_p(w.region, w.arm, "categorical", w.campaign)]
                   for w in (campaigns_world(600, seed) for seed in range(300))])
    rejected = (ps < 0.05).mean(axis=0)
    assert ((rejected > 0.02) & (rejected < 0.09)).all(), rejected
    assert (ps.min(axis=0) < 0.01).all() and (ps.max(axis=0) > 0.9).all()


def _warehouse(world: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    """The marts the feature macro reads: everyone's past orders (`orders` of them) and a few web events."""
    rng = np.random.default_rng(3)
    people = world.customer_id
    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts")
    n_orders = world.orders.astype(int).to_numpy()
    frames = {
        "dim_customers": pd.DataFrame({"customer_id": people, "first_seen_at": pd.Timestamp("2025-01-01"),
                                       "company_id": None, "phone_e164": None}),
        "fct_orders": pd.DataFrame({"customer_id": np.repeat(people, n_orders),
                                    "ordered_at": pd.Timestamp("2026-06-30") - pd.to_timedelta(
                                        rng.uniform(1, 300, n_orders.sum()), unit="D"),
                                    "total_amount": rng.uniform(5, 200, n_orders.sum()).round(2),
                                    "status": "completed"}),
        "fct_web_events": pd.DataFrame({"customer_id": rng.choice(people, 2000), "event_name": "page",
                                        "event_at": pd.Timestamp("2026-06-30") - pd.to_timedelta(
                                            rng.uniform(1, 60, 2000), unit="D")}),
        "fct_web_sessions": pd.DataFrame({"customer_id": pd.Series([], dtype=str),
                                          "session_started_at": pd.Series([], dtype="datetime64[us]")}),
        "fct_email_events": pd.DataFrame({"customer_id": pd.Series([], dtype=str), "event_name": pd.Series([], dtype=str),
                                          "event_at": pd.Series([], dtype="datetime64[us]")}),
    }
    for name, df in frames.items():
        con.register("_f", df)
        con.execute(f"CREATE TABLE marts.{name} AS SELECT * FROM _f")
        con.unregister("_f")
    add_event_day_views(con)
    return con


def test_ml_uplift_trains_on_a_campaign_mix_that_fails_a_pooled_check():
    # The day-5 failure at 100k people, in small: every order feature differs between the pooled arms, because
    # the win-back audience (many orders) is 95% treated and the welcome audience (few) half held out.
    from beacon.measure.warehouse import refresh_uplift_scores

    world = campaigns_world(4000, seed=2).assign(customer_id=[f"c{i:05d}" for i in range(4000)],
                                                 exposed_at=pd.Timestamp("2026-07-01 06:00"))
    con = _warehouse(world)
    frame = world[["customer_id", "campaign", "arm", "converted", "exposed_at"]]
    with pytest.raises(ValueError, match="orders: differs between the arms"):
        choose_features(world[["arm", "converted", "orders"]], "arm", ["converted"])
    out = refresh_uplift_scores(con, pd.Timestamp("2026-07-02"), frame=frame)
    assert out["scored"] == 4000 and "orders_total" in out["features"], out
    assert con.execute("SELECT count(*) FROM ml.uplift").fetchall()[0][0] == 4000
    # Without the campaign, the same rows are pooled: the order features are left out as post-treatment.
    out = refresh_uplift_scores(con, pd.Timestamp("2026-07-02"), frame=frame.drop(columns="campaign"))
    assert "orders_total" not in out.get("features", []) and "differs between the arms" in str(out)
