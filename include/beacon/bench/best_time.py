"""`beacon bench best-time`: best-time sends against fixed-time sends on a generated world.

The world's email history (its email events, matched to people by address) trains the hour bandit of
beacon.personalize.best_time; then `rounds` weekly campaigns go to everyone on the list, once per policy,
and each send is opened with the world's true chance: the person's p_open (lower after churn, as in the
generator) times the generator's send-time effect (beacon.generate.behaviour.open_multiplier). The same
random numbers decide the opens of every policy (common random numbers), so differences are the policies'.
Policies: `fixed` (`fixed_hour`, 10:00 local by default, for everyone), `fixed_peak` (the audience's busiest engagement hour, local),
`best_time` (a Thompson draw per person per campaign, learning from each campaign's opens); and `oracle`, the
true best hour from the truth files (an upper bound no sender can reach).
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from beacon.generate.behaviour import open_multiplier
from beacon.generate.config import GenConfig
from beacon.generate.world import generate
from beacon.personalize.best_time import (
    BestTimeParams,
    engagement_counts,
    fit_bandit,
    next_send_times,
    timezones,
)


def load_world(landing: Path, truth: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(engagement, people) of one generated day: email events by person (customer_id = person_id) with
    message_id, and the true people (state, tz, preferred_hour, p_open, churn_ts, on the list or not)."""
    con = duckdb.connect()
    people = con.execute(f"""SELECT person_id AS customer_id, state, tz, preferred_hour, p_open, churn_ts,
                                    in_crm OR in_shop AS on_list, lower(CASE WHEN is_b2b THEN work_email ELSE email END) AS email
                             FROM '{truth}/people.parquet'""").df()
    ev = con.execute(f"""SELECT lower(email) AS email, event AS event_name, message_id,
                                to_timestamp("timestamp")::TIMESTAMP AS event_at
                         FROM read_json('{landing}/email_events.jsonl', ignore_errors = true,
                                        columns = {{'email': 'VARCHAR', 'event': 'VARCHAR', 'message_id': 'VARCHAR',
                                                   'timestamp': 'BIGINT'}})
                         WHERE email IS NOT NULL AND "timestamp" IS NOT NULL""").df()
    con.close()
    ev = ev.merge(people[["customer_id", "email"]].drop_duplicates("email"), on="email")
    return ev[["customer_id", "event_name", "event_at", "message_id"]], people.drop(columns="email")


def simulate(engagement: pd.DataFrame, people: pd.DataFrame, start: pd.Timestamp, *, rounds: int = 8,
             seed: int = 7, fixed_hour: int = 10, params: BestTimeParams | None = None) -> dict:
    """Open rates of the policies over `rounds` weekly campaigns starting the day after `start` (UTC)."""
    params = params or BestTimeParams()
    people = people[people.on_list].reset_index(drop=True)
    tz = timezones(people)
    bandit, n_events = fit_bandit(engagement, people, seed=seed, params=params)
    counts = engagement_counts(engagement, people, tz)
    peak = int(np.argmax(counts.sum(axis=0)))  # the audience's busiest local hour
    rng = np.random.default_rng([seed, 99])
    pref, p_open, churn = people.preferred_hour.to_numpy(), people.p_open.to_numpy(), people.churn_ts.to_numpy()
    rows = np.arange(len(people))
    opens = {"fixed": 0, "fixed_peak": 0, "best_time": 0, "oracle": 0}
    explored, far = [], []
    for r in range(rounds):
        day = (pd.Timestamp(start).normalize() + timedelta(days=1 + 7 * r)).tz_localize(None) + timedelta(hours=6)
        u = rng.random(len(people))  # common random numbers: one draw per person and campaign
        choice, best = bandit.choose(), bandit.best()
        explored.append(float(bandit.exploring(choice).mean()))
        gap = np.abs(choice - best) % 24
        far.append(float((np.minimum(gap, 24 - gap) > 1).mean()))  # tries more than an hour from the best
        for name, hours in (("fixed", np.full(len(people), fixed_hour)), ("fixed_peak", np.full(len(people), peak)),
                            ("best_time", choice), ("oracle", (pref - 1) % 24)):
            at = next_send_times(pd.Series([day] * len(people)), tz, pd.Series(hours))
            ts = at.astype("int64").to_numpy() // 1_000_000_000
            p = np.minimum(p_open * np.where(ts < churn, 1.0, 0.35) * open_multiplier(ts, tz.to_numpy(), pref), 0.99)
            opened = u < p
            opens[name] += int(opened.sum())
            if name == "best_time":
                bandit.update(rows, hours, opened)
    sends = len(people) * rounds
    # The oracle (the true hour, 1 h before the person's check) is headroom, not a policy: no sender knows it.
    rates = {k: round(v / sends, 4) for k, v in opens.items()}
    best_now = bandit.best()
    return {"people": len(people), "rounds": rounds, "sends_per_policy": sends, "sends_total": sends * (len(opens) - 1),
            "open_rate": rates, "fixed_hour": fixed_hour, "peak_hour": peak,
            "lift_vs_fixed": round(rates["best_time"] / rates["fixed"] - 1, 4),
            "lift_vs_fixed_peak": round(rates["best_time"] / rates["fixed_peak"] - 1, 4),
            "explore_share_first_round": round(explored[0], 4), "explore_share_last_round": round(explored[-1], 4),
            "explore_over_1h_share_last_round": round(far[-1], 4),
            # The world's best send hour is just before the person's check: their preferred hour or the one before.
            "best_hour_found": round(float(np.isin((pref - best_now) % 24, [0, 1]).mean()), 4),
            "people_with_own_history": int((n_events >= params.min_events).sum()), "min_events": params.min_events}


def bench_best_time(people: int = 20_000, seed: int = 42, rounds: int = 8, workdir: Path | None = None) -> dict:
    """Generate a world (day 1: a year of history), then simulate best-time against fixed-time sends."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="beacon-best-time-") as tmp:
        out = Path(workdir or tmp)
        summary = generate(GenConfig(people=people, seed=seed), out)
        engagement, truth = load_world(Path(summary.landing), Path(summary.truth))
        gen_s = time.perf_counter() - t0
        d = simulate(engagement, truth, pd.Timestamp(summary.date), rounds=rounds, seed=seed)
    return {"world_people": people, "seed": seed, **d, "history_events": len(engagement),
            "generate_seconds": round(gen_s, 2), "seconds": round(time.perf_counter() - t0, 2)}
