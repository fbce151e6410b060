"""`beacon bench measure`: interval coverage and CUPED on simulated worlds with planted effects, and uplift Qini.

Each world is a fresh small population in one randomized campaign (beacon.measure.simulate: the generator's
engagement model), analysed through the same `lift_table` the CLI and the warehouse path use."""

from __future__ import annotations

import time

import numpy as np

from beacon.measure import stats
from beacon.measure.simulate import COVARIATES, simulate_test
from beacon.measure.uplift import evaluate


def bench_coverage(worlds: int = 100, people: int = 3000, seed: int = 0) -> dict:
    """Share of 95% intervals covering the planted effect; CUPED's variance reduction and interval width."""
    t0 = time.perf_counter()
    rows = []
    for s in range(seed, seed + worlds):
        st = simulate_test(s, people=people, conversion=0.02 + 0.01 * (s % 3))
        tr = st.truth.set_index("arm").loc["treatment"]
        conv, rev = stats.lift_table(st.frame, "arm", "control", ["converted", "revenue"], COVARIATES, sequential=True)
        rows.append((conv.abs_low <= tr.abs_lift <= conv.abs_high, conv.cuped_low <= tr.abs_lift <= conv.cuped_high,
                     conv.seq_low <= tr.abs_lift <= conv.seq_high,
                     rev.abs_low <= tr.revenue_lift_per_person <= rev.abs_high,
                     rev.cuped_low <= tr.revenue_lift_per_person <= rev.cuped_high,
                     conv.variance_reduction, rev.variance_reduction,
                     (conv.cuped_high - conv.cuped_low) / (conv.abs_high - conv.abs_low),
                     (rev.cuped_high - rev.cuped_low) / (rev.abs_high - rev.abs_low),
                     (conv.seq_high - conv.seq_low) / (conv.abs_high - conv.abs_low), conv.significant))
    a = np.array(rows, dtype=float)
    return {"worlds": worlds, "people": people, "seconds": round(time.perf_counter() - t0, 1),
            "coverage_conversion": a[:, 0].mean(), "coverage_conversion_cuped": a[:, 1].mean(),
            "coverage_conversion_sequential": a[:, 2].mean(), "coverage_revenue": a[:, 3].mean(),
            "coverage_revenue_cuped": a[:, 4].mean(), "variance_reduction_conversion": a[:, 5].mean(),
            "variance_reduction_revenue": a[:, 6].mean(), "cuped_width_ratio_conversion": a[:, 7].mean(),
            "cuped_width_ratio_revenue": a[:, 8].mean(), "sequential_width_ratio": a[:, 9].mean(),
            "share_significant": a[:, 10].mean()}


def bench_uplift(worlds: int = 5, people: int = 20_000, seed: int = 100) -> dict:
    """Held-out Qini coefficient and uplift@10% per learner, averaged over worlds with a heterogeneous effect."""
    t0 = time.perf_counter()
    per = [evaluate(simulate_test(s, people=people, conversion=0.1, heterogeneity=3.0).frame, "arm", "control",
                    "converted", list(COVARIATES), seed=s) for s in range(seed, seed + worlds)]
    learners = per[0]["learners"].keys()
    return {"worlds": worlds, "people": people, "seconds": round(time.perf_counter() - t0, 1),
            "qini": {k: float(np.mean([p["learners"][k]["qini"] for p in per])) for k in learners},
            "qini_per_world": {k: [round(p["learners"][k]["qini"], 4) for p in per] for k in learners},
            "uplift_at_10": {k: float(np.nanmean([p["learners"][k]["uplift_at_10"] for p in per])) for k in learners
                             if k != "random"},
            "overall_uplift": float(np.mean([p["overall_uplift"] for p in per]))}
