"""Best send hours: the bandit learns true hours and keeps exploring; the generated world's history gives
people their hours; best-time beats fixed-time sends in the simulation; UTC send times honour zones and DST."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from beacon.bench.best_time import simulate
from beacon.personalize.best_time import (
    BestTimeParams,
    HourBandit,
    best_send_hours,
    fit_bandit,
    next_send_at,
    next_send_times,
    timezones,
)


def test_bandit_converges_to_the_true_hour_and_keeps_exploring():
    rng = np.random.default_rng(1)
    n, rounds = 300, 400
    true = rng.integers(0, 24, n)
    dist = np.minimum((np.arange(24)[None, :] - true[:, None]) % 24, (true[:, None] - np.arange(24)[None, :]) % 24)
    p = 0.1 + 0.4 * np.exp(-dist / 1.5)  # the true open chance per hour: best at `true`, neighbours close behind
    bandit = HourBandit.from_prior(np.full((n, 24), 0.2), strength=2.0, seed=5)
    rows = np.arange(n)
    late_explore = []
    for r in range(rounds):
        h = bandit.choose()
        if r >= rounds - 50:
            late_explore.append((h != true).mean())
        bandit.update(rows, h, rng.random(n) < p[rows, h])
    assert (bandit.best() == true).mean() >= 0.9
    # Still exploring at the end (a Thompson draw sometimes tries another hour), but mostly exploiting.
    assert 0.01 < np.mean(late_explore) < 0.35
    draws = np.stack([bandit.choose() for _ in range(50)])
    assert (draws != bandit.best()[None, :]).any(axis=0).mean() > 0.2


def test_bandit_rejects_badly_shaped_posteriors():
    with pytest.raises(ValueError, match=r"\(people, 24\)"):
        HourBandit(np.ones((3, 12)), np.ones((3, 12)))


def test_history_of_the_generated_world_points_at_true_hours(email_history):
    engagement, people = email_history
    bandit, n = fit_bandit(engagement, people, seed=3)
    best, pref = bandit.best(), people.preferred_hour.to_numpy()
    own = n >= 1  # people with some own engagement (most have one or two opens in a year)
    assert own.sum() > 1000
    # The right send hour is just before the person's check: their preferred hour or the one before (2 of 24).
    near = np.isin((pref - best) % 24, [0, 1, 2])
    assert near[own].mean() > 0.6 and near[own].mean() > near[~own].mean() + 0.2  # chance: 3 / 24
    out = best_send_hours(engagement, people, seed=3)
    assert list(out.columns) == ["customer_id", "local_hour", "source"]
    assert len(out) == len(people) and out.local_hour.between(0, 23).all()
    assert set(out.source) == {"person", "audience", "explore"}
    pd.testing.assert_frame_equal(out, best_send_hours(engagement, people, seed=3))  # seeded: reproducible
    assert not out.equals(best_send_hours(engagement, people, seed=4))  # the draws do vary: exploration


def test_best_time_sends_beat_fixed_time_in_the_simulation(email_history):
    engagement, people = email_history
    d = simulate(engagement, people, pd.Timestamp("2026-06-30"), rounds=4, seed=11)
    rates = d["open_rate"]
    assert d["sends_per_policy"] == d["people"] * 4 and d["people"] > 4000
    assert rates["best_time"] > rates["fixed"] * 1.04 and rates["best_time"] > rates["fixed_peak"] * 1.02, d
    assert rates["best_time"] < rates["oracle"]  # the truth is an upper bound no sender reaches


def test_next_send_at_in_local_time_across_dst():
    assert next_send_at(datetime(2026, 7, 1, 12, 30), "America/Chicago", 9) == datetime.fromisoformat("2026-07-01T14:00+00:00")
    assert next_send_at(datetime(2026, 7, 1, 14, 0), "America/Chicago", 9) == datetime.fromisoformat("2026-07-01T14:00+00:00")
    assert next_send_at(datetime(2026, 7, 1, 14, 1), "America/Chicago", 9) == datetime.fromisoformat("2026-07-02T14:00+00:00")
    assert next_send_at(datetime(2026, 1, 5, 0, 0), "America/Chicago", 9) == datetime.fromisoformat("2026-01-05T15:00+00:00")
    # 02:00 does not exist on 8 March 2026 in New York: the send moves to 03:00 EDT.
    assert next_send_at(datetime(2026, 3, 8, 5, 0), "America/New_York", 2) == datetime.fromisoformat("2026-03-08T07:00+00:00")
    # 01:00 happens twice on 1 November 2026: the first (EDT) one.
    assert next_send_at(datetime(2026, 11, 1, 4, 0), "America/New_York", 1) == datetime.fromisoformat("2026-11-01T05:00+00:00")
    with pytest.raises(ValueError, match="0..23"):
        next_send_at(datetime(2026, 1, 1), "UTC", 24)
    many = next_send_times(pd.Series([pd.Timestamp("2026-07-01 12:30")] * 2), pd.Series(["America/Chicago", "Asia/Tokyo"]),
                           pd.Series([9, 9]))
    assert [t.isoformat() for t in many] == ["2026-07-01T14:00:00+00:00", "2026-07-02T00:00:00+00:00"]


def test_from_the_warehouse_window_counts_back_from_its_clock():
    from beacon.personalize.best_time import load_engagement
    from tests.support import activation_world as aw

    con = aw.warehouse(people=3)  # clock 2026-06-30 12:00; everyone in IL (America/Chicago)
    for at in ("2026-06-01 14:10", "2026-06-02 14:40", "2026-06-03 14:05", "2025-05-01 03:00", "2026-07-01 03:00"):
        aw.email_event(con, "c1", "open", at=at)
    engagement, people = load_engagement(con, days=365)
    assert len(engagement) == 3 and engagement.message_id.isna().all()  # the old one and the future one left out
    out = best_send_hours(engagement, people, seed=1, params=BestTimeParams(prior_sends=1e6)).set_index("customer_id")
    # Opens at 09:xx Chicago time: the best send hour is 8 or 9 local; with little history the others follow the audience.
    assert out.loc["c1", "local_hour"] in (8, 9) and out.loc["c1", "source"] == "person"
    assert set(out.loc[["c0", "c2"], "source"]) == {"audience"} and set(out.loc[["c0", "c2"], "local_hour"]) <= {8, 9}


def test_time_zones_from_tz_then_state_and_bad_zone_named():
    people = pd.DataFrame({"customer_id": ["a", "b", "c"], "tz": ["Europe/Berlin", None, None], "state": ["TX", "ca", None]})
    assert timezones(people).tolist() == ["Europe/Berlin", "America/Los_Angeles", "America/New_York"]
    with pytest.raises(ValueError, match=r"people row 1: unknown time zone 'Mars/Base'"):
        timezones(pd.DataFrame({"customer_id": ["a", "b"], "tz": ["UTC", "Mars/Base"]}))
    with pytest.raises(ValueError, match="missing columns"):
        best_send_hours(pd.DataFrame({"customer_id": []}), people, seed=1)
