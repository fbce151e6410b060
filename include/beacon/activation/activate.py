"""Entry points the DAG and the CLI share: which (audience, destination) pairs exist, the quality gate, one sync."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import duckdb

from beacon.activation.destinations import registry
from beacon.activation.governance import default_policy, ensure_tables, shared_email_events
from beacon.activation.sync import SyncSummary, run_sync
from beacon.audiences import discover, find_audience

log = logging.getLogger("beacon.activation")


def delivery_pairs(manifest_path: Path) -> list[dict]:
    """Every (audience, destination) pair from the audiences' `channels`, highest priority first."""
    return [{"audience": a.name, "destination": ch} for a in discover(manifest_path) for ch in a.channels]


def delivery_plan(manifest_path: Path, configured=None) -> tuple[list[dict], list[dict]]:
    """The activation run's work, one entry per configured destination with its audiences (highest priority
    first); and the pairs left out, each with why (a channel without a connection).

    One task per destination, not per pair: under the real scheduler every task is a process of its own, and
    a destination is the unit that fails together (its server is down) and is retried together."""
    configured = configured or registry.is_configured
    plan: dict[str, list[str]] = {}
    skipped: list[dict] = []
    ok: dict[str, bool] = {}
    for p in delivery_pairs(manifest_path):
        d = p["destination"]
        if d not in ok:
            ok[d] = configured(d)
        if ok[d]:
            plan.setdefault(d, []).append(p["audience"])
        else:
            skipped.append({**p, "reason": f"no Airflow connection beacon_{d} (set AIRFLOW_CONN_BEACON_{d.upper()} "
                                           f"or add it in the Airflow UI)"})
    return [{"destination": d, "audiences": a} for d, a in plan.items()], skipped


def activate_destination(con: duckdb.DuckDBPyConnection, manifest_path: Path, destination: str, audiences: list[str],
                         exports_url: str, as_of, run_id: str, on_done=None) -> tuple[list[SyncSummary], dict[str, str]]:
    """Sync each audience to `destination`, in the given (priority) order. One audience's error does not stop
    the others: it is returned with its message (the caller fails the task, and the retry re-runs only what
    changed: the sync engine never delivers a row twice). `on_done(summary)` after each sync."""
    done: list[SyncSummary] = []
    errors: dict[str, str] = {}
    try:
        topics = [a.topic for a in discover(manifest_path) if a.name in set(audiences)]
    except Exception:  # noqa: BLE001 - nothing shared: each audience's own sync reports what is wrong, as before
        topics = []
    with shared_email_events(con, as_of, topics):  # one e-mail aggregate per topic for all these audiences
        for audience in audiences:
            try:
                summary = activate(con, manifest_path, audience, destination, exports_url, as_of,
                                   run_id=f"{run_id}:{audience}:{destination}")
            except registry.NotConfigured:
                raise  # the whole destination: nothing to do for any audience
            except Exception as exc:  # noqa: BLE001 - any failure of one sync: report it, deliver the others
                log.exception("%s -> %s failed", audience, destination)
                errors[audience] = f"{type(exc).__name__}: {exc}"
                continue
            log.log(logging.WARNING if summary.failed else logging.INFO,
                    "%s -> %s: %s delivered (%s adds, %s updates, %s removes), %s failed %s", audience, destination,
                    summary.delivered, summary.adds, summary.updates, summary.removes, summary.failed, summary.message)
            done.append(summary)
            if on_done:
                on_done(summary)
    return done, errors


def quality_gate(con: duckdb.DuckDBPyConnection, run_id: str, as_of) -> dict:
    """Read the data-quality circuit breaker; when it is open, record a blocked run naming each failing expectation."""
    from beacon.quality.breaker import breaker_state

    state = breaker_state(con)
    if state.open:
        ensure_tables(con)
        message = "blocked by the data-quality circuit breaker: " + "; ".join(state.failures)
        now = datetime.now()
        con.execute("""INSERT INTO activation.sync_runs (run_id, audience, destination, as_of, started_at, finished_at,
                       status, message) VALUES (?, '*', '*', ?, ?, ?, 'blocked', ?)""", [run_id, as_of, now, now, message])
    return {"open": state.open, "failures": state.failures, "warnings": state.warnings}


def activate(con: duckdb.DuckDBPyConnection, manifest_path: Path, audience: str, destination: str, exports_url: str,
             as_of, dry_run: bool = False, mode: str | None = None, run_id: str | None = None) -> SyncSummary:
    """Sync one audience to one destination (or plan it, with `dry_run`)."""
    a, audiences = find_audience(manifest_path, audience)
    if destination not in a.channels:
        raise ValueError(f"audience {audience!r} is not delivered to {destination!r}; its channels: {list(a.channels)}")
    dest = registry.build(destination, exports_url)
    policy = replace(default_policy(dest.channel), **registry.policy_overrides(destination))
    try:
        return run_sync(con, a, audiences, dest, as_of, mode=mode, dry_run=dry_run, run_id=run_id, policy=policy)
    finally:
        close = getattr(dest, "close", None)
        if close:
            close()
