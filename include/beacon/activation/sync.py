"""The sync engine: governed members -> diff against the last delivered state -> destination -> state and log.

State (`activation.sync_state`) holds, per audience, destination and member, the hash and payload of
the mapped fields last acknowledged by the destination, and a version that grows with every change.
A change is identified by an idempotency key derived from (audience, destination, member, version):
a retry or a re-run after a crash sends the same change under the same key, and state is committed
batch by batch only after the destination acknowledged it, so nothing is lost and nothing is applied twice.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime

import duckdb
import pandas as pd

from beacon.activation.destinations import Destination, RowResult, send_all
from beacon.activation.governance import (
    REASON_ORDER,
    ChannelPolicy,
    default_policy,
    ensure_tables,
    governed_query,
)
from beacon.audiences import Audience
from beacon.privacy.catalog import cached_catalog, kinds_of
from beacon.warehouse import quote_ident, sql_literal, transaction

MODES = ("upsert", "mirror", "insert_only")
# Mapped by default when a destination names no fields: the segment's columns plus these.
DEFAULT_EXTRA_FIELDS = ("email", "first_name", "last_name", "lead_decile")
# The relations the governed rows (_gov) take columns from besides the segment (governance.governed_query).
GOV_RELATIONS = ("marts.dim_customers", "ml.scores")


@dataclass
class SyncSummary:
    """Counters of one sync run (also stored in activation.sync_runs)."""

    run_id: str
    audience: str
    destination: str
    channel: str
    mode: str
    as_of: str
    dry_run: bool = False
    status: str = "planned"
    message: str = ""
    source_rows: int = 0
    adds: int = 0
    updates: int = 0
    removes: int = 0
    unchanged: int = 0
    invalid: int = 0
    held_out: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    failed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    sample: list[dict] = field(default_factory=list)
    # Per member of the audience after this run, when asked for (`run_sync(..., outcomes=True)`; None for a dry
    # run): customer_id; outcome 'sent' (the destination holds this payload: acknowledged this run or before),
    # 'skipped' (governed out: `reason` is the suppression reason, 'invalid' or 'held_out') or 'failed' (desired
    # but not acknowledged: retried next run); reason.
    outcomes: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def changes(self) -> int:
        return self.adds + self.updates + self.removes

    @property
    def desired(self) -> int:
        """Members that passed governance (what the destination should hold)."""
        return self.source_rows - self.invalid - self.held_out - sum(self.suppressed.values())

    def to_dict(self) -> dict:
        d = asdict(replace(self, outcomes=None))
        d.pop("outcomes")
        return d


def mapped_fields(con: duckdb.DuckDBPyConnection, dest: Destination, relation: str) -> list[str]:
    """The fields whose values are sent (and hashed): the destination's own list, else the segment's columns plus
    the contact fields and lead decile."""
    cols = [r[0] for r in con.execute("DESCRIBE _gov").fetchall()]
    if dest.fields:
        missing = [f for f in dest.fields if f not in cols]
        if missing:
            raise ValueError(f"destination {dest.name}: mapped field(s) {missing} are not available; available: {cols}")
        return [f for f in dest.fields if f != "customer_id"]
    seg = [r[0] for r in con.execute(f"DESCRIBE {relation}").fetchall() if r[0] != "customer_id"]
    return seg + [c for c in DEFAULT_EXTRA_FIELDS if c in cols and c not in seg]


def plan(con: duckdb.DuckDBPyConnection, audience: Audience, audiences: list[Audience], dest: Destination, as_of,
         mode: str | None = None, policy: ChannelPolicy | None = None) -> tuple[SyncSummary, list[str]]:
    """Govern, hash and diff inside DuckDB; leaves temp tables `_gov` and `_changes` for `execute`."""
    mode = mode or dest.default_mode
    if mode not in MODES:
        raise ValueError(f"sync mode must be one of {MODES}, not {mode!r}")
    ensure_tables(con)
    t0 = time.perf_counter()
    sql, params = governed_query(con, audience, audiences, dest.channel, as_of, policy or default_policy(dest.channel),
                                 dest.required_any)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _gov AS {sql}", params)
    t1 = time.perf_counter()
    fields = mapped_fields(con, dest, audience.relation)
    struct = ", ".join(f"{quote_ident(f)} := {quote_ident(f)}" for f in fields)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _desired AS
        SELECT customer_id, payload, md5(payload) AS row_hash FROM (
            SELECT customer_id, to_json(struct_pack({struct}))::VARCHAR AS payload
            FROM _gov WHERE reason IS NULL AND NOT held_out)""")
    allowed = {"insert_only": "('add')", "upsert": "('add', 'update')", "mirror": "('add', 'update', 'remove')"}[mode]
    # insert_only: a member once inserted is never sent again (no updates, no removes, no re-adds).
    insert_only = "AND never_sent" if mode == "insert_only" else ""
    # The diff runs on narrow columns (key, hash, version); payloads are joined to the few changed rows after.
    con.execute("""CREATE OR REPLACE TEMP TABLE _diff AS
        WITH st AS (SELECT customer_id, row_hash, version, present FROM activation.sync_state
                    WHERE audience = $a AND destination = $d)
        SELECT coalesce(d.customer_id, st.customer_id) AS customer_id,
            CASE WHEN st.customer_id IS NULL OR NOT st.present THEN 'add'
                 WHEN d.customer_id IS NULL THEN 'remove'
                 WHEN d.row_hash <> st.row_hash THEN 'update' ELSE 'unchanged' END AS operation,
            coalesce(st.version, 0) + 1 AS version, st.customer_id IS NULL AS never_sent
        FROM (SELECT customer_id, row_hash FROM _desired) d FULL JOIN st ON st.customer_id = d.customer_id
        WHERE d.customer_id IS NOT NULL OR st.present""", {"a": audience.name, "d": dest.name})
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _changes AS
        SELECT x.customer_id, x.operation, x.version,
            CASE WHEN x.operation = 'remove' THEN st.payload ELSE d.payload END AS payload,
            CASE WHEN x.operation = 'remove' THEN st.row_hash ELSE d.row_hash END AS row_hash,
            substr(sha256($a || '|' || $d || '|' || x.customer_id || '|' || x.version::VARCHAR), 1, 32) AS idempotency_key
        FROM (SELECT * FROM _diff WHERE operation IN {allowed} {insert_only}) x
        LEFT JOIN _desired d ON d.customer_id = x.customer_id AND x.operation <> 'remove'
        LEFT JOIN activation.sync_state st ON x.operation = 'remove' AND st.audience = $a AND st.destination = $d
            AND st.customer_id = x.customer_id AND st.version = x.version - 1
        ORDER BY x.customer_id""", {"a": audience.name, "d": dest.name})
    t2 = time.perf_counter()
    counts = con.execute("""SELECT count(*), count(*) FILTER (WHERE reason = 'invalid'),
        count(*) FILTER (WHERE held_out) FROM _gov""").fetchall()[0]
    reasons = dict(con.execute("SELECT reason, count(*) FROM _gov WHERE reason IS NOT NULL AND reason <> 'invalid' "
                               "GROUP BY 1").fetchall())
    ops = dict(con.execute("SELECT operation, count(*) FROM _changes GROUP BY 1").fetchall())
    unchanged = con.execute("SELECT count(*) FROM _diff WHERE operation = 'unchanged'").fetchall()[0][0]
    s = SyncSummary(run_id="", audience=audience.name, destination=dest.name, channel=dest.channel, mode=mode,
                    as_of=str(as_of), source_rows=counts[0], invalid=counts[1], held_out=counts[2],
                    suppressed={r: reasons[r] for r in REASON_ORDER if r in reasons}, adds=ops.get("add", 0),
                    updates=ops.get("update", 0), removes=ops.get("remove", 0), unchanged=unchanged)
    s.seconds = {"govern": round(t1 - t0, 3), "diff": round(t2 - t1, 3)}
    return s, fields


def _changes_frame(con: duckdb.DuckDBPyConnection, fields: list[str], limit: int | None = None) -> pd.DataFrame:
    """The planned changes with their mapped fields, typed: current values for adds and updates, the last
    delivered values (from the stored payload) for removes."""
    lim = f"LIMIT {int(limit)}" if limit else ""
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE _gov)").fetchall())

    def value(f: str) -> str:
        path = sql_literal('$."' + f.replace('"', '\\"') + '"')
        return (f"CASE WHEN c.operation = 'remove' THEN TRY_CAST(json_extract_string(c.payload, {path}) AS {types[f]}) "
                f"ELSE g.{quote_ident(f)} END AS {quote_ident(f)}")

    cols = "".join(", " + value(f) for f in fields)
    return con.execute(f"""SELECT c.customer_id, c.operation, c.version, c.idempotency_key {cols}
        FROM _changes c LEFT JOIN _gov g ON g.customer_id = c.customer_id
        ORDER BY c.customer_id {lim}""").df()


def _acknowledged(dest: Destination, batches: list) -> Iterator[list[tuple]]:
    """The destination's answers, grouped: whatever was acknowledged while the last group was being committed
    is committed together (fewer transactions; still nothing committed before its acknowledgement)."""
    q: queue.Queue = queue.Queue()

    def pump() -> None:
        try:
            for item in send_all(dest, batches):
                q.put(("ok", item))
        except BaseException as exc:  # noqa: BLE001 - handed to the committing thread
            q.put(("error", exc))
        finally:
            q.put(("done", None))

    threading.Thread(target=pump, daemon=True, name="beacon-send").start()
    while True:
        items = [q.get()]
        while True:
            try:
                items.append(q.get_nowait())
            except queue.Empty:
                break
        group = [v for k, v in items if k == "ok"]
        if group:
            yield group
        for k, v in items:
            if k == "error":
                raise v
            if k == "done":
                return


def _commit(con: duckdb.DuckDBPyConnection, s: SyncSummary, rows: pd.DataFrame, results: list[RowResult],
            as_of, attempts: dict[str, int]) -> tuple[int, int]:
    """Log one acknowledged batch and move state forward for its delivered rows, in one transaction."""
    res = pd.DataFrame({"customer_id": [r.key for r in results], "status": [r.status for r in results],
                        "error": [r.error or None for r in results]}).drop_duplicates("customer_id", keep="last")
    merged = rows[["customer_id", "operation", "version", "idempotency_key"]].merge(res, on="customer_id", how="left")
    # A row the destination did not answer for was not acknowledged: it failed and is retried next run.
    missing = merged.status.isna()
    merged.loc[missing, "status"] = "failed"
    merged.loc[missing, "error"] = "no acknowledgement from the destination"
    merged["attempt"] = merged.idempotency_key.map(attempts).fillna(0).astype(int) + 1
    con.register("_batch", merged)
    try:
        with transaction(con):
            con.execute("""DELETE FROM activation.sync_state WHERE audience = $a AND destination = $d AND customer_id IN
                (SELECT customer_id FROM _batch WHERE status = 'delivered')""", {"a": s.audience, "d": s.destination})
            con.execute("""INSERT INTO activation.sync_state
                    (audience, destination, customer_id, row_hash, version, present, run_id, synced_at, payload)
                SELECT $a, $d, b.customer_id, c.row_hash, b.version, b.operation <> 'remove', $run, now(), c.payload
                FROM _batch b JOIN _changes c USING (customer_id) WHERE b.status = 'delivered'""",
                        {"a": s.audience, "d": s.destination, "run": s.run_id})
            con.execute("""INSERT INTO activation.sync_log SELECT $run, $a, $d, $ch, customer_id, operation, status, NULL,
                error, attempt, idempotency_key, $as_of, now() FROM _batch""",
                        {"run": s.run_id, "a": s.audience, "d": s.destination, "ch": s.channel, "as_of": as_of})
    finally:
        con.unregister("_batch")
    ok = int((merged.status == "delivered").sum())
    return ok, len(merged) - ok


def run_sync(con: duckdb.DuckDBPyConnection, audience: Audience, audiences: list[Audience], dest: Destination,
             as_of, mode: str | None = None, dry_run: bool = False, run_id: str | None = None,
             policy: ChannelPolicy | None = None, sample: int = 10, outcomes: bool = False,
             raise_errors: bool = True) -> SyncSummary:
    """Plan and (unless `dry_run`) deliver the changes of `audience` to `dest`; every step is logged in the warehouse.

    With `outcomes`, the summary carries each member's outcome (`SyncSummary.outcomes`). A destination that fails
    mid-run marks the run failed and re-raises; with `raise_errors=False` it returns the failed summary instead
    (what was acknowledged before the failure counts as sent)."""
    ensure_tables(con)
    s, fields = plan(con, audience, audiences, dest, as_of, mode, policy)
    s.run_id = run_id or f"{audience.name}:{dest.name}:{uuid.uuid4().hex[:12]}"
    s.dry_run = dry_run
    s.sample = json.loads(_changes_frame(con, fields, limit=sample).to_json(orient="records", date_format="iso"))
    if dry_run:
        s.status, s.message = "dry_run", "nothing was sent"
        return s
    started = datetime.now()
    _record_run(con, s, started, finished=False)
    _log_decisions(con, s, as_of, dest.required_any)
    attempts = dict(con.execute("""SELECT l.idempotency_key, count(*) FROM activation.sync_log l
        JOIN _changes c USING (idempotency_key) WHERE l.status = 'failed' AND l.audience = ? AND l.destination = ?
        GROUP BY 1""", [s.audience, s.destination]).fetchall())
    t0 = time.perf_counter()
    if s.changes:
        changes = _changes_frame(con, fields)
        meta = {"audience": s.audience, "destination": s.destination, "run_id": s.run_id, "as_of": s.as_of,
                "owner": audience.owner, "description": audience.description,
                # The personal data each sent column holds (catalog tags of the relations _gov reads).
                "pii_columns": kinds_of(["customer_id", *fields], [audience.relation, *GOV_RELATIONS], cached_catalog())}
        day = str(as_of)[:10]
        batches = dest.plan(changes, name=f"{s.audience}/{day}", meta=meta)
        try:
            for group in _acknowledged(dest, batches):
                rows = pd.concat([b.rows for b, _ in group], ignore_index=True)
                ok, bad = _commit(con, s, rows, [r for _, res in group for r in res], as_of, attempts)
                s.delivered += ok
                s.failed += bad
        except Exception as exc:  # noqa: BLE001 - the run is recorded as failed, then the error propagates
            s.status, s.message = "failed", f"{type(exc).__name__}: {exc}"
            _record_run(con, s, started, finished=True)
            if raise_errors:
                raise
            s.outcomes = _member_outcomes(con, s) if outcomes else None
            return s
    s.seconds["send"] = round(time.perf_counter() - t0, 3)
    s.status = "succeeded" if s.failed == 0 else "partial"
    s.message = s.message or (f"{s.failed} row(s) failed and will be retried next run" if s.failed else "")
    _record_run(con, s, started, finished=True)
    s.outcomes = _member_outcomes(con, s) if outcomes else None
    return s


def _member_outcomes(con: duckdb.DuckDBPyConnection, s: SyncSummary) -> pd.DataFrame:
    """Each governed member's outcome after the run (see `SyncSummary.outcomes`)."""
    return con.execute("""SELECT g.customer_id::VARCHAR AS customer_id,
            CASE WHEN g.reason IS NOT NULL OR g.held_out THEN 'skipped'
                 WHEN st.customer_id IS NOT NULL THEN 'sent' ELSE 'failed' END AS outcome,
            CASE WHEN g.held_out THEN 'held_out' ELSE g.reason END AS reason
        FROM _gov g LEFT JOIN _desired d ON d.customer_id = g.customer_id
        LEFT JOIN activation.sync_state st ON st.audience = $a AND st.destination = $d
            AND st.customer_id = g.customer_id AND st.present AND st.row_hash = d.row_hash""",
                       {"a": s.audience, "d": s.destination}).df()


def _record_run(con: duckdb.DuckDBPyConnection, s: SyncSummary, started: datetime, finished: bool) -> None:
    con.execute("DELETE FROM activation.sync_runs WHERE run_id = ?", [s.run_id])
    con.execute("INSERT INTO activation.sync_runs VALUES (?, ?, ?, ?, ?, ?::TIMESTAMP, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?, ?)",
                [s.run_id, s.audience, s.destination, s.channel, s.mode, s.as_of, started,
                 datetime.now() if finished else None, s.status if finished else "running", s.message, s.source_rows,
                 s.adds, s.updates, s.removes, s.unchanged, s.invalid, s.failed, s.delivered, s.held_out,
                 json.dumps(s.suppressed)])


def _log_decisions(con: duckdb.DuckDBPyConnection, s: SyncSummary, as_of, required_any: tuple[str, ...]) -> None:
    """Log every member not sent this run with its reason, and add new control-group members for lift measurement."""
    with transaction(con):
        con.execute("""INSERT INTO activation.sync_log
            SELECT $run, $a, $d, $ch, customer_id, 'skip',
                CASE WHEN held_out THEN 'held_out' WHEN reason = 'invalid' THEN 'invalid' ELSE 'suppressed' END,
                CASE WHEN held_out THEN 'holdout' ELSE reason END,
                CASE WHEN reason = 'invalid' THEN $invalid END, NULL, NULL, $as_of, now()
            FROM _gov WHERE reason IS NOT NULL OR held_out""",
                    {"run": s.run_id, "a": s.audience, "d": s.destination, "ch": s.channel, "as_of": as_of,
                     "invalid": f"the destination needs a value in one of: {', '.join(required_any)}"})
        con.execute("""INSERT INTO activation.control_group SELECT $a, customer_id, $as_of, $run FROM _gov g
            WHERE held_out AND NOT EXISTS (SELECT 1 FROM activation.control_group x
                                           WHERE x.audience = $a AND x.customer_id = g.customer_id)""",
                    {"a": s.audience, "as_of": as_of, "run": s.run_id})


def last_delivered(con: duckdb.DuckDBPyConnection, audience: str, destination: str) -> dict:
    """What the destination holds according to the acknowledged state, and the warehouse day of the last delivery."""
    ensure_tables(con)
    n = con.execute("""SELECT count(*) FILTER (WHERE present) FROM activation.sync_state
        WHERE audience = ? AND destination = ?""", [audience, destination]).fetchall()[0][0]
    last = con.execute("""SELECT max(as_of) FROM activation.sync_runs WHERE audience = ? AND destination = ?
        AND status IN ('succeeded', 'partial') AND delivered > 0""", [audience, destination]).fetchall()[0][0]
    return {"members": n, "last_delivered": last.date().isoformat() if last else None}
