"""The ML DAG's training schedule (ml/schedule.py): train when there is no champion, when the champion is
`every_days` old by the warehouse clock, or on a drift alert; otherwise score with the published champion.
Every decision is recorded in ml.training_runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.ml_world import END, build_world

from ml import registry, schedule
from ml.score import score_all
from ml.train import SPECS, train_scheduled

MODELS = tuple(SPECS)


def _move_clock(con, to) -> None:
    con.execute("CREATE OR REPLACE TABLE marts.warehouse_as_of AS SELECT ?::TIMESTAMP AS as_of_at", [to])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    con = build_world(n=900, seed=11)
    reg = tmp_path_factory.mktemp("registry")
    first = train_scheduled(con, reg, every_days=7)
    return con, reg, first


def test_the_first_run_trains_every_model_and_records_why(world):
    con, reg, first = world
    assert set(first["models"]) == set(MODELS) and first["failed"] == {}
    assert all(v["due"] and v["reason"] == "no champion yet" for v in first["schedule"].values())
    rows = con.execute("SELECT model, trained, version FROM ml.training_runs ORDER BY model").fetchall()
    assert rows == sorted((m, True, first["models"][m]["version"]) for m in MODELS)


def test_a_day_later_nothing_trains_and_scoring_uses_the_published_champions(world):
    con, reg, first = world
    _move_clock(con, END + timedelta(days=1))
    before = {m: registry.versions(reg, m) for m in MODELS}
    later = train_scheduled(con, reg, every_days=7)
    assert later["models"] == {} and not any(v["due"] for v in later["schedule"].values())
    assert all("next training due at 2026-07-07" in v["reason"] for v in later["schedule"].values()), later
    assert {m: registry.versions(reg, m) for m in MODELS} == before  # no new version registered
    assert later["report"].endswith("latest.html")
    scored = score_all(con, reg)
    assert {m: v["version"] for m, v in scored["models"].items()} == {m: first["models"][m]["version"]
                                                                      for m in MODELS}
    days = schedule.training_days(con)
    assert days[-1] == {"day": "2026-07-01", "trained": [], "not_trained": sorted(MODELS)}
    assert days[0]["day"] == "2026-06-30" and days[0]["trained"] == sorted(MODELS)


def test_a_score_drift_alert_retrains_that_model_only(world):
    con, reg, _ = world
    _move_clock(con, END + timedelta(days=1))
    score_all(con, reg)  # ml.drift exists, with this run's states (no alert: the same data)
    churn = registry.champion_version(reg, "churn")
    drift = "INSERT INTO ml.drift VALUES (?, 'churn', ?, ?, ?, ?, ?)"
    # A feature alone drifting does not retrain: the scores did not move.
    con.execute(drift, [END + timedelta(days=1, hours=12), churn, "feature", "days_since_last_order", 0.4, "alert"])
    assert not any(d.due for d in schedule.decide(con, reg, MODELS, END + timedelta(days=2), every_days=7))
    con.execute(drift, [END + timedelta(days=1, hours=12), churn, "score", "score", 0.3, "alert"])
    decisions = {d.model: d for d in schedule.decide(con, reg, MODELS, END + timedelta(days=2), every_days=7)}
    assert decisions["churn"].due and decisions["churn"].reason.startswith("drift alert in the scoring run of 2026-07-02")
    assert not decisions["lead_score"].due and not decisions["ltv"].due
    # Only the latest scoring run counts: a later run without an alert (the data settled) is not a reason.
    con.execute(drift, [END + timedelta(days=1, hours=18), churn, "score", "score", 0.01, "ok"])
    assert not any(d.due for d in schedule.decide(con, reg, MODELS, END + timedelta(days=2), every_days=7))


def test_the_champion_retrains_when_it_is_every_days_old(world):
    con, reg, _ = world
    decisions = schedule.decide(con, reg, MODELS, END + timedelta(days=6, hours=23), every_days=7)
    assert not any(d.due for d in decisions)
    decisions = schedule.decide(con, reg, MODELS, END + timedelta(days=7), every_days=7)
    assert all(d.due and "7.0 days ago (every 7)" in d.reason for d in decisions), decisions
    assert all(d.due for d in schedule.decide(con, reg, MODELS, END, every_days=7, force=True))
    with pytest.raises(ValueError, match="every_days must be positive"):
        schedule.decide(con, reg, MODELS, END, every_days=0)
