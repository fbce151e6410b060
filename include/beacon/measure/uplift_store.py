"""The uplift model between refits: refitted on a schedule, stored in the warehouse, scoring everyone every run.

Refitting the X-learner reads every exposure so far and computes the customer features at each exposure day, so a
daily refit costs more every day while the day's new data stays the same (issue 28: at 1M people the measurement
stage grew from 67 to 109 CPU s over days 2-7). As the ML DAG does for the scores (`ml.schedule`), the campaign
report refits the model only when it is due, and scores everyone with the stored model on the other days:

- there is no stored model yet (a new deployment, or too little randomized data the last time), or
- the stored model was fitted `every_days` or more before the warehouse clock (BEACON_RETRAIN_EVERY_DAYS, the
  ML models' setting), or after it (a warehouse restored to an earlier day), or
- it was fitted on another outcome window (BEACON_MEASUREMENT_WINDOW_DAYS or `--window` changed) or another
  feature source (the customer feature macro, or the exposures' covariates on a warehouse without the marts), or
- one of its features is not among today's scoring features (the feature macro changed), or
- the stored model cannot be read or cannot score (`beacon.measure.warehouse`), or
- the refit is forced.

Each fitted model is appended to `ml.uplift_models` (its training clock, window, feature source and the model as
`UpliftScorer` JSON: LightGBM's model text, no pickle); the latest row is the stored model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import duckdb
import pandas as pd

from beacon.measure.uplift import UpliftScorer
from beacon.warehouse import table_exists

TABLE = "ml.uplift_models"


@dataclass(frozen=True)
class StoredModel:
    """The latest fitted uplift model and what it was fitted on."""

    trained_at: pd.Timestamp
    window_days: float
    source: str  # 'customer_features' (the feature macro) or 'covariates' (the exposures' own columns)
    not_features: dict
    scorer: UpliftScorer


@dataclass(frozen=True)
class RefitDecision:
    """Whether this run refits the uplift model, and why (or why not)."""

    due: bool
    reason: str


def _naive(ts) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


def latest(con: duckdb.DuckDBPyConnection) -> StoredModel | None:
    """The stored model (the latest fitted), or None before the first fit."""
    if not table_exists(con, "ml", "uplift_models"):
        return None
    row = con.execute(f"""SELECT trained_at, window_days, source, not_features, model FROM {TABLE}
                          ORDER BY recorded_at DESC, trained_at DESC LIMIT 1""").fetchall()
    if not row:
        return None
    trained_at, window, source, not_features, model = row[0]
    return StoredModel(pd.Timestamp(trained_at), float(window), source, json.loads(not_features),
                       UpliftScorer.from_json(model))


def save(con: duckdb.DuckDBPyConnection, scorer: UpliftScorer, trained_at, window_days: float, source: str,
         not_features: dict) -> None:
    """Append a fitted model to ml.uplift_models (it becomes the stored model)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS ml")
    con.execute(f"""CREATE TABLE IF NOT EXISTS {TABLE} (trained_at TIMESTAMP, window_days DOUBLE, source VARCHAR,
                    learner VARCHAR, trained_rows BIGINT, not_features JSON, model JSON,
                    recorded_at TIMESTAMP DEFAULT current_timestamp)""")
    con.execute(f"""INSERT INTO {TABLE} (trained_at, window_days, source, learner, trained_rows, not_features, model)
                    VALUES (?, ?, ?, ?, ?, ?, ?)""",
                [_naive(trained_at).to_pydatetime(), float(window_days), source, scorer.learner, scorer.trained_rows,
                 json.dumps(not_features, default=str), scorer.to_json()])


def decide(stored: StoredModel | None, as_of, window_days: float, source: str, every_days: float,
           columns: Iterable[str] | None = None, force: bool = False) -> RefitDecision:
    """Whether the uplift model is refitted at warehouse clock `as_of` (the rules are the module's docstring).
    `columns`: the features available for scoring today, when known."""
    if every_days <= 0:
        raise ValueError(f"every_days must be positive, not {every_days}")
    if force:
        return RefitDecision(True, "forced")
    if stored is None:
        return RefitDecision(True, "no stored uplift model yet")
    clock, trained = _naive(as_of), _naive(stored.trained_at)
    if clock < trained:
        return RefitDecision(True, f"the stored model was fitted at {trained:%Y-%m-%d %H:%M}, after the warehouse "
                                   f"clock {clock:%Y-%m-%d %H:%M}")
    if clock - trained >= timedelta(days=every_days):
        return RefitDecision(True, f"the stored model was fitted at {trained:%Y-%m-%d %H:%M}, "
                                   f"{(clock - trained).total_seconds() / 86400:.1f} days ago (every {every_days:g})")
    if stored.window_days != float(window_days):
        return RefitDecision(True, f"the stored model counted outcomes within {stored.window_days:g} days, this run "
                                   f"{float(window_days):g}")
    if stored.source != source:
        return RefitDecision(True, f"the stored model's features came from {stored.source}, today's from {source}")
    missing = [] if columns is None else [c for c in stored.scorer.features if c not in set(columns)]
    if missing:
        return RefitDecision(True, f"the stored model's feature(s) {missing} are not among today's features")
    due = trained + timedelta(days=every_days)
    return RefitDecision(False, f"stored model fitted at {trained:%Y-%m-%d %H:%M}; next refit due at "
                                f"{due:%Y-%m-%d %H:%M}")
