"""When the ML DAG retrains: on a schedule (every N days of the warehouse clock) or on drift, not every day.

A day without training scores with the published champion (`ml.score.score_all` loads it from the registry),
so scores, segments and activation stay current while the models are not refitted on one more day of data.
A model is due when

- it has no champion yet (a new deployment, or the history was too short the last time), or
- its champion's training clock (`as_of` in its metadata) is `every_days` or more behind the warehouse clock, or
- the champion's scores drifted in its latest scoring run (`ml.drift`, the score's state `alert`: PSI >= 0.25
  against the previous scoring run), or
- training is forced (`train_scheduled(..., force=True)`; `ml.train.train_all` always trains).

Every decision of the DAG is recorded in `ml.training_runs` (clock, model, trained or not, reason), which the
demo summary and the pipeline benchmark read to say which days trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from beacon.warehouse import table_exists
from ml import registry

DEFAULT_EVERY_DAYS = 7.0  # BEACON_RETRAIN_EVERY_DAYS


@dataclass(frozen=True)
class Decision:
    """Whether one model trains on this run, and why (or why not)."""

    model: str
    due: bool
    reason: str


def _champion_clock(registry_dir: Path, model: str) -> datetime | None:
    version = registry.champion_version(registry_dir, model)
    if version is None:
        return None
    as_of = registry.metadata(registry_dir, model, version).get("as_of")
    return pd.Timestamp(as_of).to_pydatetime() if as_of else None


def _drift_alert(con: duckdb.DuckDBPyConnection, model: str, version: str) -> str | None:
    """The time of the champion's latest scoring run if its scores drifted to an alert in that run, else None.

    The score, not a single feature: a feature can move (the demo's own emails move the email features of
    everyone they reach to an alert) while the scores the model gives stay where they were. Feature drift is
    still recorded in ml.drift and logged by the DAG."""
    if not table_exists(con, "ml", "drift"):
        return None
    row = con.execute("""SELECT as_of, bool_or(kind = 'score' AND state = 'alert') FROM ml.drift
                         WHERE model = ? AND version = ?
                         GROUP BY as_of ORDER BY as_of DESC LIMIT 1""", [model, version]).fetchall()
    row = row[0] if row else None
    return str(row[0]) if row and row[1] else None


def decide(con: duckdb.DuckDBPyConnection, registry_dir: Path, models: tuple[str, ...], end: datetime,
           every_days: float = DEFAULT_EVERY_DAYS, force: bool = False) -> list[Decision]:
    """Which of `models` train at warehouse clock `end`, each with its reason (see the module's docstring)."""
    if every_days <= 0:
        raise ValueError(f"every_days must be positive, not {every_days}")
    out = []
    for m in models:
        trained = _champion_clock(registry_dir, m)
        version = registry.champion_version(registry_dir, m)
        if force:
            out.append(Decision(m, True, "forced"))
        elif trained is None:
            out.append(Decision(m, True, "no champion yet"))
        elif end - trained >= timedelta(days=every_days):
            out.append(Decision(m, True, f"champion trained at {trained:%Y-%m-%d %H:%M}, "
                                         f"{(end - trained).total_seconds() / 86400:.1f} days ago (every {every_days:g})"))
        elif (alert := _drift_alert(con, m, version)) is not None:
            out.append(Decision(m, True, f"drift alert in the scoring run of {alert[:16]}"))
        else:
            due = trained + timedelta(days=every_days)
            out.append(Decision(m, False, f"champion {version} trained at {trained:%Y-%m-%d %H:%M}; next training "
                                          f"due at {due:%Y-%m-%d %H:%M} or on a drift alert"))
    return out


def record(con: duckdb.DuckDBPyConnection, end: datetime, decisions: list[Decision], trained: dict[str, str],
           failed: dict[str, str]) -> None:
    """Append this run's decisions to ml.training_runs (one row per model; `version` is what trained, if any)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS ml")
    con.execute("""CREATE TABLE IF NOT EXISTS ml.training_runs (as_of TIMESTAMP, model VARCHAR, trained BOOLEAN,
                   version VARCHAR, reason VARCHAR, recorded_at TIMESTAMP DEFAULT current_timestamp)""")
    rows = [[end, d.model, d.model in trained, trained.get(d.model),
             f"{d.reason}; failed: {failed[d.model]}" if d.model in failed else d.reason] for d in decisions]
    if rows:
        con.executemany("INSERT INTO ml.training_runs (as_of, model, trained, version, reason) VALUES (?, ?, ?, ?, ?)",
                        rows)


def training_days(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Per warehouse-clock day, the models trained and those that were not (they scored with their champion, if
they have one), from ml.training_runs."""
    if not table_exists(con, "ml", "training_runs"):
        return []
    rows = con.execute("""SELECT strftime(as_of, '%Y-%m-%d') AS day,
                              list(DISTINCT model ORDER BY model) FILTER (WHERE trained) AS trained,
                              list(DISTINCT model ORDER BY model) FILTER (WHERE NOT trained) AS not_trained
                          FROM ml.training_runs GROUP BY 1 ORDER BY 1""").fetchall()
    return [{"day": d, "trained": list(t or []), "not_trained": list(r or [])} for d, t, r in rows]
