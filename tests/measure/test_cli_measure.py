"""`beacon measure lift --csv` and `uplift --csv` on files: exact per-arm means, statsmodels' intervals, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.stats.proportion import confint_proportions_2indep
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from beacon.cli import main
from beacon.measure.simulate import COVARIATES, simulate_test


def _run(capsys, *argv) -> tuple[int, dict | str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    try:
        return rc, json.loads(out.out)
    except json.JSONDecodeError:
        return rc, " ".join((out.out + out.err).split())  # rich wraps lines at the terminal width


def test_lift_csv_on_a_shipped_randomized_data_set(tmp_path, capsys):
    # statsmodels ships Spector & Mazzeo (1980): 32 students, PSI = taught with the new method (1) or not (0),
    # GRADE = improved (1/0), GPA and TUCE measured before.
    df = sm.datasets.spector.load_pandas().data
    path = tmp_path / "spector.csv"
    df.to_csv(path, index=False)
    rc, d = _run(capsys, "measure", "lift", "--csv", str(path), "--arm-col", "PSI", "--control", "0",
                 "--outcome", "GRADE,GPA", "--json")
    assert rc == 0
    grade, gpa = d["results"]
    t, c = df[df.PSI == 1], df[df.PSI == 0]
    # Per-arm counts and means reproduce exactly.
    assert (grade["n_arm"], grade["n_control"]) == (len(t), len(c))
    assert grade["mean_arm"] == t.GRADE.mean() and grade["mean_control"] == c.GRADE.mean()
    assert gpa["mean_arm"] == t.GPA.mean() and gpa["mean_control"] == c.GPA.mean()
    # Intervals agree with statsmodels to 4 decimals: Newcombe for the 0/1 outcome, Welch for GPA.
    lo, hi = confint_proportions_2indep(t.GRADE.sum(), len(t), c.GRADE.sum(), len(c), method="newcomb")
    assert (round(grade["abs_low"], 4), round(grade["abs_high"], 4)) == (round(lo, 4), round(hi, 4))
    lo, hi = CompareMeans(DescrStatsW(t.GPA.to_numpy()), DescrStatsW(c.GPA.to_numpy())).tconfint_diff(usevar="unequal")
    assert (round(gpa["abs_low"], 4), round(gpa["abs_high"], 4)) == (round(lo, 4), round(hi, 4))
    assert grade["method"] == "newcombe" and gpa["method"] == "welch"


def test_lift_csv_with_covariates_and_split_check(tmp_path, capsys):
    st = simulate_test(5, people=3000, conversion=0.05)
    path = tmp_path / "test.csv"
    st.frame[["arm", "converted", "revenue", *COVARIATES]].to_csv(path, index=False)
    rc, d = _run(capsys, "measure", "lift", "--csv", str(path), "--arm-col", "arm", "--control", "control",
                 "--outcome", "converted,revenue", "--covariates", ",".join(COVARIATES), "--split",
                 "treatment=0.5,control=0.5", "--sequential", "--json")
    assert rc == 0 and not d["srm"]["mismatch"]
    conv = d["results"][0]
    assert conv["variance_reduction"] > 0 and conv["seq_low"] < conv["abs_low"]
    # The human table renders too.
    rc, text = _run(capsys, "measure", "lift", "--csv", str(path), "--arm-col", "arm", "--control", "control",
                    "--outcome", "converted")
    assert rc == 0 and "treatment" in text and "95% interval" in text


def test_bad_csv_errors_name_file_row_and_column(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("arm,y\nA,1\nB,0\nA,oops\nB,1\n")
    rc, text = _run(capsys, "measure", "lift", "--csv", str(path), "--arm-col", "arm", "--control", "A", "--outcome", "y")
    assert rc == 2 and "row 4 column 'y': 'oops' is not a number" in text and "bad.csv" in text.replace(" ", "")
    rc, text = _run(capsys, "measure", "lift", "--csv", str(tmp_path / "none.csv"), "--arm-col", "a",
                    "--control", "A", "--outcome", "y")
    assert rc == 2 and "no such file" in text and "none.csv" in text.replace(" ", "")
    rc, text = _run(capsys, "measure", "lift", "--csv", str(path), "--arm-col", "group", "--control", "A",
                    "--outcome", "y")
    assert rc == 2 and "no column(s) ['group']" in text


def test_plan(capsys):
    rc, d = _run(capsys, "measure", "plan", "--baseline-rate", "0.05", "--mde", "0.01", "--ratio", "9", "--json")
    assert rc == 0 and d["treatment"] >= 9 * d["control"] - 9 and 9.5 < d["holdout_pct"] < 10.5


def test_uplift_csv_runs_on_any_randomized_csv(tmp_path, capsys):
    df = sm.datasets.spector.load_pandas().data  # tiny: the learners run and report, whatever they find
    path = tmp_path / "spector.csv"
    df.to_csv(path, index=False)
    rc, d = _run(capsys, "measure", "uplift", "--csv", str(path), "--arm-col", "PSI", "--control", "0",
                 "--outcome", "GRADE", "--json")
    assert rc == 0 and set(d["learners"]) == {"t_learner", "x_learner", "response_model", "random"}
    assert d["features"] == ["GPA", "TUCE"]
    assert all(np.isfinite(m["qini"]) for m in d["learners"].values())
    rc, text = _run(capsys, "measure", "uplift", "--csv", str(path), "--arm-col", "GRADE", "--control", "7",
                    "--outcome", "PSI")
    assert rc == 2 and "control '7'" in text


def test_lift_csv_arm_values_as_text(tmp_path, capsys):
    path = tmp_path / "ab.csv"
    pd.DataFrame({"variant": ["A"] * 50 + ["B"] * 50, "clicked": [0, 1] * 50}).to_csv(path, index=False)
    rc, d = _run(capsys, "measure", "lift", "--csv", str(path), "--arm-col", "variant", "--control", "A",
                 "--outcome", "clicked", "--json")
    assert rc == 0 and d["results"][0]["arm"] == "B" and d["results"][0]["abs_lift"] == 0
