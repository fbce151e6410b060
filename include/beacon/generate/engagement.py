"""The engagement model: opens, clicks and orders that respond to messages with a known true effect.

`respond(exposures, people, seed=..., effects=...)` turns assignment records (who was put in which arm of
which campaign, whether a message was sent, and when) into the events those people then produce:

- **baseline orders** for everyone, control included, from each person's own order rate (a Poisson process
  from their first exposure to `EffectBook.horizon_days` after their last one); people who bought more
  before (see `simulate_people`'s `prior_*` columns) buy more after, so pre-exposure covariates predict the
  outcome and CUPED has something to work with;
- **opens and clicks** of each message that was sent (`p_open`, `p_click` per person);
- **nudged orders**: a sent message of a non-control arm adds one order with probability Δ_i, at a uniform
  time within `Effect.days`. Δ_i = `Effect.conversion` × w_i, where w_i = 2·sigmoid(h·(engagement − intent))
  leans the effect towards engaged, low-intent people (the persuadable) when `Effect.heterogeneity` h > 0,
  so an uplift model has something to find that a response model (which ranks by intent) does not.

The true effects follow in closed form from the same latent quantities (`true_effects`), and are written to
the world's truth folder (`write_truth`), never read by the pipeline: tests and evaluations read them with
`read_truth(world_dir)`. Exactness: the truth is the expected intent-to-treat difference over the people of
the experiment (treatment arm ∪ control, control counted as "would have been sent"), exact when each person
is in one campaign; overlapping campaigns add each other's nudged orders to both arms alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from beacon.generate.config import DAY
from beacon.generate.helpers import _mix

EVENT_TYPES = ("open", "click", "order")
EXPOSURE_COLUMNS = ("customer_id", "campaign", "arm", "sent", "channel", "exposed_at")
PERSON_COLUMNS = ("customer_id", "order_rate", "aov", "p_open", "p_click")
CONTROL = "control"
TRUTH_FILE = "engagement_effects.parquet"
_REVENUE_SIGMA = 0.5  # lognormal spread of one order's value around the person's average order value


@dataclass(frozen=True)
class Effect:
    """The true effect of one arm of one campaign on a person who was sent its message."""

    conversion: float = 0.0  # extra probability of one order within `days`, for an average person
    heterogeneity: float = 0.0  # 0: the same for everyone; > 0: leans to engaged, low-intent people
    days: float = 7.0  # the nudged order falls uniformly within this many days after exposure

    def __post_init__(self) -> None:
        if not 0.0 <= self.conversion < 1.0:
            raise ValueError(f"Effect.conversion must be in [0, 1), not {self.conversion}")
        if self.days <= 0:
            raise ValueError(f"Effect.days must be positive, not {self.days}")


@dataclass(frozen=True)
class EffectBook:
    """True effects per campaign and arm; an arm named 'control' never has one, others fall back to `default`."""

    effects: Mapping[str, Mapping[str, Effect]] = field(default_factory=dict)
    default: Effect = Effect()
    horizon_days: float = 30.0  # baseline orders are simulated this long after a person's last exposure

    def effect(self, campaign: str, arm: str) -> Effect:
        if arm == CONTROL:
            return Effect()
        return self.effects.get(campaign, {}).get(arm, self.default)

    def to_dict(self) -> dict:
        return {"effects": {c: {a: asdict(e) for a, e in arms.items()} for c, arms in self.effects.items()},
                "default": asdict(self.default), "horizon_days": self.horizon_days}

    @classmethod
    def from_dict(cls, d: Mapping) -> EffectBook:
        return cls(effects={c: {a: Effect(**e) for a, e in arms.items()} for c, arms in d.get("effects", {}).items()},
                   default=Effect(**d.get("default", {})), horizon_days=float(d.get("horizon_days", 30.0)))


# Plausible effects for the simulations of the built-in plays (journeys simulate, demo worlds).
DEFAULT_BOOK = EffectBook(
    effects={
        "journey:cart_abandonment": {"treatment": Effect(conversion=0.06, heterogeneity=0.5, days=3)},
        "journey:win_back": {"treatment": Effect(conversion=0.03, heterogeneity=1.0)},
        "audience:win_back_lapsed": {"treatment": Effect(conversion=0.03, heterogeneity=1.0)},
        "audience:high_value_churn_risk": {"treatment": Effect(conversion=0.02, heterogeneity=1.0)},
    },
    default=Effect(conversion=0.015, heterogeneity=0.5),
)


def _check_columns(df: pd.DataFrame, needed: tuple[str, ...], what: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{what} is missing column(s) {missing}; it needs {list(needed)}")


def _weights(people: pd.DataFrame, h: np.ndarray) -> np.ndarray:
    """w_i = 2·sigmoid(h·(engagement − intent)): 1 for everyone when h = 0."""
    eng = people["engagement"].to_numpy(float) if "engagement" in people else np.zeros(len(people))
    intent = people["intent"].to_numpy(float) if "intent" in people else np.zeros(len(people))
    return 2.0 / (1.0 + np.exp(-h * (eng - intent)))


def _effect_arrays(exp: pd.DataFrame, effects: EffectBook) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per exposure row: the arm's conversion effect, heterogeneity and effect days."""
    book = {(c, a): effects.effect(c, a) for c, a in exp[["campaign", "arm"]].drop_duplicates().itertuples(index=False)}
    eff = [book[(c, a)] for c, a in zip(exp.campaign, exp.arm, strict=True)]
    return (np.array([e.conversion for e in eff], float), np.array([e.heterogeneity for e in eff], float),
            np.array([e.days for e in eff], float))


def _nudge(exp: pd.DataFrame, effects: EffectBook) -> tuple[np.ndarray, np.ndarray]:
    """Per exposure row (joined with its person): Δ, the chance its message adds an order, and the effect's days."""
    conv, het, days = _effect_arrays(exp, effects)
    return np.clip(conv * _weights(exp, het), 0.0, 0.95) * exp.sent.to_numpy(bool), days


def nudge_chances(exposures: pd.DataFrame, people: pd.DataFrame, effects: EffectBook) -> np.ndarray:
    """Δ per exposure row, in the order given: the planted chance that its message adds one order (what `respond`
    draws from; 0 for control and for messages not sent). The truth an evaluation compares a lift with."""
    _check_columns(exposures, EXPOSURE_COLUMNS, "exposures")
    exp = exposures.reset_index(drop=True).merge(people, on="customer_id", how="left", validate="many_to_one")
    if exp.p_open.isna().any():
        raise ValueError("an exposure names a customer_id not in people")
    return _nudge(exp.assign(sent=exp.sent.astype(bool)), effects)[0]


def _seconds(ts: pd.Series) -> np.ndarray:
    """UTC epoch seconds, whatever the datetime resolution (ns, us, s)."""
    return ((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)


def _joined(exposures: pd.DataFrame, people: pd.DataFrame) -> pd.DataFrame:
    _check_columns(exposures, EXPOSURE_COLUMNS, "exposures")
    _check_columns(people, PERSON_COLUMNS, "people")
    if people.customer_id.duplicated().any():
        raise ValueError("people has duplicate customer_id values")
    exp = exposures.merge(people, on="customer_id", how="left", validate="many_to_one", indicator=True)
    lost = exp[exp._merge != "both"]
    if len(lost):
        raise ValueError(f"{len(lost)} exposure(s) name a customer_id not in people, e.g. {lost.customer_id.iloc[0]!r}")
    exp = exp.drop(columns="_merge")
    exp["exposed_at"] = pd.to_datetime(exp.exposed_at, utc=True)
    exp["sent"] = exp.sent.astype(bool)
    return exp.sort_values(["customer_id", "campaign", "exposed_at", "arm"], kind="stable").reset_index(drop=True)


def _keyed_uniforms(exp: pd.DataFrame, seed: int, streams: int) -> list[np.ndarray]:
    """`streams` uniforms in [0, 1) per exposure row, each a function of the seed and the exposure alone (person,
    campaign, arm, time): the same exposure gets the same draws whatever else is drawn beside it."""
    ident = pd.DataFrame({
        "customer_id": exp.customer_id.astype(str).to_numpy(), "campaign": exp.campaign.astype(str).to_numpy(),
        "arm": exp.arm.astype(str).to_numpy(), "t": _seconds(exp.exposed_at)})
    key = pd.util.hash_pandas_object(ident, index=False).to_numpy(np.uint64)
    # A second message with the same person, campaign, arm and time (another node of a journey) draws apart.
    again = ident.groupby(list(ident.columns), sort=False).cumcount().to_numpy(np.uint64)
    key = np.where(again > 0, _mix(key, 7) + again, key)
    return [(_mix(key, seed * 1_000_003 + k) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
            for k in range(streams)]


def _exposure_draws(exp: pd.DataFrame, rng: np.random.Generator, seed: int, keyed: bool) -> tuple[np.ndarray, ...]:
    """Per exposure row: uniforms for open, click, nudge and the nudge's time, the open and click delays (seconds),
    and the nudged order's revenue noise (NaN: drawn with the other events)."""
    n = len(exp)
    if not keyed:  # one generator for the whole batch, in the order respond always drew them
        u_open, u_click = rng.random(n), rng.random(n)
        open_delay, click_delay = rng.exponential(6 * 3600, n), rng.exponential(1800, n)
        u_nudge, u_time = rng.random(n), rng.random(n)
        return u_open, u_click, open_delay, click_delay, u_nudge, u_time, np.full(n, np.nan)
    from scipy.special import ndtri

    u_open, u_click, u_od, u_cd, u_nudge, u_time, u_rev = _keyed_uniforms(exp, seed, 7)
    noise = np.exp(-_REVENUE_SIGMA**2 / 2 + _REVENUE_SIGMA * ndtri(np.clip(u_rev, 1e-12, 1 - 1e-12)))
    return (u_open, u_click, -6 * 3600 * np.log1p(-u_od), -1800 * np.log1p(-u_cd), u_nudge, u_time, noise)


def respond(exposures: pd.DataFrame, people: pd.DataFrame, *, seed: int, effects: EffectBook,
            keyed: bool = False) -> pd.DataFrame:
    """The opens, clicks and orders that follow `exposures` (customer_id, event_type, occurred_at, revenue, campaign).

    `people` needs customer_id, order_rate (orders per day), aov, p_open, p_click, and may have engagement and
    intent (the effect's lean). Deterministic for a seed, whatever the row order of the inputs. With `keyed`, the
    answer to each exposure (open, click, nudged order, their times and revenue) is drawn from the seed and that
    exposure alone, so adding, removing or changing other exposures leaves it as it was (the demo world: one
    audience's change must not redraw every other campaign's answers); the baseline orders are drawn per batch."""
    exp = _joined(exposures, people)
    rng = np.random.default_rng([seed, 17])
    ts = _seconds(exp.exposed_at)
    # Baseline orders, once per person: from the first exposure until horizon_days after the last.
    per = exp.groupby("customer_id", sort=True).agg(t0=("exposed_at", "min"), t1=("exposed_at", "max"))
    per = per.join(people.set_index("customer_id")[["order_rate", "aov"]])
    t0 = _seconds(per.t0)
    length = _seconds(per.t1) - t0 + effects.horizon_days * DAY
    counts = rng.poisson(per.order_rate.to_numpy(float) * length / DAY)
    who = np.repeat(np.arange(len(per)), counts)
    base_ts = t0[who] + (rng.random(len(who)) * length[who]).astype(np.int64)
    base = pd.DataFrame({"customer_id": per.index.to_numpy()[who], "event_type": "order", "ts": base_ts,
                         "aov": per.aov.to_numpy(float)[who], "campaign": None})
    # Opens and clicks of the messages that were sent.
    sent = exp.sent.to_numpy()
    p_open = exp.p_open.to_numpy(float)
    u_open, u_click, open_delay, click_delay, u_nudge, u_time, nudge_noise = _exposure_draws(exp, rng, seed, keyed)
    opened = sent & (u_open < p_open)
    clicked = opened & (u_click < np.clip(exp.p_click.to_numpy(float) / np.maximum(p_open, 1e-9), 0, 1))
    open_ts = ts + open_delay.astype(np.int64)
    click_ts = open_ts + click_delay.astype(np.int64)
    # Nudged orders: the planted effect, for sent messages of non-control arms.
    delta, days = _nudge(exp, effects)
    nudged = u_nudge < delta
    nudge_ts = ts + (u_time * days * DAY).astype(np.int64)
    cid, camp, aov = exp.customer_id.to_numpy(), exp.campaign.to_numpy(), exp.aov.to_numpy(float)
    parts = [base.assign(noise=np.nan),
             pd.DataFrame({"customer_id": cid[opened], "event_type": "open", "ts": open_ts[opened], "aov": np.nan,
                           "campaign": camp[opened], "noise": np.nan}),
             pd.DataFrame({"customer_id": cid[clicked], "event_type": "click", "ts": click_ts[clicked], "aov": np.nan,
                           "campaign": camp[clicked], "noise": np.nan}),
             pd.DataFrame({"customer_id": cid[nudged], "event_type": "order", "ts": nudge_ts[nudged],
                           "aov": aov[nudged], "campaign": None, "noise": nudge_noise[nudged]})]
    ev = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else parts[0]
    is_order = (ev.event_type == "order").to_numpy()
    mu = -_REVENUE_SIGMA**2 / 2  # lognormal with mean 1: E[revenue] = aov
    noise = rng.lognormal(mu, _REVENUE_SIGMA, len(ev))
    noise = np.where(np.isnan(ev.noise.to_numpy(float)), noise, ev.noise.to_numpy(float))
    ev["revenue"] = np.where(is_order, np.round(ev.aov.to_numpy(float) * noise, 2), 0.0)
    ev["occurred_at"] = pd.to_datetime(ev.ts.astype("int64"), unit="s", utc=True)
    out = ev[["customer_id", "event_type", "occurred_at", "revenue", "campaign"]]
    return out.sort_values(["occurred_at", "customer_id", "event_type"], kind="stable").reset_index(drop=True)


def true_effects(exposures: pd.DataFrame, people: pd.DataFrame, effects: EffectBook,
                 window_days: float = 7.0) -> pd.DataFrame:
    """Expected outcome rates per campaign and arm, and the true lift of each arm over its campaign's control.

    Conversion = at least one order within `window_days` after exposure; revenue per person within the window.
    Control rows carry the expected rates; lift columns are on the non-control arms."""
    exp = _joined(exposures, people)
    lam_w = exp.order_rate.to_numpy(float) * window_days
    p0 = 1.0 - np.exp(-lam_w)
    aov = exp.aov.to_numpy(float)
    rows = []
    for campaign, g in exp.groupby("campaign", sort=True):
        idx = g.index.to_numpy()
        ctrl = idx[(g.arm == CONTROL).to_numpy()]
        rows.append({"campaign": campaign, "arm": CONTROL, "people": len(ctrl),
                     "conversion_rate": float(p0[ctrl].mean()) if len(ctrl) else np.nan,
                     "revenue_per_person": float((lam_w[ctrl] * aov[ctrl]).mean()) if len(ctrl) else np.nan})
        for arm, ga in g[g.arm != CONTROL].groupby("arm", sort=True):
            arm_idx = ga.index.to_numpy()
            # The experiment's people: this arm as it was (sent or not) and control as if sent.
            units = np.concatenate([arm_idx, ctrl])
            s = np.concatenate([exp.sent.to_numpy()[arm_idx], np.ones(len(ctrl), bool)])
            # Everyone's effect is the arm's (control people's as if they had been in it).
            e = effects.effect(campaign, arm)
            d_arm = (np.clip(e.conversion * _weights(exp.loc[units], np.full(len(units), e.heterogeneity)), 0.0, 0.95)
                     * min(1.0, window_days / e.days) * s)
            p1 = 1.0 - (1.0 - p0[units]) * (1.0 - d_arm)
            rate0, rate1 = float(p0[units].mean()), float(p1.mean())
            rev0 = float((lam_w[units] * aov[units]).mean())
            rev_lift = float((d_arm * aov[units]).mean())
            rows.append({"campaign": campaign, "arm": arm, "people": len(arm_idx), "conversion_rate": rate1,
                         "revenue_per_person": rev0 + rev_lift, "abs_lift": rate1 - rate0,
                         "rel_lift": (rate1 - rate0) / rate0 if rate0 > 0 else np.nan,
                         "revenue_lift_per_person": rev_lift, "window_days": window_days})
    return pd.DataFrame(rows)


def simulate_people(n: int, seed: int, pre_days: int = 90) -> pd.DataFrame:
    """A small population with latent propensities and observed pre-exposure covariates (`prior_*`).

    The latent model matches the generator's (beacon.generate.population): engagement and intent drive
    opens, clicks and orders; the prior columns are what a warehouse would know before the exposure."""
    rng = np.random.default_rng([seed, 18])
    engagement = rng.normal(0, 1, n)
    intent = 0.5 * engagement + rng.normal(0, 0.87, n)
    value = rng.normal(0, 1, n)
    order_rate = np.exp(-4.2 + 0.9 * intent + 0.3 * value)
    aov = np.exp(3.9 + 0.45 * value)
    web_rate = np.exp(-2.6 + 0.6 * engagement + 0.4 * intent)
    p_open = 1 / (1 + np.exp(-(-0.9 + 1.0 * engagement)))
    p_click = 1 / (1 + np.exp(-(-2.0 + 0.8 * engagement + 0.4 * intent)))
    prior_orders = rng.poisson(order_rate * pre_days)
    prior_revenue = np.array([rng.lognormal(-_REVENUE_SIGMA**2 / 2, _REVENUE_SIGMA, k).sum() * a
                              for k, a in zip(prior_orders, aov, strict=True)])
    return pd.DataFrame({
        "customer_id": [f"C{seed % 100000:05d}-{i:06d}" for i in range(n)],
        "engagement": engagement, "intent": intent, "order_rate": order_rate, "aov": aov,
        "p_open": p_open, "p_click": p_click,
        "prior_orders": prior_orders, "prior_revenue": np.round(prior_revenue, 2),
        "prior_visits": rng.poisson(web_rate * pre_days),
        "prior_opens": rng.binomial(pre_days // 7, p_open),  # about a newsletter a week
    })


def randomize(people: pd.DataFrame, campaign: str, seed: int, exposed_at: str | pd.Timestamp,
              arms: Mapping[str, float] | None = None, channel: str = "email") -> pd.DataFrame:
    """Assignment records for a randomized campaign: each person to an arm by weight; control is not sent."""
    arms = dict(arms or {"treatment": 0.9, CONTROL: 0.1})
    names, w = list(arms), np.array(list(arms.values()), float)
    rng = np.random.default_rng([seed, 19])
    arm = np.array(names)[rng.choice(len(names), size=len(people), p=w / w.sum())]
    return pd.DataFrame({"customer_id": people.customer_id.to_numpy(), "campaign": campaign, "arm": arm,
                         "sent": arm != CONTROL, "channel": channel,
                         "exposed_at": pd.Timestamp(exposed_at, tz="UTC") if pd.Timestamp(exposed_at).tzinfo is None
                         else pd.Timestamp(exposed_at).tz_convert("UTC")})


def write_truth(truth_dir: Path, truth: pd.DataFrame, effects: EffectBook) -> Path:
    """Keep the true effects beside the world's other truth (never read by the pipeline)."""
    truth_dir = Path(truth_dir)
    truth_dir.mkdir(parents=True, exist_ok=True)
    truth.to_parquet(truth_dir / TRUTH_FILE, index=False)
    (truth_dir / "engagement_effects.json").write_text(json.dumps(effects.to_dict(), indent=2))
    return truth_dir / TRUTH_FILE


def read_truth(world_dir: Path) -> pd.DataFrame:
    """Every true-effect table of a world (`<world>/truth/<date>/engagement_effects.parquet`), for tests and evaluations."""
    files = sorted(Path(world_dir).glob(f"truth/*/{TRUTH_FILE}")) or sorted(Path(world_dir).glob(TRUTH_FILE))
    if not files:
        raise FileNotFoundError(f"no {TRUTH_FILE} under {world_dir} (truth/<date>/ or the folder itself)")
    return pd.concat([pd.read_parquet(f).assign(truth_file=str(f)) for f in files], ignore_index=True)
