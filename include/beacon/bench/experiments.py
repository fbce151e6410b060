"""`beacon bench experiments`: does winner selection pick the planted best arm, and stay quiet when there is none?

Each world is an A/B/n test inside a journey: every day new people enter and are split evenly over the arms
(two or three competing arms, alternating between worlds, plus a control), each converts with its arm's true
rate and may unsubscribe at its arm's true rate. The rule is looked at every day from day `after` on (peeking,
as a running journey does), through `beacon.measure.experiments.decide`. Three kinds of worlds:

- **best**: one arm (chosen at random) converts `lift` better than the others: it should win;
- **null**: every arm is the same: any decision is a false one;
- **guardrail**: the best-converting arm also unsubscribes `guard_factor` times as many people: it should be
  stopped, and the record says how often it won before its breach was clear.

For contrast, the null worlds are also judged with fixed-horizon intervals looked at daily (the usual mistake):
their false-winner rate shows why the intervals must be always valid.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
from scipy import stats as sps

from beacon.measure.experiments import ArmCounts, WinnerRule, decide

START = datetime(2026, 7, 1, tzinfo=UTC)


def _world(rng: np.random.Generator, kind: str, k: int, days: int, daily: int, base: float, lift: float,
           unsub: float, guard_factor: float) -> tuple[list[str], str | None, np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative people, conversions and unsubscribes per day and arm (last arm = control); the planted best."""
    arms = [f"arm_{chr(97 + i)}" for i in range(k)] + ["control"]
    rate = np.full(k + 1, base)
    out_rate = np.full(k + 1, unsub)
    best = None
    if kind in ("best", "guardrail"):
        b = int(rng.integers(k))
        rate[b] += lift
        best = arms[b]
        if kind == "guardrail":
            out_rate[b] *= guard_factor
    people = rng.multinomial(daily, np.full(k + 1, 1 / (k + 1)), size=days)
    conv = rng.binomial(people, rate)
    gone = rng.binomial(people, out_rate)
    return arms, best, people.cumsum(0), conv.cumsum(0), gone.cumsum(0)


def _naive_winner(people: np.ndarray, conv: np.ndarray, k: int, alpha: float) -> bool:
    """Fixed-horizon z intervals (same Bonferroni), as if the test had been planned to stop today."""
    p = conv[:k] / people[:k]
    z = sps.norm.ppf(1 - alpha / (k - 1) / 2)
    for a in range(k):
        ok = True
        for b in range(k):
            if a == b:
                continue
            se = np.sqrt(p[a] * (1 - p[a]) / people[a] + p[b] * (1 - p[b]) / people[b])
            ok &= bool(se > 0 and p[a] - p[b] - z * se > 0)
        if ok:
            return True
    return False


def run_world(seed: int, kind: str, rule: WinnerRule, days: int = 28, daily: int = 1200, base: float = 0.05,
              lift: float = 0.02, unsub: float = 0.004, guard_factor: float = 4.0) -> dict:
    """One world looked at daily until a decision or the last day: who won, when, and what peeking naively says."""
    rng = np.random.default_rng([seed, ("best", "null", "guardrail").index(kind)])
    k = 2 + seed % 2
    arms, best, people, conv, gone = _world(rng, kind, k, days, daily, base, lift, unsub, guard_factor)
    naive = False
    for day in range(days):
        now = START + timedelta(days=day + 1)
        counts = {a: ArmCounts(int(people[day, i]), float(conv[day, i]), guardrails={"unsubscribed": int(gone[day, i])})
                  for i, a in enumerate(arms)}
        if now >= START + rule.after and all(c.people >= rule.min_people for c in counts.values()):
            naive = naive or _naive_winner(people[day], conv[day], k, 1 - rule.confidence)
        d = decide(counts, rule, now=now, started_at=START, control="control")
        if d.decided:
            return {"kind": kind, "arms": k, "best": best, "winner": d.winner, "breached": sorted(d.breached),
                    "day": day + 1, "naive_false": naive if kind == "null" else None}
    return {"kind": kind, "arms": k, "best": best, "winner": None, "breached": [], "day": None,
            "naive_false": naive if kind == "null" else None}


def bench_experiments(worlds: int = 200, seed: int = 0, days: int = 28, daily: int = 1200, base: float = 0.05,
                      lift: float = 0.02, min_people: int = 500, after_days: int = 7, confidence: float = 0.95) -> dict:
    """Right-winner share (planted best), false-decision share (null), breaching-arm wins (guardrail), over `worlds` each."""
    t0 = time.perf_counter()
    rule = WinnerRule(metric="converted", min_people=min_people, after=timedelta(days=after_days),
                      confidence=confidence)
    res = {kind: [run_world(s, kind, rule, days, daily, base, lift) for s in range(seed, seed + worlds)]
           for kind in ("best", "null", "guardrail")}
    best, null, guard = res["best"], res["null"], res["guardrail"]
    decided_days = [r["day"] for r in best if r["winner"] == r["best"]]
    return {
        "worlds_per_kind": worlds, "days": days, "entrants_per_day": daily, "baseline_rate": base,
        "planted_lift": lift, "arms": "2 or 3 competing arms (alternating) + a control",
        "rule": {"metric": rule.metric, "min_people": min_people, "after_days": after_days,
                 "confidence": confidence, "looks": "daily"},
        "best": {"right_winner": float(np.mean([r["winner"] == r["best"] for r in best])),
                 "wrong_winner": float(np.mean([r["winner"] not in (None, r["best"]) for r in best])),
                 "undecided": float(np.mean([r["winner"] is None for r in best])),
                 "median_decision_day": float(np.median(decided_days)) if decided_days else None},
        "null": {"false_decision": float(np.mean([r["day"] is not None for r in null])),
                 "false_winner": float(np.mean([r["winner"] is not None for r in null])),
                 "fixed_horizon_peeking_false_winner": float(np.mean([r["naive_false"] for r in null]))},
        "guardrail": {"breaching_arm_won": float(np.mean([r["winner"] == r["best"] for r in guard])),
                      "breaching_arm_stopped": float(np.mean([r["best"] in r["breached"] for r in guard]))},
        "seconds": round(time.perf_counter() - t0, 1),
    }
