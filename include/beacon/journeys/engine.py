"""The journeys engine: state in the warehouse, advanced in bulk with set-based SQL.

The public face of `beacon.journeys`' runtime; the work is split by responsibility:

- `store`: the tables (the append-only log `journeys.transitions`, `journeys.current`, compacted
  `journeys.finished`, definitions per version, runs, actions, the `journeys.events` view), occupancy, compaction
  and the people table every run reads (`marts.customer_profile`).
- `run`: one advance at warehouse clock T (exits and goals, entries, hops) and its dry-run mode; `entry`: who
  enters; `sql`: the SQL text they share.
- `nodes`: one module per node type (model, successors, references, compiled step) in a registry.
- `delivery`: sends and actions through the activation sync engine (governance + idempotent diff), so a re-run
  after a crash sends nobody twice; `best_time`: best-time deferral of sends.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from beacon.journeys import entry
from beacon.journeys.errors import JourneyRuntimeError, JourneysBusy
from beacon.journeys.model import Journey
from beacon.journeys.nodes import handler
from beacon.journeys.run import Env, Run, RunResult
from beacon.journeys.sql import CARRY, TZ, WAITING, next_slot_sql
from beacon.journeys.store import (
    LOG_COLUMNS,
    compact,
    definitions,
    ensure_events,
    ensure_tables,
    occupancy,
    register_definition,
)
from beacon.warehouse import table_exists

log = logging.getLogger(__name__)

__all__ = ["CARRY", "CORE_RELATIONS", "LOG_COLUMNS", "TZ", "WAITING", "DryRun", "Env",
           "JourneyRuntimeError", "JourneysBusy", "RunResult", "advance", "compact", "definitions", "dry_run",
           "ensure_events", "ensure_tables", "missing_relations", "next_slot_sql", "occupancy", "register_definition",
           "run_lock"]

_Run = Run  # the run class under its former name (a crash test interposes on its log writer)

# The mart every journey run reads (the people); the segments it reads are added per journey.
CORE_RELATIONS = ("marts.customer_profile",)


def __getattr__(name: str):
    if name == "STATE_TZ":  # US state -> IANA time zone: the dbt seed state_time_zones (one definition)
        from beacon.personalize.best_time import state_time_zones

        return state_time_zones()
    raise AttributeError(name)


@contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """One advance at a time: an exclusive flock, released by the OS even when the process is killed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JourneysBusy(f"another journeys advance holds {path}; runs never overlap") from None
        yield
    finally:
        os.close(fd)


def missing_relations(con: duckdb.DuckDBPyConnection, journey: Journey, env: Env) -> list[str]:
    """The tables this journey reads that the warehouse does not have yet (sorted)."""
    from beacon.journeys.validate import segments_used

    wanted = set(CORE_RELATIONS) | {env.relation(s) for s in segments_used(journey)}
    return sorted(w for w in wanted if not table_exists(con, *w.split(".", 1)))


def _finish(con: duckdb.DuckDBPyConnection, res: RunResult, status: str) -> RunResult:
    con.execute("UPDATE journeys.runs SET finished_at = ?, status = ?, summary = ?::JSON WHERE run_id = ?",
                [datetime.now(), status, json.dumps(res.to_dict()), res.run_id])
    return res


def advance(con: duckdb.DuckDBPyConnection, journey: Journey, clock, env: Env, run_id: str | None = None,
            lock_path: Path | None = None, compact_after: timedelta | None = timedelta(days=7)) -> RunResult:
    """Advance one journey to warehouse clock `clock` (never the wall clock): exits, entries, hops, compaction."""
    from beacon.journeys.validate import JourneyError, check_versions

    if isinstance(clock, str):
        clock = datetime.fromisoformat(clock)
    run_id = run_id or f"{journey.name}@{clock.isoformat()}"
    with run_lock(lock_path or _default_lock()):
        ensure_tables(con)
        problems = check_versions(f"journeys/{journey.name}.yml", journey, occupancy(con, journey.name))
        if problems:
            raise JourneyError(problems)
        register_definition(con, journey, clock)
        started = datetime.now()  # observability only; every decision uses `clock`
        con.execute("DELETE FROM journeys.runs WHERE run_id = ?", [run_id])
        con.execute("INSERT INTO journeys.runs VALUES (?, ?, ?, ?, NULL, 'running', NULL)",
                    [run_id, journey.name, clock, started])
        r = Run(con, journey, definitions(con, journey), clock, run_id, env)
        missing = missing_relations(con, journey, env)
        if missing:
            # A new deployment: the timetable runs journeys before the first warehouse and ML runs build what
            # they read. Decide nothing (no exits on an empty segment) and say what is awaited.
            r.res.waiting_for = missing
            log.warning("journey %s waits: %s not built yet (the warehouse and ML DAGs build them); nothing decided",
                        journey.name, ", ".join(missing))
            return _finish(con, r.res, "waiting")
        if journey.enabled:
            r.run()
        if compact_after is not None:
            compact(con, journey.name, clock - compact_after, run_id)
        return _finish(con, r.res, "succeeded")


def _default_lock() -> Path:
    from beacon.config import settings

    return settings().data_dir / "journeys.lock"


@dataclass
class DryRun:
    """What an advance would do now, with nothing written: who would enter (count and a sample), and where the
    entrants would go at each decision node (branch rules, split arms) if they were there now."""

    journey: str
    version: int
    clock: str
    would_enter: int = 0
    sample: list[str] = field(default_factory=list)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)  # node id -> label -> people


def dry_run(con: duckdb.DuckDBPyConnection, journey: Journey, clock, env: Env, sample: int = 10) -> DryRun:
    """The entries of an advance at `clock` and the decision nodes' outcomes for them; writes nothing (the run
    works on temp tables only and takes no step that acts)."""
    ensure_tables(con)
    r = Run(con, journey, {journey.version: journey}, clock, "dry-run", env, dry_run=True)
    r.setup()
    out = DryRun(journey=journey.name, version=journey.version, clock=str(clock), would_enter=entry.enter(r))
    out.sample = [x[0] for x in con.execute(
        "SELECT customer_id FROM _entry_rows ORDER BY customer_id LIMIT ?", [int(sample)]).fetchall()]
    for node in journey.nodes:
        con.execute("CREATE OR REPLACE TEMP TABLE _at AS SELECT * FROM _entry_rows")
        label = handler(node).outcome_label(r, node)
        if label:
            expr, src = label
            out.outcomes[node.id] = dict(con.execute(
                f"SELECT {expr} AS k, count(*) FROM {src} GROUP BY 1 ORDER BY 1").fetchall())
    return out
