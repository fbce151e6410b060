"""Experiments that decide: pick the winning arm of an A/B/n test on always-valid intervals, safe to look daily.

`decide` is pure: it takes per-arm counts (people, the metric's sum and sum of squares, guardrail counts), the
experiment's rule (`WinnerRule`: metric, min_people per arm, a minimum running time, confidence) and the clock,
and returns a `Decision`. It can be called after every run of a journey (a daily or hourly "peek") because the
intervals are confidence *sequences* (`sequential.sequential_halfwidth`, the normal mixture of Howard et al. 2021 in
GrowthBook's form): the chance that one ever excludes the true difference, however often it is looked at, stays
below 1 − confidence. A fixed-horizon interval looked at daily would declare false winners far more often.

- **Winner**: an arm whose interval against *every* other competing arm lies entirely in its favour. The arms
  compete pairwise at level (1 − confidence) / (k − 1) (Bonferroni over the k − 1 comparisons one arm needs), so
  with k arms and no true difference, P(any winner is ever declared) ≤ k/(2(k − 1)) · (1 − confidence) ≤ 1 − confidence.
- **Guardrail**: an arm whose rate of a guardrail event (unsubscribes, complaints) is, on the same kind of
  interval, above the baseline's (the control's, or else the lowest other arm's) is breached and leaves the
  competition; if one competing arm is left, it wins.
- The control arm (if any) never competes: it keeps its share so that the lift stays measurable.

`beacon bench experiments` checks both properties on simulated worlds with daily looks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from beacon.measure.sequential import SEQUENTIAL_TUNING_N, sequential_halfwidth

METRICS = ("converted", "clicked", "revenue")
METHOD = "always-valid normal-mixture interval (Howard et al. 2021), Bonferroni over each arm's k-1 comparisons"


@dataclass(frozen=True)
class ArmCounts:
    """One arm so far: people assigned, the metric's sum (conversions, clickers or revenue) and sum of squares.

    For a 0/1 metric the sum of squares is the sum (leave it None); `guardrails` counts people per guardrail
    event (e.g. {"unsubscribed": 12})."""

    people: int
    total: float
    total_sq: float | None = None
    guardrails: Mapping[str, int] = field(default_factory=dict)

    def mean_var(self) -> tuple[float, float]:
        """Mean and (unbiased) variance per person."""
        n = self.people
        sq = self.total if self.total_sq is None else self.total_sq
        mean = self.total / n
        var = max(0.0, (sq - n * mean**2) / (n - 1)) if n > 1 else 0.0
        return mean, var


@dataclass(frozen=True)
class WinnerRule:
    """A split's `winner:` block: metric, min_people per arm, a minimum running time, confidence, guardrails."""

    metric: str = "converted"
    min_people: int = 1000
    after: timedelta = timedelta(days=7)
    confidence: float = 0.95
    guardrails: tuple[str, ...] = ("unsubscribed",)
    tuning_n: int = SEQUENTIAL_TUNING_N

    @classmethod
    def from_config(cls, cfg: Mapping, where: str = "winner") -> WinnerRule:
        """The rule from a split's YAML block, e.g. {metric: converted, min_people: 1000, after: 7d,
        confidence: 0.95, guardrails: [unsubscribed]}; ValueError naming `where` and the field otherwise."""
        if not isinstance(cfg, Mapping):
            raise ValueError(f"{where}: expected a mapping (metric, min_people, after, confidence), not {cfg!r}")
        unknown = sorted(set(cfg) - {"metric", "min_people", "after", "confidence", "guardrails"})
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}")
        kw: dict = {k: cfg[k] for k in ("metric", "min_people", "confidence") if k in cfg}
        if "after" in cfg:
            kw["after"] = parse_duration(cfg["after"], f"{where}.after")
        if "guardrails" in cfg:
            g = cfg["guardrails"]
            if not isinstance(g, list | tuple) or not all(isinstance(x, str) for x in g):
                raise ValueError(f"{where}.guardrails: a list of event names, not {g!r}")
            kw["guardrails"] = tuple(g)
        try:
            if "min_people" in kw:
                kw["min_people"] = int(kw["min_people"])
            if "confidence" in kw:
                kw["confidence"] = float(kw["confidence"])
        except (TypeError, ValueError):
            raise ValueError(f"{where}: min_people must be a whole number and confidence a number, "
                             f"not {cfg.get('min_people')!r} / {cfg.get('confidence')!r}") from None
        return cls(**kw)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"winner.metric must be one of {', '.join(METRICS)}, not {self.metric!r}")
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"winner.confidence must be in [0.5, 1), not {self.confidence}")
        if self.min_people < 2:
            raise ValueError(f"winner.min_people must be at least 2, not {self.min_people}")
        if self.after < timedelta(0):
            raise ValueError(f"winner.after must not be negative, not {self.after}")


def parse_duration(v, where: str = "after") -> timedelta:
    """'7d', '36h', '90m' or a number of days, as a timedelta; ValueError naming `where` otherwise."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    text = str(v).strip().lower()
    try:
        if isinstance(v, int | float) and not isinstance(v, bool):
            return timedelta(days=float(v))
        return timedelta(**{units[text[-1]]: float(text[:-1])})
    except (KeyError, ValueError, IndexError, OverflowError):  # OverflowError: beyond 999,999,999 days
        raise ValueError(f"{where}: a duration like 7d, 36h or 90m, not {v!r}") from None


@dataclass
class Decision:
    """What `decide` found, with the figures and the method, for the warehouse record.

    `decided` is True when something is to be recorded and acted on: a `winner` (new entrants go to it), or
    arms that breached a guardrail (`breached`: new entrants stop going to them) while several others go on."""

    decided: bool
    reason: str
    at: str
    metric: str
    winner: str | None = None
    breached: dict[str, str] = field(default_factory=dict)  # arm -> guardrail breached
    arms: dict[str, dict] = field(default_factory=dict)
    comparisons: list[dict] = field(default_factory=list)
    method: str = METHOD
    confidence: float = 0.95

    def to_dict(self) -> dict:
        return asdict(self)


def interval(a: ArmCounts, b: ArmCounts, alpha: float, tuning_n: int = SEQUENTIAL_TUNING_N) -> tuple[float, float, float]:
    """Mean of a − mean of b with its always-valid (1 − alpha) interval: (difference, low, high)."""
    ma, va = a.mean_var()
    mb, vb = b.mean_var()
    se = math.sqrt(va / a.people + vb / b.people)
    diff = ma - mb
    if se == 0:  # nobody converted in either arm yet (or everybody did): nothing tells them apart
        return diff, -math.inf, math.inf
    hw = sequential_halfwidth(se, a.people + b.people, alpha, tuning_n)
    return diff, diff - hw, diff + hw


def _row(**kw) -> dict:
    """A comparison for the record: an unbounded end (no variation yet) is None, so the record is strict JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in kw.items()}


def _guardrail_counts(a: ArmCounts, name: str) -> ArmCounts:
    return ArmCounts(people=a.people, total=float(a.guardrails.get(name, 0)))


def _breaches(arms: Mapping[str, ArmCounts], competing: list[str], control: str | None, rule: WinnerRule,
              alpha: float) -> tuple[dict[str, str], list[dict]]:
    """Arms whose guardrail rate is clearly above the baseline's (the control's, else the lowest other arm's)."""
    out, rows = {}, []
    for g in rule.guardrails:
        for arm in competing:
            others = [control] if control else [o for o in competing if o != arm]
            base = min(others, key=lambda o: arms[o].guardrails.get(g, 0) / arms[o].people)
            d, lo, hi = interval(_guardrail_counts(arms[arm], g), _guardrail_counts(arms[base], g), alpha,
                                 rule.tuning_n)
            rows.append(_row(guardrail=g, arm=arm, baseline=base, diff=d, low=lo, high=hi))
            if lo > 0 and arm not in out:
                out[arm] = g
    return out, rows


def decide(arms: Mapping[str, ArmCounts], rule: WinnerRule, *, now: datetime, started_at: datetime,
           control: str | None = None) -> Decision:
    """Is there a winner among the non-control arms (see the module docstring)? Pure; call it at every look."""
    if control is not None and control not in arms:
        raise ValueError(f"control arm {control!r} has no counts; arms: {sorted(arms)}")
    competing = sorted(a for a in arms if a != control)
    if len(competing) < 2:
        raise ValueError(f"a winner needs at least two competing arms besides the control; got {competing}")
    for name, a in arms.items():
        if a.people < 0 or (a.total < 0 and rule.metric != "revenue"):
            raise ValueError(f"arm {name!r}: negative counts ({a})")
        if rule.metric == "revenue" and a.total_sq is None and a.people:
            raise ValueError(f"arm {name!r}: the revenue metric needs the sum of squares (total_sq)")
    alpha = 1 - rule.confidence
    d = Decision(decided=False, reason="", at=now.isoformat(), metric=rule.metric, confidence=rule.confidence,
                 arms={k: {"people": a.people, "total": a.total, "mean": a.total / a.people if a.people else None,
                           **{f"{g}": a.guardrails.get(g, 0) for g in rule.guardrails}} for k, a in arms.items()})
    if now < started_at + rule.after:
        d.reason = f"too early: decisions start at {(started_at + rule.after).isoformat()}"
        return d
    small = [a for a in arms if arms[a].people < rule.min_people]
    if small:
        d.reason = f"too few people: {', '.join(f'{a} has {arms[a].people:,}' for a in small)} (min_people " \
                   f"{rule.min_people:,})"
        return d
    d.breached, guard_rows = _breaches(arms, competing, control, rule, alpha / max(1, len(rule.guardrails)))
    d.comparisons += guard_rows
    alive = [a for a in competing if a not in d.breached]
    pair_alpha = alpha / (len(competing) - 1)
    for a in alive:
        ahead, out = [], []
        for b in (o for o in competing if o != a):
            diff, lo, hi = interval(arms[a], arms[b], pair_alpha, rule.tuning_n)
            d.comparisons.append(_row(arm=a, other=b, diff=diff, low=lo, high=hi))
            ahead.append(lo > 0 or b in d.breached)
            if not lo > 0 and b in d.breached:
                out.append(b)
        if all(ahead):
            d.decided, d.winner = True, a
            breach = "guardrail breached by " + ", ".join(f"{o} ({d.breached[o]})" for o in out)
            if len(out) == len(competing) - 1:  # ahead of nobody on the metric: the others are out
                d.reason = f"{breach}: {a} is the only arm left"
            else:
                beaten = "every other arm" if not out else "every other arm still in"
                d.reason = f"{a} beats {beaten} on {rule.metric} at {rule.confidence:.0%} (always valid)" \
                           + (f"; {breach}" if out else "")
            return d
    if len(alive) == 1 and d.breached:
        d.decided, d.winner = True, alive[0]
        d.reason = "guardrail breached by " + ", ".join(f"{a} ({g})" for a, g in d.breached.items()) \
                   + f": {alive[0]} is the only arm left"
        return d
    if d.breached:
        d.decided = True
        d.reason = "guardrail breached by " + ", ".join(f"{a} ({g})" for a, g in d.breached.items()) \
                   + "; the other arms go on"
        return d
    d.reason = "no arm is ahead of every other yet"
    return d
