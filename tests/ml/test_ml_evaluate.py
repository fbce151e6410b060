"""`beacon ml evaluate`: the generic lead-scoring learner on any CSV (CV AUC and a time-ordered holdout)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.evaluate import evaluate, load_table, main_evaluate, make_learner, sniff_separator

BANK = Path("bank-marketing") / "bank-additional-full.csv"


def _synthetic(path: Path, n: int = 1500, sep: str = ",") -> Path:
    """A CSV with a known signal in two numeric and one categorical column, plus noise, an id and gaps;
    the last 20% of rows come from a later period (a higher base rate and shifted `spend`)."""
    rng = np.random.default_rng(0)
    late = np.arange(n) >= int(n * 0.8)
    spend = rng.normal(0, 1, n) + 1.5 * late
    visits = rng.poisson(3, n).astype(float)
    plan = rng.choice(["free", "basic", "pro"], n, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], n)
    logit = -1.5 + 1.2 * spend + 0.4 * (visits - 3) + np.select([plan == "pro", plan == "basic"], [1.5, 0.5], 0.0)
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    visits[rng.random(n) < 0.1] = np.nan  # missing values
    df = pd.DataFrame({
        "customer_id": [f"c{i:05d}" for i in range(n)],  # all-unique text: must be ignored
        "spend": spend.round(3), "visits": visits, "plan": plan, "region": region,
        "noise": rng.normal(0, 1, n).round(3), "converted": np.where(y, "yes", "no"),
    })
    df.loc[rng.random(n) < 0.05, "region"] = None
    df.to_csv(path, sep=sep, index=False)
    return path


def test_synthetic_signal_and_time_ordered_holdout(tmp_path):
    csv = _synthetic(tmp_path / "leads.csv", sep=";")
    assert sniff_separator(csv) == ";"
    r = main_evaluate(csv, "converted", positive="yes", drop="noise")
    assert r["sep"] == ";" and r["positive"] == "yes" and r["dropped"] == ["noise"]
    assert r["rows"] == 1500 and r["columns"] == 5
    assert len(r["cv_aucs"]) == 5 and r["cv_auc_mean"] > 0.75, r
    assert r["holdout_auc"] > 0.7, r
    # The holdout is the LAST 20% of rows in file order: exactly the later period with its higher base rate.
    X, y = load_table(csv, "converted", positive="yes")
    assert r["holdout_rows"] == 300 and r["holdout_train_rows"] == 1200
    assert r["holdout_positive_rate_train"] == pytest.approx(y[:1200].mean(), abs=1e-4)
    assert r["holdout_positive_rate_test"] == pytest.approx(y[1200:].mean(), abs=1e-4)
    assert r["holdout_positive_rate_test"] > r["holdout_positive_rate_train"] + 0.1


def test_holdout_trains_on_the_first_rows_and_scores_the_last():
    # The signal flips sign in the last 20% of rows: CV (shuffled) still sees mostly the first regime,
    # but a model trained on the first 80% must rank the last 20% backwards.
    rng = np.random.default_rng(1)
    n = 1000
    x = rng.normal(0, 1, n)
    late = np.arange(n) >= 800
    y = ((np.where(late, -x, x) + rng.normal(0, 0.5, n)) > 0).astype(int)
    X = pd.DataFrame({"x": x, "colour": rng.choice(["red", "blue"], n)})
    r = evaluate(X, y)
    assert (r["holdout_train_rows"], r["holdout_rows"]) == (800, 200)
    assert r["holdout_auc"] < 0.2, r
    assert r["cv_auc_mean"] > 0.6, r


def test_learner_is_sklearn_style_and_handles_unseen_values(tmp_path):
    X, y = load_table(_synthetic(tmp_path / "leads.csv"), "converted")  # separator and positive inferred
    assert X.attrs["sep"] == "," and X.attrs["positive"] == "yes"
    learner = make_learner(X).fit(X.iloc[:1000], y[:1000])
    assert "customer_id" in learner.dropped_ and "spend" in learner.numeric_ and "plan" in learner.levels_
    new = X.iloc[1000:].copy()
    new.loc[new.index[:10], "plan"] = "enterprise"  # a category never seen in training
    new.loc[new.index[10:20], "spend"] = np.nan
    p = learner.predict_proba(new)
    assert p.shape == (len(new), 2) and np.isfinite(p).all() and np.allclose(p.sum(axis=1), 1)


def test_missing_target_column_is_a_clear_error(tmp_path):
    csv = _synthetic(tmp_path / "leads.csv", n=200)
    with pytest.raises(ValueError, match=r"leads\.csv: no target column 'y'.*converted"):
        load_table(csv, "y")
    with pytest.raises(ValueError, match=r"leads\.csv: cannot drop unknown column\(s\) \['duration'\]"):
        load_table(csv, "converted", drop="duration")
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        load_table(tmp_path / "absent.csv", "converted")


def test_non_binary_target_is_a_clear_error(tmp_path):
    csv = _synthetic(tmp_path / "leads.csv", n=200)
    with pytest.raises(ValueError, match=r"leads\.csv: target column 'plan' is not binary: it has 3 distinct"):
        load_table(csv, "plan")
    with pytest.raises(ValueError, match=r"positive value 'maybe' does not occur"):
        load_table(csv, "converted", positive="maybe")
    X, y = load_table(csv, "converted")
    with pytest.raises(ValueError, match="each class needs at least 5 rows"):
        evaluate(X.iloc[:50], np.r_[np.ones(3), np.zeros(47)])


def _bank_file() -> Path:
    """The shared bank-marketing file: $BEACON_SHARED_DIR/data/..., else <repo>/../shared/data/..."""
    override = os.environ.get("BEACON_SHARED_DIR")
    shared = Path(override) if override else Path(__file__).resolve().parents[3] / "shared"
    return shared / "data" / BANK


def test_bank_marketing_auc():
    path = _bank_file()
    if not path.is_file():  # CI turns this skip into a failure (tests/conftest.py; docs/testing.md)
        pytest.skip(f"bank-marketing data not found at {path} (set BEACON_SHARED_DIR to the folder holding data/)")
    # `duration` is only known after the call, so it cannot score a lead before calling.
    r = main_evaluate(path, "y", positive="yes", drop=["duration"], sep=";")
    assert r["rows"] == 41188 and r["columns"] == 19
    assert r["holdout_positive_rate_train"] < 0.1 < 0.25 < r["holdout_positive_rate_test"]
    # The threshold is the published baseline (Moro et al. 2014, DESIGN.md: AUC 0.80), not our own figure: the
    # learner scores 0.8052-0.8054 over seeds 7, 1 and 42 (docs/benchmarks.md records the figure per seed), so a
    # test at 0.805 would sit a few ten-thousandths above the line and flip on noise. A regression below the
    # published baseline is what this test is for.
    assert r["cv_auc_mean"] >= 0.80, r
    # The time-ordered holdout (a later, differently mixed period) scores 0.7517-0.7546 over those seeds.
    assert r["holdout_auc"] >= 0.71, r


def test_positive_label_inference_and_numeric_text(tmp_path):
    csv = tmp_path / "t.tsv"
    score = ["1.5", "2.0", "0.5", "3.5"] * 10
    score[7] = "?"  # one unparseable marker in 40 rows
    pd.DataFrame({"score": score, "won": [1, 2, 2, 1] * 10}).to_csv(csv, sep="\t", index=False)
    X, y = load_table(csv, "won")  # two numbers: the larger is positive; the separator is sniffed
    assert X.attrs["sep"] == "\t" and X.attrs["positive"] == 2 and y.tolist()[:4] == [0, 1, 1, 0]
    assert load_table(csv, "won", positive="1.0", sep="\\t")[1].tolist()[:4] == [1, 0, 0, 1]
    learner = make_learner(X)
    learner._learn_schema(X)
    assert learner.numeric_ == ["score"]  # "?" is a missing number, not a category


def test_fits_spread_over_processes_give_the_same_numbers(tmp_path):
    # evaluate() runs its independent fits in several processes by default; each is single-threaded and seeded,
    # so the result must not depend on how many processes ran them.
    X, y = load_table(_synthetic(tmp_path / "leads.csv", n=600), "converted")
    one, two = evaluate(X, y, jobs=1), evaluate(X, y, jobs=2)
    one.pop("seconds"), two.pop("seconds")
    assert one == two and len(one["cv_aucs"]) == 5 and one["holdout_auc"] is not None
