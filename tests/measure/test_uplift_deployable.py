"""Uplift that can be deployed: pre-treatment features only, categoricals used, several arms, strict JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from support.event_days import add_event_day_views

from beacon.cli import main
from beacon.measure.uplift import evaluate, scores
from beacon.measure.uplift_features import choose_features


def three_arms(n: int = 12_000, seed: int = 0) -> pd.DataFrame:
    """A three-arm e-mail test with a known answer: 'mens' lifts visits by 12 points in the north only,
    'womens' by 4 points everywhere; `opened`, `conversion` and `spend` are recorded after the send."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east", "west"], n)
    history = rng.gamma(2.0, 100.0, n)
    arm = rng.choice(["mens", "womens", "none"], n)
    base = 0.10 + 0.05 * (history > 300)
    effect = np.where(arm == "mens", 0.12 * (region == "north"), np.where(arm == "womens", 0.04, 0.0))
    visit = (rng.random(n) < base + effect).astype(int)
    opened = ((arm != "none") & (rng.random(n) < 0.2 + 0.6 * visit)).astype(int)
    conversion = (visit & (rng.random(n) < 0.1)).astype(int)
    return pd.DataFrame({"history": history.round(2), "region": region,
                         "channel": rng.choice(["web", "phone", "multi"], n), "segment": arm, "visit": visit,
                         "opened": opened, "conversion": conversion, "spend": conversion * rng.gamma(2, 50, n)})


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    return three_arms()


def _cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_outcome_like_columns_are_excluded_by_default(world):
    # `opened` is named nowhere, yet the arms differ on it (only the treated can open): it is left out, with why
    c = choose_features(world, "segment", ["visit", "conversion", "spend"])
    assert c.features == ["history", "region", "channel"] and c.categorical == ["region", "channel"]
    assert "recorded after assignment" in c.excluded["opened"]
    assert c.excluded["visit"] == c.excluded["spend"] == "an outcome" and c.excluded["segment"] == "the arm column"
    # every listed outcome and every --exclude column is out, whatever its balance
    c = choose_features(world, "segment", ["visit", "conversion"], exclude=["channel"])
    assert c.excluded["conversion"] == "an outcome" and "channel" in c.excluded and "channel" not in c.features


def test_named_features_are_used_as_given_but_never_the_arm_or_an_outcome(world):
    c = choose_features(world, "segment", ["visit"], features=["history", "opened"])
    assert c.features == ["history", "opened"] and any("'opened' differs between the arms" in n for n in c.notes)
    with pytest.raises(ValueError, match="'visit' cannot be a feature: it is an outcome"):
        choose_features(world, "segment", ["visit"], features=["history", "visit"])


def test_unusable_columns_are_refused_with_their_name_and_why(world):
    df = world.assign(customer=[f"c{i}" for i in range(len(world))], empty=np.nan, const="x",
                      amount=world.history.astype(str).where(world.index != 5, "n/a"))
    for col, why in (("customer", "distinct text values"), ("empty", "every value is empty"),
                     ("const", "one value only"), ("amount", "row 7 has 'n/a'")):
        with pytest.raises(ValueError, match=f"feature '{col}' cannot be used: .*{why}"):
            choose_features(df, "segment", ["visit"], features=["history", col])
        assert why in choose_features(df, "segment", ["visit"]).excluded[col]  # default: left out, reason given


def test_a_categorical_that_carries_the_heterogeneity_improves_the_qini(world):
    kept = evaluate(world, "segment", "none", "visit", treatments=["mens"])
    dropped = evaluate(world, "segment", "none", "visit", treatments=["mens"], exclude=["region"])
    assert "region" in kept["categorical"] and "region" not in dropped["features"]
    for learner in ("t_learner", "x_learner"):
        assert kept["learners"][learner]["qini"] > dropped["learners"][learner]["qini"] + 0.1, (kept, dropped)
        assert kept["learners"][learner]["qini"] > kept["learners"]["random"]["qini"] + 0.1


def test_unseen_levels_score_as_missing_not_an_error(world):
    train = world.assign(customer_id=[f"c{i}" for i in range(len(world))])
    new = train.head(50).assign(region="mars")  # a level never seen in training
    s = scores(train, "segment", "none", "visit", ["history", "region"], score_rows=new)
    assert len(s) == 50 and np.isfinite(s.uplift).all()
    north = scores(train, "segment", "none", "visit", ["history", "region"],
                   score_rows=train.head(400)).assign(region=train.head(400).region.to_numpy())
    assert north.groupby("region").uplift.mean().idxmax() == "north"  # the planted effect is found


def test_every_treatment_against_the_shared_control_and_pooled(world):
    d = evaluate(world, "segment", "none", ["visit", "conversion"])
    assert [(c["treatment"], c["outcome"]) for c in d["comparisons"]] == [
        ("mens", "visit"), ("mens", "conversion"), ("womens", "visit"), ("womens", "conversion"),
        ("mens+womens", "visit"), ("mens+womens", "conversion")]
    by = {(c["treatment"], c["outcome"]): c for c in d["comparisons"]}
    # pooled treated people are a weighted mix of both arms, so the pooled lift lies between the two arms' lifts
    lifts = sorted(by[t, "visit"]["overall_uplift"] for t in ("mens", "womens"))
    assert lifts[0] <= by["mens+womens", "visit"]["overall_uplift"] <= lifts[1]
    # mens lifts only the north (a quarter): its T-learner's top 30% holds far more lift than the average
    m = by["mens", "visit"]
    assert m["learners"]["t_learner"]["uplift_at_30"] > m["overall_uplift"] + 0.03
    assert abs(by["mens", "visit"]["treated_share"] - 0.5) < 0.03
    assert abs(by["mens+womens", "visit"]["treated_share"] - 2 / 3) < 0.03
    only = evaluate(world, "segment", "none", "visit", treatments=["womens"])
    assert [c["treatment"] for c in only["comparisons"]] == ["womens"]
    with pytest.raises(ValueError, match="no treatment arm 'kids'"):
        evaluate(world, "segment", "none", "visit", treatments=["kids"])


def test_cli_lists_the_features_and_prints_strict_json(tmp_path, capsys, world):
    path = tmp_path / "three_arms.csv"
    world.head(3000).to_csv(path, index=False)
    rc, out, _ = _cli(capsys, "measure", "uplift", "--csv", str(path), "--arm-col", "segment", "--control", "none",
                      "--outcome", "visit", "--exclude", "conversion,spend", "--treatment", "mens,womens")
    text = " ".join(out.split())
    assert rc == 0 and "features (pre-treatment): history, region (categorical), channel (categorical)" in text
    assert "not a feature: opened: differs between the arms" in text and "not a feature: spend: excluded" in text
    # Tiny groups: nobody spent in some arm's training rows (no model), some top share has no control person:
    # each missing figure is null, with a note naming its comparison
    small = tmp_path / "small.csv"
    world.head(150).to_csv(small, index=False)
    rc, out, _ = _cli(capsys, "measure", "uplift", "--csv", str(small), "--arm-col", "segment", "--control", "none",
                      "--outcome", "visit,spend", "--features", "history", "--json")

    def refuse(name):
        raise AssertionError(f"{name} in the JSON output")

    d = json.loads(out, parse_constant=refuse)
    assert rc == 0 and d["features"] == ["history"] and d["outcomes"] == ["visit", "spend"]
    nulls = {(c["treatment"], c["outcome"]) for c in d["comparisons"] for m in c["learners"].values()
             for v in m.values() if v is None}
    assert nulls and all(any(n.startswith(f"{t} / {o}") for n in d["notes"]) for t, o in nulls)


def test_ml_uplift_trains_on_the_feature_macro_at_exposure_time_never_after():
    import duckdb

    from beacon.measure.warehouse import _has_feature_marts, uplift_training_frame

    con = duckdb.connect()
    con.execute("""CREATE SCHEMA marts;
        CREATE TABLE marts.dim_customers AS SELECT * FROM (VALUES ('a', TIMESTAMP '2026-01-01', NULL, NULL),
            ('b', TIMESTAMP '2026-01-01', NULL, '+491')) t(customer_id, first_seen_at, company_id, phone_e164);
        -- a bought once before the exposure and once after it (caused by the campaign, perhaps)
        CREATE TABLE marts.fct_orders AS SELECT * FROM (VALUES ('a', TIMESTAMP '2026-06-01', 50.0, 'completed'),
            ('a', TIMESTAMP '2026-07-03', 80.0, 'completed')) t(customer_id, ordered_at, total_amount, status);
        CREATE TABLE marts.fct_web_events AS SELECT * FROM (VALUES ('b', TIMESTAMP '2026-07-02', 'product_viewed'))
            t(customer_id, event_at, event_name);
        CREATE TABLE marts.fct_web_sessions (customer_id VARCHAR, session_started_at TIMESTAMP);
        CREATE TABLE marts.fct_email_events AS SELECT * FROM (VALUES ('a', TIMESTAMP '2026-07-01 09:00', 'open'))
            t(customer_id, event_at, event_name)""")
    add_event_day_views(con)  # the events per day, which the feature macro reads
    assert _has_feature_marts(con)
    frame = pd.DataFrame({"customer_id": ["a", "b"], "arm": ["treatment", "control"], "converted": [1, 0],
                          "exposed_at": pd.to_datetime(["2026-07-01 06:00", "2026-07-01 06:00"])})
    t = uplift_training_frame(con, frame).set_index("customer_id")
    assert (t.features_as_of <= t.exposed_at).all()
    # nothing after the exposure: not the later order, nor b's later visit, nor a's open at 09:00
    assert t.loc["a", "orders_total"] == 1 and t.loc["a", "revenue_total"] == 50.0
    assert t.loc["b", "web_30d"] == 0 and t.loc["a", "email_opens_90d"] == 0


def test_repeated_splits_average_the_metrics_and_give_the_qini_spread(world):
    from beacon.measure.uplift import evaluate_repeated

    small = world.head(4000)
    d = evaluate_repeated(small, "segment", "none", "visit", repeats=2, seed=3, treatments=["womens"])
    one = [evaluate(small, "segment", "none", "visit", seed=s, treatments=["womens"]) for s in (3, 4)]
    for k in ("t_learner", "random"):
        assert d["learners"][k]["qini"] == pytest.approx(np.mean([o["learners"][k]["qini"] for o in one]))
        assert d["learners"][k]["qini_sd"] == pytest.approx(np.std([o["learners"][k]["qini"] for o in one], ddof=1))
    assert d["repeats"] == 2 and d["seeds"] == [3, 4]


def test_the_training_features_read_only_the_exposed_peoples_facts_and_equal_the_whole_macro():
    # Issue 28: the exposed people's per-customer facts are read once; the RFM ranks still compare every buyer.
    import duckdb
    import numpy as np

    from beacon.measure.warehouse import _features_at, uplift_training_frame

    rng = np.random.default_rng(5)
    people = [f"c{i:03d}" for i in range(120)]
    t0 = pd.Timestamp("2026-05-01")

    def times(n):
        return t0 + pd.to_timedelta(rng.uniform(0, 70, n), unit="D")

    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts")
    frames = {
        "dim_customers": pd.DataFrame({"customer_id": people, "first_seen_at": times(len(people)) - pd.Timedelta(days=60),
                                       "company_id": rng.choice([None, "co"], len(people)),
                                       "phone_e164": rng.choice([None, "+49"], len(people))}),
        "fct_orders": pd.DataFrame({"customer_id": rng.choice(people, 400), "ordered_at": times(400),
                                    "total_amount": rng.uniform(5, 200, 400).round(2),
                                    "status": rng.choice(["completed", "refunded"], 400, p=[0.9, 0.1])}),
        "fct_web_events": pd.DataFrame({"customer_id": rng.choice(people, 3000), "event_at": times(3000),
                                        "event_name": rng.choice(["product_viewed", "product_added", "page"], 3000)}),
        "fct_web_sessions": pd.DataFrame({"customer_id": rng.choice(people, 800), "session_started_at": times(800)}),
        "fct_email_events": pd.DataFrame({"customer_id": rng.choice(people, 1500), "event_at": times(1500),
                                          "event_name": rng.choice(["sent", "delivered", "open", "click"], 1500)}),
    }
    for name, df in frames.items():
        con.register("_f", df)
        con.execute(f"CREATE TABLE marts.{name} AS SELECT * FROM _f")
        con.unregister("_f")
    add_event_day_views(con)  # the events per day, which the feature macro reads
    # 40 of the 120 people exposed over three days; the others' orders still shape the RFM ranks.
    exposed = pd.DataFrame({"customer_id": people[:40], "arm": rng.choice(["treatment", "control"], 40),
                            "converted": rng.integers(0, 2, 40),
                            "exposed_at": pd.Timestamp("2026-07-01 06:00") + pd.to_timedelta(np.arange(40) % 3, unit="D")})
    got = uplift_training_frame(con, exposed).sort_values("customer_id", ignore_index=True)
    cut = pd.to_datetime(exposed.exposed_at).dt.floor("D")
    whole = pd.concat([exposed[cut == c][["customer_id", "arm", "converted", "exposed_at"]]
                       .merge(_features_at(con, c, exposed[cut == c]), on="customer_id", how="left")
                       for c in sorted(cut.unique())]).sort_values("customer_id", ignore_index=True)
    assert len(got) == 40 and got.orders_total.gt(0).any() and got.r_score.notna().any() and got.web_30d.gt(0).any()
    pd.testing.assert_frame_equal(got, whole, check_exact=True)
