"""Best-time sends: each person's likely local hour of engagement, and a Thompson-sampling bandit over hours.

1. Engagement hours: each person's opens and clicks by LOCAL hour (one count per person, day and hour, so a
   click right after its open counts once), smoothed over neighbouring hours and mixed with the audience's
   distribution with weight `prior_events` -- a person with little history gets mostly the audience's.
2. The bandit: arm h = "send at local hour h", a Beta-Bernoulli posterior of P(open | sent at h). Its prior
   mean is the person's open rate times how much of their engagement falls in the hour starting at h and the
   next one (an email is best sent shortly before they read); `prior_sends` pseudo-sends per arm. Past sends
   with their outcome (when `message_id` links opens to sends) update it; every choice is a Thompson draw, so
   it keeps exploring hours that might be better while mostly sending at the best one.

`best_send_hours` returns (customer_id, local_hour, source): source is `person` (enough own history),
`audience` (little history: the audience's hours carry it) or `explore` (the draw picked another hour than
the posterior's best). `next_send_at` turns a local hour into the next UTC send time. docs/personalization.md.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

HOURS = 24
# Without a `tz` or a known `state`, `timezones` falls back to this zone (the generated people live in the US).
# In the warehouse the person's zone comes from marts.customer_profile.time_zone (state -> zone from the dbt
# seed state_time_zones, UTC when unknown), which `load_engagement` passes on as `tz`.
DEFAULT_TZ = "America/New_York"


@cache
def state_time_zones() -> dict[str, str]:
    """US state -> IANA zone: the dbt seed `state_time_zones` (the one definition; the mart customer_profile
    reads the same file), from the configured dbt project, else the one shipped with the code."""
    from beacon.config import settings

    name = Path("seeds") / "state_time_zones.csv"
    path = settings().dbt_project_dir / name
    if not path.exists():
        path = Path(__file__).resolve().parents[3] / "dbt_project" / name
    with open(path, newline="") as f:
        return {r["state"]: r["time_zone"] for r in csv.DictReader(f)}


def __getattr__(name: str):
    if name == "STATE_TZ":
        return state_time_zones()
    raise AttributeError(name)


@dataclass(frozen=True)
class BestTimeParams:
    min_events: int = 2  # own engagement (distinct day-hours) for source = "person"
    prior_events: float = 3.0  # weight of the audience's hour distribution in a person's
    prior_sends: float = 30.0  # pseudo-sends per hour arm in the bandit's prior
    lift: float = 0.6  # how strongly the engagement shape moves the prior open rate between hours


def timezones(people: pd.DataFrame, default_tz: str = DEFAULT_TZ) -> pd.Series:
    """Each person's IANA zone: the `tz` column, else their `state`'s zone, else `default_tz`."""
    tz = people["tz"] if "tz" in people.columns else pd.Series(None, index=people.index, dtype=object)
    if "state" in people.columns:
        states = people["state"].astype("string").str.upper().str.strip()
        tz = tz.where(tz.notna(), states.map(state_time_zones()))
    tz = tz.where(tz.notna(), default_tz).astype(str)
    for zone in tz.unique():
        try:
            ZoneInfo(zone)
        except Exception as exc:  # noqa: BLE001 - ZoneInfoNotFoundError, ValueError on odd keys
            row = int(np.flatnonzero((tz == zone).to_numpy())[0])
            raise ValueError(f"people row {row}: unknown time zone {zone!r} (an IANA name such as America/Chicago)") from exc
    return tz


def local_hours(ts_utc: pd.Series, tz: pd.Series) -> np.ndarray:
    """The local hour (0..23) of UTC timestamps (naive = UTC) in each row's zone."""
    ts = pd.to_datetime(ts_utc, utc=True)
    out = np.empty(len(ts), dtype=np.int64)
    tzv = np.asarray(tz)
    for zone in np.unique(tzv):
        m = tzv == zone
        out[m] = pd.DatetimeIndex(ts[m]).tz_convert(str(zone)).hour
    return out


def next_send_at(ts_utc: datetime, tz: str, hour: int) -> datetime:
    """The first moment at or after `ts_utc` (naive = UTC) when the clock in `tz` shows `hour`:00, in UTC.
    On a spring-forward day a missing hour moves to the next existing minute; in the repeated autumn hour
    the first one is used."""
    if not 0 <= int(hour) < 24:
        raise ValueError(f"hour must be 0..23, got {hour}")
    t = pd.Timestamp(ts_utc)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return next_send_times(pd.Series([t]), pd.Series([tz]), pd.Series([int(hour)])).iloc[0].to_pydatetime()


def next_send_times(ts_utc: pd.Series, tz: pd.Series, hour: pd.Series) -> pd.Series:
    """`next_send_at` for many rows at once (vectorised per zone); UTC timestamps."""
    ts = pd.to_datetime(ts_utc, utc=True).reset_index(drop=True)
    tzv, hv = np.asarray(tz), np.asarray(hour, dtype=np.int64)
    if ((hv < 0) | (hv > 23)).any():
        raise ValueError("hour must be 0..23")
    out = pd.Series(pd.NaT, index=ts.index, dtype="datetime64[ns, UTC]")
    for zone in np.unique(tzv):
        m = tzv == zone
        local = pd.DatetimeIndex(ts[m]).tz_convert(str(zone))
        day = local.tz_localize(None).normalize()
        for add in (0, 1, 2):
            cand = (day + pd.to_timedelta(add, unit="D") + pd.to_timedelta(hv[m], unit="h"))
            cand = cand.tz_localize(str(zone), nonexistent="shift_forward", ambiguous=np.ones(len(cand), bool))
            cand_utc = pd.Series(cand.tz_convert("UTC"), index=np.flatnonzero(m))
            need = out.iloc[np.flatnonzero(m)].isna().to_numpy() & (cand_utc.to_numpy() >= ts[m].to_numpy())
            idx = np.flatnonzero(m)[need]
            out.iloc[idx] = cand_utc[idx].to_numpy()
    return out


def engagement_counts(engagement: pd.DataFrame, people: pd.DataFrame, tz: pd.Series) -> np.ndarray:
    """(people x 24) distinct (day, local hour) counts of each person's opens and clicks."""
    ids = pd.Index(people.customer_id.astype(str))
    ev = engagement[engagement.event_name.isin(["open", "click"])]
    ev = ev[ev.customer_id.astype(str).isin(ids)]
    counts = np.zeros((len(ids), HOURS))
    if ev.empty:
        return counts
    pos = ids.get_indexer(ev.customer_id.astype(str))
    z = tz.to_numpy()[pos]
    ts = pd.to_datetime(ev.event_at, utc=True)
    hours = local_hours(ts, pd.Series(z))
    days = ((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(days=1)).to_numpy()  # whatever the time unit
    key = pd.DataFrame({"p": pos, "d": days, "h": hours}).drop_duplicates()
    np.add.at(counts, (key.p.to_numpy(), key.h.to_numpy()), 1.0)
    return counts


def _smooth(counts: np.ndarray) -> np.ndarray:
    """Spread each hour a little to its neighbours (circular): opens near a boundary inform both hours."""
    return 0.5 * counts + 0.25 * np.roll(counts, 1, axis=1) + 0.25 * np.roll(counts, -1, axis=1)


def send_outcomes(engagement: pd.DataFrame) -> pd.DataFrame:
    """(customer_id, sent_at, opened) of past sends, when events carry `message_id` to link opens to sends."""
    if "message_id" not in engagement.columns:
        return pd.DataFrame(columns=["customer_id", "sent_at", "opened"])
    sent = engagement[engagement.event_name == "sent"][["customer_id", "message_id", "event_at"]]
    opened = set(engagement.loc[engagement.event_name.isin(["open", "click"]), "message_id"].dropna())
    return pd.DataFrame({"customer_id": sent.customer_id.astype(str).to_numpy(), "sent_at": sent.event_at.to_numpy(),
                         "opened": sent.message_id.isin(opened).to_numpy()})


class HourBandit:
    """Beta-Bernoulli posteriors of P(open | sent at local hour h), one row of 24 arms per person."""

    def __init__(self, alpha: np.ndarray, beta: np.ndarray, seed: int | np.random.Generator = 0):
        if alpha.shape != beta.shape or alpha.shape[1:] != (HOURS,):
            raise ValueError(f"alpha and beta must both be (people, 24), got {alpha.shape} and {beta.shape}")
        self.alpha, self.beta = alpha.astype(float).copy(), beta.astype(float).copy()
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    @classmethod
    def from_prior(cls, mean: np.ndarray, strength: float, seed: int | np.random.Generator = 0) -> HourBandit:
        mean = np.clip(mean, 1e-3, 1 - 1e-3)
        return cls(mean * strength, (1 - mean) * strength, seed)

    def choose(self) -> np.ndarray:
        """One Thompson draw per person: the hour whose sampled open chance is highest."""
        return np.argmax(self.rng.beta(self.alpha, self.beta), axis=1)

    def best(self) -> np.ndarray:
        """The hour with the highest posterior mean (what a greedy sender would pick)."""
        return np.argmax(self.alpha / (self.alpha + self.beta), axis=1)

    def exploring(self, hours: np.ndarray) -> np.ndarray:
        """Per person: is `hours` worse than the best hour by posterior mean (a tie is not exploring)?"""
        mean = self.alpha / (self.alpha + self.beta)
        rows = np.arange(len(hours))
        return mean[rows, hours] < mean.max(axis=1) - 1e-12

    def update(self, rows: np.ndarray, hours: np.ndarray, opened: np.ndarray) -> None:
        o = np.asarray(opened, dtype=float)
        np.add.at(self.alpha, (rows, hours), o)
        np.add.at(self.beta, (rows, hours), 1.0 - o)


def fit_bandit(engagement: pd.DataFrame, people: pd.DataFrame, *, seed: int | np.random.Generator = 0,
               params: BestTimeParams = BestTimeParams(), default_tz: str = DEFAULT_TZ) -> tuple[HourBandit, np.ndarray]:
    """The bandit for `people` (rows in that order) from their engagement history; also each person's own
    engagement count (distinct day-hours)."""
    if "customer_id" not in people.columns:
        raise ValueError("people has no customer_id column")
    missing = {"customer_id", "event_name", "event_at"} - set(engagement.columns)
    if missing:
        raise ValueError(f"engagement is missing columns {sorted(missing)}")
    tz = timezones(people, default_tz)
    counts = engagement_counts(engagement, people, tz)
    sm = _smooth(counts)
    total = sm.sum()
    audience = sm.sum(axis=0) / total if total > 0 else np.full(HOURS, 1 / HOURS)
    n = counts.sum(axis=1)
    share = (sm + params.prior_events * audience[None, :]) / (n[:, None] + params.prior_events)
    ahead = share + np.roll(share, -1, axis=1)  # engagement in the hour of the send and the next one
    shape = 1 + params.lift * (ahead * HOURS / 2 - 1)
    ids = pd.Index(people.customer_id.astype(str))
    outcomes = send_outcomes(engagement)
    outcomes = outcomes[outcomes.customer_id.isin(ids)]
    base_rate = float(outcomes.opened.mean()) if len(outcomes) else 0.2
    rate = np.full(len(ids), base_rate)
    if len(outcomes):
        g = outcomes.groupby("customer_id").opened.agg(["sum", "count"])
        pos = ids.get_indexer(g.index)
        rate[pos] = (g["sum"].to_numpy() + 5 * base_rate) / (g["count"].to_numpy() + 5)
    bandit = HourBandit.from_prior(np.clip(rate[:, None] * np.clip(shape, 0.2, 3.0), 0.005, 0.95), params.prior_sends, seed)
    if len(outcomes):
        rows = ids.get_indexer(outcomes.customer_id)
        hours = local_hours(pd.to_datetime(outcomes.sent_at, utc=True), pd.Series(tz.to_numpy()[rows]))
        bandit.update(rows, hours, outcomes.opened.to_numpy())
    return bandit, n


def best_send_hours(engagement: pd.DataFrame, people: pd.DataFrame, *, seed: int,
                    params: BestTimeParams = BestTimeParams(), default_tz: str = DEFAULT_TZ) -> pd.DataFrame:
    """Each person's send hour (local) for the next message: customer_id, local_hour (0..23), source.

    `engagement`: customer_id, event_name (open/click count as engagement; `sent` with `message_id` are the
    bandit's trials), event_at (UTC). `people`: customer_id and `tz` or `state`. The same seed gives the same
    draws."""
    bandit, n = fit_bandit(engagement, people, seed=seed, params=params, default_tz=default_tz)
    choice = bandit.choose()
    source = np.where(bandit.exploring(choice), "explore", np.where(n >= params.min_events, "person", "audience"))
    return pd.DataFrame({"customer_id": people.customer_id.astype(str).to_numpy(), "local_hour": choice.astype(int),
                         "source": source})


def load_engagement(con, days: int = 365) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(engagement, people) from the warehouse: email events of the `days` before the warehouse clock
    (marts.fct_email_events; `message_id` when the mart has it) and every customer's time zone as `tz`
    (marts.customer_profile)."""
    cols = {r[0] for r in con.execute("""SELECT column_name FROM information_schema.columns
                                          WHERE table_schema = 'marts' AND table_name = 'fct_email_events'""").fetchall()}
    if not cols:
        raise ValueError("marts.fct_email_events does not exist: build the marts first")
    msg = "message_id" if "message_id" in cols else "NULL::VARCHAR AS message_id"
    engagement = con.execute(f"""SELECT customer_id, event_name, event_at, {msg} FROM marts.fct_email_events
        WHERE customer_id IS NOT NULL AND event_name IN ('sent', 'open', 'click')
          AND event_at > (SELECT max(as_of_at) FROM marts.warehouse_as_of) - to_days(?)
          AND event_at <= (SELECT max(as_of_at) FROM marts.warehouse_as_of)""", [int(days)]).df()
    people = con.execute("SELECT customer_id, time_zone AS tz FROM marts.customer_profile").df()
    return engagement, people

