"""Sends and actions of a journey through the activation sync engine: one audience per (journey, node), governed
(consent, suppression, frequency caps, priority) and exactly once (idempotency keys, acknowledged state).

The sync engine's public result (`SyncSummary.outcomes`) says per person whether the message is sent (now or
before a crash), skipped by governance (with the reason) or failed (retried next run)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from beacon.audiences import Audience
from beacon.journeys.sql import lit

SENT = "_sent"  # customer_id, entry_no
SKIPPED = "_skipped"  # customer_id, entry_no, reason


@dataclass(frozen=True)
class Delivered:
    """Temp tables of one delivery: who was sent, who was skipped (with the reason); the rest failed."""

    sent: str = SENT
    skipped: str = SKIPPED


def _nobody(run, who: str, why: str) -> Delivered:
    """Everyone in `who` failed (retried next run)."""
    con = run.con
    run.res.errors.append(why)
    con.execute(f"INSERT INTO _failed SELECT customer_id, entry_no FROM {who}")
    run.res.failed += con.execute(f"SELECT count(*) FROM {who}").fetchall()[0][0]
    con.execute(f"CREATE OR REPLACE TEMP TABLE {SENT} (customer_id VARCHAR, entry_no INTEGER)")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {SKIPPED} (customer_id VARCHAR, entry_no INTEGER, reason VARCHAR)")
    return Delivered()


def _audience(run, node_id: str, channel: str, rel: str) -> Audience:
    name = f"journey__{run.j.name}__{node_id}"
    return Audience(name=name, description=f"journey {run.j.name}, node {node_id}", owner=run.j.owner,
                    channels=(channel,), priority=run.j.priority, holdout_pct=0.0, refresh="hourly",
                    relation=rel, model=name, path=f"journeys/{run.j.name}.yml")


def _bind_templates(run, dest, who: str, extra_cols: str):
    """A destination that renders journey templates gets the people's contexts; returns its binder (or None)."""
    bind = getattr(dest, "use_journey_messages", None)
    if bind is not None and "journey_template" in extra_cols:  # render the node's own template (personalized)
        from beacon.config import settings
        from beacon.journeys.messages import JourneyMessages

        tdir = run.env.templates_dir or settings().home / "journeys" / "templates"
        bind(JourneyMessages.load(run.con, who, tdir, run.env.audiences, run.env.relations))
    return bind


def _sync(run, audience: Audience, dest, node_id: str) -> pd.DataFrame | None:
    """Run the sync; the per-person outcomes, or None when it failed before any outcome."""
    from beacon.activation.governance import default_policy
    from beacon.activation.sync import run_sync

    env = run.env
    policy = env.policy(dest) if env.policy else default_policy(dest.channel)
    others = [a for a in env.audiences if a.name != audience.name]
    try:
        s = run_sync(run.con, audience, [audience, *others], dest, run.T, mode="upsert",
                     run_id=f"{run.run_id}:{node_id}", policy=policy, outcomes=True, raise_errors=False)
    except Exception as exc:  # noqa: BLE001 - e.g. a mapped field missing: nobody sent, retried next run
        run.res.errors.append(f"node {node_id}: {type(exc).__name__}: {exc}")
        return None
    if s.status == "failed":
        run.res.errors.append(f"node {node_id}: {s.message}")
    return s.outcomes


def _outcome_table(con, rel: str, outcomes: pd.DataFrame | None) -> None:
    """Temp table `_outcome`: each person of `rel` with the sync's outcome and reason (NULL: failed)."""
    if outcomes is None:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _outcome AS SELECT customer_id, journey_entry_no AS entry_no,
            NULL::VARCHAR AS outcome, NULL::VARCHAR AS reason FROM {rel}""")
        return
    con.register("_outcomes_df", outcomes)
    try:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _outcome AS SELECT w.customer_id, w.journey_entry_no AS entry_no,
                o.outcome::VARCHAR AS outcome, o.reason::VARCHAR AS reason FROM {rel} w
            LEFT JOIN _outcomes_df o ON o.customer_id = w.customer_id::VARCHAR""")
    finally:
        con.unregister("_outcomes_df")


def deliver(run, node_id: str, channel: str, who: str, extra_cols: str = "") -> Delivered:
    """Sync the people in temp table `who` (customer_id, entry_no, arm, ...) to the channel's destination."""
    con = run.con
    try:
        dest = run.env.destination(channel)
    except LookupError as exc:  # e.g. no connection for the channel: everyone stays, retried next run
        return _nobody(run, who, f"node {node_id}: {exc}")
    con.execute("CREATE SCHEMA IF NOT EXISTS journeys_out")
    rel = f"journeys_out.journey__{run.j.name}__{node_id}"
    # The payload carries the entry number: a new entry is a new change (a new idempotency key), the same
    # entry after a crash is `unchanged` (already acknowledged), so it is never sent twice.
    con.execute(f"""CREATE OR REPLACE TABLE {rel} AS SELECT customer_id, entry_no AS journey_entry_no,
        {lit(run.j.name)} AS journey, {lit(node_id)} AS journey_node, arm AS journey_arm {extra_cols}
        FROM {who}""")
    bind = _bind_templates(run, dest, who, extra_cols)
    try:
        outcomes = _sync(run, _audience(run, node_id, channel, rel), dest, node_id)
    finally:
        if bind is not None:
            bind(None)
        close = getattr(dest, "close", None)
        if close:
            close()
    # Per-person failures (e.g. a template field one person lacks) are in activation.sync_log; report each kind.
    for err, k in con.execute("""SELECT error, count(*) FROM activation.sync_log WHERE run_id = $r
            AND status = 'failed' AND error IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5""",
                              {"r": f"{run.run_id}:{node_id}"}).fetchall():
        run.res.errors.append(f"node {node_id}: {k} failed: {err}")
    _outcome_table(con, rel, outcomes)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {SENT} AS SELECT customer_id, entry_no FROM _outcome "
                "WHERE outcome = 'sent'")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {SKIPPED} AS SELECT customer_id, entry_no, reason FROM _outcome "
                "WHERE outcome = 'skipped'")
    con.execute("""INSERT INTO _failed SELECT customer_id, entry_no FROM _outcome
        WHERE outcome IS NULL OR outcome NOT IN ('sent', 'skipped')""")
    run.res.failed += con.execute("""SELECT count(*) FROM _outcome
        WHERE outcome IS NULL OR outcome NOT IN ('sent', 'skipped')""").fetchall()[0][0]
    return Delivered()
