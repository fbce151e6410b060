"""ML models end to end on a tiny synthetic warehouse: train, register, champion/challenger, score with reasons,
drift and fairness, the report; plus the parts on hand-made inputs."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from support.ml_world import build_world

from ml import features, metrics, monitor, registry
from ml.score import contributions, score_all, score_frame
from ml.train import SPECS, train_all, train_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One world, all three models trained and scored once (the expensive part, shared by the tests below)."""
    con = build_world()
    reg = tmp_path_factory.mktemp("registry")
    summary = train_all(con, reg)
    scored = score_all(con, reg)
    return con, reg, summary, scored


def test_all_three_models_train_register_and_score(trained):
    con, reg, summary, scored = trained
    assert summary["failed"] == {} and set(summary["models"]) == {"lead_score", "churn", "ltv"}
    for name, m in summary["models"].items():
        meta = registry.metadata(reg, name, m["version"])
        assert registry.champion_version(reg, name) == m["version"]  # the first version wins by default
        # Metadata a reviewer needs: features, windows, fingerprint, metrics, library versions.
        assert meta["features"] == features.FEATURES and len(meta["data_fingerprint"]) == 64
        assert meta["train_cutoff"] < meta["valid_cutoff"] < meta["as_of"]
        assert {"lightgbm", "scikit-learn", "duckdb"} <= set(meta["libraries"])
        assert 0 < meta["best_iteration"] <= 300
    lead = registry.metadata(reg, "lead_score", summary["models"]["lead_score"]["version"])["metrics"]
    lead_meta = registry.metadata(reg, "lead_score", summary["models"]["lead_score"]["version"])
    # PR-AUC of a random ranking is the positive rate: the model must be well above it, not merely in (0, 1].
    assert lead["roc_auc"] > 0.7 and lead["pr_auc"] > 2 * lead_meta["valid_positive_rate"], lead
    assert lead["log_loss"] > 0
    assert lead["calibration_error"] < 0.1 and lead["top_decile_lift"] > 1.5
    churn = registry.metadata(reg, "churn", summary["models"]["churn"]["version"])
    assert churn["population"] == "buyers" and churn["metrics"]["roc_auc"] > 0.6
    ltv = registry.metadata(reg, "ltv", summary["models"]["ltv"]["version"])
    # One year of history: the label window is shortened and the target annualized to 12 months.
    assert ltv["annualized"] and ltv["label_days"] < 365 and ltv["metrics"]["gini"] > 0.3
    rows = dict(con.execute("SELECT model, count(*) FROM ml.scores GROUP BY 1").fetchall())
    n = con.execute("SELECT count(*) FROM marts.dim_customers").fetchall()[0][0]
    buyers = con.execute("""SELECT count(DISTINCT customer_id) FROM marts.fct_orders
                            WHERE status = 'completed'""").fetchall()[0][0]
    assert rows == {"lead_score": n, "churn": buyers, "ltv": n}
    s = con.execute("SELECT * FROM ml.scores WHERE model = 'lead_score'").df()
    assert s.score.between(0, 1).all() and sorted(s.decile.unique()) == list(range(1, 11))
    assert s.reason_1.notna().mean() > 0.9 and set(s.reason_1.dropna()) <= set(
        p for ph in __import__("ml.score", fromlist=["PHRASES"]).PHRASES.values() for p in ph)
    # The report of the training run exists with its charts embedded.
    html = Path(summary["report"]).read_text()
    assert html.count("data:image/png;base64") >= 10 and "Drift" in html and "Fairness" in html
    assert (Path(summary["report"]).parent / "latest.html").exists()
    assert set(scored["models"]) == {"lead_score", "churn", "ltv"}
    drift = con.execute("SELECT model, kind, count(*) FROM ml.drift GROUP BY ALL").fetchall()
    assert {(m, k) for m, k, _ in drift} == {(m, k) for m in SPECS for k in ("feature", "score")}
    assert con.execute("SELECT count(DISTINCT attribute) FROM ml.fairness").fetchall()[0][0] == 2


def test_model_report_renders_in_chromium(trained, browser_page):
    # A real browser opens the report: every chart decodes to an image, and the page raises no script error.
    _, _, summary, _ = trained
    page = browser_page.page
    page.goto(Path(summary["report"]).resolve().as_uri())
    assert page.title().startswith("Beacon model report")
    sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    assert len(sizes) >= 10 and all(done and width > 0 for done, width in sizes), sizes
    assert page.locator("h2").count() == 3
    assert browser_page.console_errors == []


def test_drift_compares_like_with_like_first_run_is_the_baseline(tmp_path):
    # Training population vs today's differs by construction (tenure, recency): the first scoring run is a
    # baseline, an unchanged re-score is ok, and only a real change between runs alerts.
    from ml.score import score_model

    con = build_world(n=800, seed=5)
    reg = tmp_path / "registry"
    train_model(con, reg, "lead_score")
    first = score_model(con, reg, "lead_score")
    assert first["drift_state"] == "ok" and first["drifted"] == []
    states = con.execute("SELECT kind, state, psi FROM ml.drift").fetchall()
    assert {k for k, _, _ in states} == {"feature", "score"} and {(s, p) for _, s, p in states} == {("baseline", None)}
    # The next run, same data one second later: compared with the first run, nothing moved.
    con.execute("UPDATE marts.warehouse_as_of SET as_of_at = as_of_at + INTERVAL 1 SECOND")
    again = score_model(con, reg, "lead_score")
    assert again["drift_state"] == "ok" and again["score_psi"] < 0.01  # warn starts at 0.1
    # Web tracking breaks (most events lost): the web features and the score alert against the previous run.
    con.execute("DELETE FROM marts.fct_web_events WHERE hash(customer_id) % 10 <> 0")
    con.execute("UPDATE marts.warehouse_as_of SET as_of_at = as_of_at + INTERVAL 1 SECOND")
    broken = score_model(con, reg, "lead_score")
    assert broken["drift_state"] == "alert" and {"web_30d", "web_90d"} <= set(broken["drifted"])
    # Re-running a scored day replaces its rows; the comparison stays against the run before it.
    assert score_model(con, reg, "lead_score")["drifted"] == broken["drifted"]
    assert con.execute("SELECT count(*) FROM ml.scoring_reference").fetchall()[0][0] == 3


def test_champion_challenger_on_the_same_holdout(trained, tmp_path):
    con, reg, summary, _ = trained
    first = summary["models"]["lead_score"]["version"]
    # Retraining on unchanged data gives the same version: it stays champion, nothing new is promoted.
    again = train_model(con, reg, "lead_score")
    assert again["version"] == first and not again["decision"]["promote"]
    # New data (one more customer) gives a new version, judged against the champion on the new holdout.
    con.execute("""INSERT INTO marts.dim_customers (customer_id, first_seen_at)
                   VALUES ('zz-new', TIMESTAMP '2026-01-02')""")
    strict = train_model(con, reg, "lead_score", tolerance=-1.0)  # would have to beat the champion by 1.0 AUC
    d = strict["decision"]
    assert strict["version"] != first and not d["promote"] and d["champion_before"] == first
    assert d["champion_value"] is not None and d["challenger_value"] is not None
    assert registry.champion_version(reg, "lead_score") == first  # registered, but not champion
    assert strict["version"] in registry.versions(reg, "lead_score")
    lenient = train_model(con, reg, "lead_score", tolerance=1.0)
    assert lenient["decision"]["promote"] and registry.champion_version(reg, "lead_score") == lenient["version"]
    # Both champion figures were measured on the same rows: the champion's value is reproducible.
    assert lenient["decision"]["champion_value"] == pytest.approx(d["champion_value"])
    # Rollback returns to the previous champion; promote sets one by hand.
    assert registry.rollback(reg, "lead_score")["champion"] == first
    registry.promote(reg, "lead_score", strict["version"])
    assert registry.champion_version(reg, "lead_score") == strict["version"]
    assert registry.rollback(reg, "lead_score")["champion"] == first
    with pytest.raises(ValueError, match="no earlier champion"):
        registry.rollback(reg, "lead_score")
    with pytest.raises(ValueError, match="no version 'nope'"):
        registry.promote(reg, "lead_score", "nope")


def test_cli_models_promote_rollback(trained, capsys, monkeypatch):
    from beacon.cli import main

    _, reg, summary, _ = trained
    monkeypatch.setenv("BEACON_REGISTRY_DIR", str(reg))
    assert main(["ml", "models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["model"] for r in rows} == {"lead_score", "churn", "ltv"}
    assert sum(r["champion"] for r in rows) == 3
    assert main(["ml", "promote", "ltv", "no-such-version"]) == 2
    assert "no version 'no-such-version'" in capsys.readouterr().err.replace("\n", " ")
    assert main(["ml", "rollback", "churn"]) == 2
    assert "no earlier champion" in capsys.readouterr().err.replace("\n", " ")
    v = summary["models"]["churn"]["version"]
    assert main(["ml", "promote", "churn", v, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"model": "churn", "champion": v, "previous": v}


def test_reason_contributions_equal_lightgbm_pred_contrib():
    # Missing values, zeros and both missing-value conventions: the grouped computation must be exact.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 5))
    X[rng.random(4000) < 0.2, 0] = np.nan
    X[rng.random(4000) < 0.3, 1] = 0.0
    y = ((np.nan_to_num(X[:, 0]) + X[:, 1] * X[:, 2]) > 0.3).astype(int)
    for extra in ({}, {"zero_as_missing": True}, {"use_missing": False}):
        b = lgb.train({"objective": "binary", "num_leaves": 15, "max_depth": 5, "verbose": -1, **extra},
                      lgb.Dataset(X, y), 40)
        assert np.allclose(contributions(b, X), b.predict(X, pred_contrib=True), atol=1e-10), extra


def test_contributions_in_blocks_on_two_threads_equal_one_pass(monkeypatch):
    # Blocks of rows run on two threads, each with its own booster: the same values as pred_contrib, in row order.
    import ml.score

    rng = np.random.default_rng(3)
    X = rng.normal(size=(5000, 4))
    X[rng.random(5000) < 0.1, 2] = np.nan
    y = (X[:, 0] + np.nan_to_num(X[:, 2]) * X[:, 1] > 0).astype(int)
    b = lgb.train({"objective": "binary", "num_leaves": 15, "verbose": -1}, lgb.Dataset(X, y), 30)
    monkeypatch.setattr(ml.score, "CHUNK", 700)  # 8 blocks, the last one short
    expected = b.predict(X, pred_contrib=True)
    for threads in (1, 2):
        assert np.allclose(contributions(b, X, threads=threads), expected, atol=1e-10), threads
    assert np.allclose(contributions(b, X, num_iteration=10, threads=2), b.predict(X, pred_contrib=True, num_iteration=10),
                       atol=1e-10)


def test_reason_words_follow_the_strongest_upward_contributions():
    # A model where only cart additions matter: reason 1 names them for customers with many.
    rng = np.random.default_rng(1)
    X = pd.DataFrame({f: np.zeros(3000) for f in features.FEATURES})
    X["cart_adds_30d"] = rng.poisson(1.0, 3000).astype(float)
    X.insert(0, "customer_id", [f"c{i}" for i in range(3000)])
    y = (X.cart_adds_30d > 1).astype(int)
    b = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 20}, lgb.Dataset(X[features.FEATURES], y), 20)
    meta = {"features": features.FEATURES, "kind": "binary", "calibration": {"a": 1.0, "b": 0.0},
            "feature_means": {f: float(X[f].mean()) for f in features.FEATURES}}
    s = score_frame(b, meta, X)
    hot = s[X.cart_adds_30d.to_numpy() >= 3]
    assert (hot.reason_1 == "added items to the cart this month").all()
    assert hot.reason_2.isna().all()  # no other feature pushes the score up
    assert s.score.corr(pd.Series(b.predict(X[features.FEATURES]))) > 0.999


def test_all_three_reasons_are_filled_where_three_features_push_the_score_up():
    # A model driven by three features. The oracle is LightGBM's own pred_contrib: per row, the features with a
    # positive contribution, strongest first, in words (above / at or below the training mean, or missing).
    from ml.score import PHRASES

    rng = np.random.default_rng(4)
    n = 4000
    drivers = ["cart_adds_30d", "email_opens_90d", "web_30d"]
    X = pd.DataFrame({f: np.zeros(n) for f in features.FEATURES})
    for f in drivers:
        X[f] = rng.normal(size=n)
    X.loc[rng.random(n) < 0.05, "web_30d"] = np.nan
    y = (X[drivers].fillna(0).sum(axis=1) + rng.normal(0, 0.3, n) > 0).astype(int)
    b = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 20}, lgb.Dataset(X[features.FEATURES], y),
                  30)
    means = {f: float(X[f].mean()) for f in features.FEATURES}
    meta = {"features": features.FEATURES, "kind": "binary", "calibration": {"a": 1.0, "b": 0.0},
            "feature_means": means}
    X.insert(0, "customer_id", [f"c{i}" for i in range(n)])
    s = score_frame(b, meta, X)
    contrib = b.predict(X[features.FEATURES], pred_contrib=True)[:, :-1]
    expected = []
    for i in range(n):
        up = [j for j in np.argsort(-contrib[i], kind="stable") if contrib[i, j] > 0][:3]
        words = []
        for j in up:
            f, v = features.FEATURES[j], X[features.FEATURES[j]].iat[i]
            words.append(PHRASES[f][2 if np.isnan(v) else 0 if v > means[f] else 1])
        expected.append(words + [None] * (3 - len(words)))
    got = s[["reason_1", "reason_2", "reason_3"]].astype(object).where(s[["reason_1", "reason_2", "reason_3"]].notna(),
                                                                       None).to_numpy().tolist()
    three = [i for i in range(n) if (contrib[i] > 0).sum() >= 3]
    assert len(three) > n / 10  # many rows have three contributing features ...
    assert all(got[i][2] is not None for i in three)  # ... and every one of them gets all three reasons
    assert got == expected


def test_psi_and_alert_state():
    rng = np.random.default_rng(2)
    train = rng.normal(0, 1, 20000)
    ref = monitor.reference(train)
    same = monitor.psi(ref, rng.normal(0, 1, 20000))
    shifted = monitor.psi(ref, rng.normal(1.0, 1, 20000))
    assert same < 0.01 and monitor.state(same) == "ok"
    assert shifted > monitor.PSI_ALERT and monitor.state(shifted) == "alert"
    assert monitor.state(0.15) == "warn"
    # Missing values are a bin of their own: a column that starts arriving empty drifts.
    half_missing = np.where(rng.random(20000) < 0.5, np.nan, rng.normal(0, 1, 20000))
    assert monitor.psi(ref, half_missing) > monitor.PSI_ALERT
    rows = monitor.drift({"x": ref, "absent": ref}, pd.DataFrame({"x": rng.normal(1.0, 1, 500)}))
    assert [r["name"] for r in rows] == ["x"] and monitor.overall_state(rows) == "alert"


def test_fairness_four_fifths_rule():
    # Group B is picked for the top deciles at half group A's rate; the small group and 'unknown' are not judged.
    n = 1000
    group = np.array(["A"] * 400 + ["B"] * 400 + ["tiny"] * 10 + ["unknown"] * 190)
    score = np.r_[np.linspace(0.5, 1, 400), np.linspace(0, 0.75, 400), np.ones(10), np.zeros(190)]
    scores = pd.DataFrame({"customer_id": np.arange(n), "score": score, "decile": metrics.deciles(score)})
    audit = monitor.fairness(scores, pd.DataFrame({"customer_id": np.arange(n), "gender": group}),
                             attributes=("gender",))
    g = {r["group"]: r for r in audit["attributes"]["gender"]["groups"]}
    assert g["A"]["selection_rate"] > 0.4 and g["B"]["ratio_to_highest"] < 0.8
    assert g["B"]["flagged"] and not g["A"]["flagged"] and not g["tiny"]["flagged"] and not g["unknown"]["flagged"]
    assert audit["flagged"] and audit["attributes"]["gender"]["flagged"] == ["B"]
    assert g["A"]["score_mean"] > g["B"]["score_mean"]
    # Equal selection: nobody flagged.
    even = monitor.fairness(scores.assign(decile=np.tile(np.arange(1, 11), 100)),
                            pd.DataFrame({"customer_id": np.arange(n), "gender": group}), attributes=("gender",))
    assert not even["flagged"]


def test_metrics_gains_and_calibration():
    y = np.array([1] * 10 + [0] * 90)
    perfect = np.r_[np.ones(10), np.zeros(90)] * 0.9 + 0.05
    m = metrics.binary_metrics(y, perfect)
    assert m["roc_auc"] == 1.0 and m["gains"][0]["lift"] == pytest.approx(10.0)
    assert m["gains"][0]["cumulative_gain"] == 1.0 and m["calibration_error"] == pytest.approx(0.05, abs=1e-6)
    r = metrics.regression_metrics(np.array([0, 0, 10, 100.0]), np.array([1, 2, 3, 4.0]))
    assert r["gini"] == pytest.approx(1.0) and r["spearman"] > 0.9


def test_scoring_benchmark_runs_the_real_path_small():
    from beacon.bench.score import bench_score

    d = bench_score(customers=3000, models=("churn",), train_rows=3000)
    m = d["models"][0]
    assert d["customers"] == 3000 and m["rows_with_reasons"] > 2500 and m["trees"] > 0 and m["rows_per_s"] > 0
    assert m["ratio_to_predict"] > 0 and m["predict_only_seconds"] >= 0 and m["cpu_seconds"] > 0
