"""The journeys engine: state in the warehouse, advanced in bulk with set-based SQL.

State is the append-only log `journeys.transitions`: one row per thing that happened to one entry of one
person (entered, arrived at a node, sent, skipped, deferred, exited), numbered by `step` within the entry,
with a deterministic `transition_id`. Where everyone is now is the latest row of each entry (`journeys.current`).
Finished entries are compacted into one row each (`journeys.finished`) so the log holds active people.

One advance, at warehouse clock T: exits and goals for everyone in flight; new entries; then hops: every entry
due at a node (arrived, due_at <= T) moves on by one node, all entries of one node in one statement, until
nobody is due (no loop without a wait, so at most one hop per node). Sends go through the activation sync
engine (governance + idempotent diff), so a re-run after a crash sends nobody twice.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time as _time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path

import duckdb

from beacon.audiences import Audience
from beacon.journeys.model import (
    OPS,
    WEEKDAYS,
    ActionsNode,
    BranchNode,
    Condition,
    ExitNode,
    Journey,
    LocalWindow,
    SendNode,
    SplitNode,
    WaitFor,
    WaitNode,
    parse_duration,
)
from beacon.warehouse import transaction

log = logging.getLogger(__name__)

LOG_COLUMNS = """transition_id VARCHAR, journey VARCHAR, version INTEGER, customer_id VARCHAR, entry_no INTEGER,
    step INTEGER, node_id VARCHAR, transition VARCHAR, arm VARCHAR, due_at TIMESTAMP, occurred_at TIMESTAMP,
    run_id VARCHAR, entry_key VARCHAR, entered_at TIMESTAMP, detail VARCHAR"""
# Columns an in-flight entry carries from row to row.
CARRY = "customer_id, entry_no, version, entered_at, entry_key, arm, step"
WAITING = ("entered", "arrived", "deferred")
TZ = "coalesce(p.tz, 'UTC')"  # the person's time zone in queries that join _people p
# US states -> IANA time zone (the generated people live in the US); anyone else: UTC. A `time_zone`
# column in marts.dim_customers, when present, wins.
STATE_TZ = {
    **dict.fromkeys(["CT", "DE", "DC", "FL", "GA", "IN", "KY", "ME", "MD", "MA", "MI", "NH", "NJ", "NY", "NC", "OH", "PA",
                     "RI", "SC", "VT", "VA", "WV"], "America/New_York"),
    **dict.fromkeys(["AL", "AR", "IL", "IA", "KS", "LA", "MN", "MS", "MO", "NE", "ND", "OK", "SD", "TN", "TX", "WI"],
                    "America/Chicago"),
    **dict.fromkeys(["CO", "MT", "NM", "UT", "WY", "ID"], "America/Denver"),
    "AZ": "America/Phoenix",
    **dict.fromkeys(["CA", "NV", "OR", "WA"], "America/Los_Angeles"),
    "AK": "America/Anchorage", "HI": "Pacific/Honolulu",
}


class JourneysBusy(RuntimeError):
    """Another advance holds the journeys lock (runs never overlap)."""


class JourneyRuntimeError(ValueError):
    """A journey refers to something the warehouse does not have (names journey and node)."""


@dataclass
class Env:
    """What an advance needs from outside: destinations per channel, the audiences (priority arbitration) and
    where each segment lives. Tests pass doubles; the DAG and CLI build the real ones (see `default_env`)."""

    destination: Callable[[str], object]
    audiences: list[Audience] = field(default_factory=list)
    relations: dict[str, str] = field(default_factory=dict)  # segment name -> schema.table
    policy: Callable[[object], object] | None = None  # destination -> ChannelPolicy (None: the house default)
    templates_dir: Path | None = None  # the send templates (None: <home>/journeys/templates)

    def relation(self, segment: str) -> str:
        return self.relations.get(segment, f"segments.{segment}")


@dataclass
class RunResult:
    journey: str
    run_id: str
    clock: str
    entered: int = 0
    exited: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    deferred: int = 0
    failed: int = 0
    hops: int = 0
    moved: int = 0
    errors: list[str] = field(default_factory=list)
    waiting_for: list[str] = field(default_factory=list)  # tables not built yet: nothing was decided this run
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# ------------------------------------------------------------------------------------------------ tables


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The journeys schema: the log, compacted entries, definitions per version, runs, actions, events."""
    con.execute("CREATE SCHEMA IF NOT EXISTS journeys")
    con.execute(f"CREATE TABLE IF NOT EXISTS journeys.transitions ({LOG_COLUMNS})")
    con.execute("""CREATE TABLE IF NOT EXISTS journeys.finished (journey VARCHAR, version INTEGER, customer_id VARCHAR,
        entry_no INTEGER, entry_key VARCHAR, arm VARCHAR, entered_at TIMESTAMP, exited_at TIMESTAMP, exit_node VARCHAR,
        exit_reason VARCHAR, sends INTEGER, steps INTEGER, compacted_run VARCHAR)""")
    con.execute("""CREATE TABLE IF NOT EXISTS journeys.definitions (journey VARCHAR, version INTEGER, definition JSON,
        registered_at TIMESTAMP)""")
    con.execute("""CREATE TABLE IF NOT EXISTS journeys.runs (run_id VARCHAR, journey VARCHAR, clock TIMESTAMP,
        started_at TIMESTAMP, finished_at TIMESTAMP, status VARCHAR, summary JSON)""")
    con.execute("""CREATE TABLE IF NOT EXISTS journeys.actions (action_id VARCHAR, journey VARCHAR, customer_id VARCHAR,
        entry_no INTEGER, node_id VARCHAR, action VARCHAR, value VARCHAR, occurred_at TIMESTAMP, run_id VARCHAR)""")
    con.execute("""CREATE OR REPLACE VIEW journeys.current AS
        SELECT * FROM journeys.transitions
        QUALIFY row_number() OVER (PARTITION BY journey, customer_id, entry_no ORDER BY step DESC) = 1""")
    # On a list when the latest list action is list_add (at the same clock, list_remove wins).
    con.execute("""CREATE OR REPLACE VIEW journeys.static_lists AS
        SELECT list, customer_id, added_at FROM (
            SELECT value AS list, customer_id, occurred_at AS added_at, action FROM journeys.actions
            WHERE action IN ('list_add', 'list_remove')
            QUALIFY row_number() OVER (PARTITION BY value, customer_id ORDER BY occurred_at DESC,
                action = 'list_add') = 1)
        WHERE action = 'list_add'""")
    _ensure_events(con)


def _ensure_events(con: duckdb.DuckDBPyConnection) -> None:
    """`journeys.events` (customer_id, event_name, event_at, event_key): a view over the marts when they exist,
    else an empty table (tests and simulations fill it)."""
    exists = con.execute("SELECT count(*) FROM duckdb_views() WHERE schema_name = 'journeys' AND view_name = 'events' "
                         "UNION ALL SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'journeys' "
                         "AND table_name = 'events'").fetchall()
    if sum(r[0] for r in exists):
        return
    if _has(con, "marts", "fct_web_events") and _has(con, "marts", "fct_email_events"):
        con.execute("""CREATE VIEW journeys.events AS
            SELECT customer_id, event_name, event_at, coalesce(product_id, webinar_id, message_id) AS event_key
            FROM marts.fct_web_events WHERE customer_id IS NOT NULL
            UNION ALL
            SELECT customer_id, 'email_' || event_name, event_at, campaign_id FROM marts.fct_email_events
            WHERE customer_id IS NOT NULL""")
    else:
        con.execute("""CREATE TABLE journeys.events (customer_id VARCHAR, event_name VARCHAR, event_at TIMESTAMP,
            event_key VARCHAR)""")


def _has(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                       [schema, table]).fetchall()[0][0] > 0


def _lit(v) -> str:
    """A SQL literal (values come from validated YAML; quotes are escaped all the same)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, timedelta):
        return f"INTERVAL '{int(v.total_seconds())} seconds'"
    if isinstance(v, time):
        return f"TIME '{v.isoformat()}'"
    return "'" + str(v).replace("'", "''") + "'"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# ------------------------------------------------------------------------------------------------ people


def _people(con: duckdb.DuckDBPyConnection) -> None:
    """`_people`: one row per person with the time zone and the attributes branches and waits may read."""
    tz_map = ", ".join(f"({_lit(k)}, {_lit(v)})" for k, v in STATE_TZ.items())
    if not _has(con, "marts", "dim_customers"):
        con.execute("CREATE OR REPLACE TEMP TABLE _people AS SELECT NULL::VARCHAR AS customer_id, 'UTC' AS tz WHERE false")
        return
    cols = {r[0] for r in con.execute("DESCRIBE marts.dim_customers").fetchall()}
    tz = "coalesce(c.time_zone, s.tz, 'UTC')" if "time_zone" in cols else "coalesce(s.tz, 'UTC')"
    state = "c.state" if "state" in cols else "NULL"
    joins, extra = "", ""
    if _has(con, "marts", "customer_lead_points"):
        joins += " LEFT JOIN marts.customer_lead_points lp ON lp.customer_id = c.customer_id"
        extra += ", lp.lead_points"
    if _has(con, "marts", "customer_lifecycle"):
        joins += " LEFT JOIN marts.customer_lifecycle lc ON lc.customer_id = c.customer_id"
        extra += ", lc.lifecycle_stage"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _people AS
        SELECT c.* {'EXCLUDE (time_zone)' if 'time_zone' in cols else ''}, {tz} AS tz {extra}
        FROM marts.dim_customers c LEFT JOIN (VALUES {tz_map}) s(state, tz) ON s.state = {state} {joins}""")


def _to_local(ts: str, tz: str) -> str:
    return f"timezone({tz}, timezone('UTC', {ts}))"


def _to_utc(local: str, tz: str) -> str:
    return f"timezone('UTC', timezone({tz}, {local}))"


def next_slot_sql(ts: str, tz: str, window: LocalWindow) -> str:
    """SQL for the first instant >= `ts` (UTC) inside the local window on an allowed weekday, in UTC."""
    local = _to_local(ts, tz)
    a, b = _lit(window.start), _lit(window.end)
    days = ", ".join(str(WEEKDAYS.index(d) + 1) for d in window.weekdays)
    inside = (f"({local}::TIME >= {a} AND {local}::TIME < {b})" if window.start < window.end
              else f"({local}::TIME >= {a} OR {local}::TIME < {b})")
    now_ok = f"{inside} AND isodow({local}) IN ({days})"
    later = (f"list_min([({local}::DATE + d::INTEGER) + {a} for d in range(0, 8) "
             f"if ({local}::DATE + d::INTEGER) + {a} > {local} AND isodow({local}::DATE + d::INTEGER) IN ({days})])")
    return f"CASE WHEN {now_ok} THEN {ts} ELSE {_to_utc(later, tz)} END"


# ------------------------------------------------------------------------------------------------ the lock


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


# ------------------------------------------------------------------------------------------------ advance


class _Run:
    """One advance of one journey (all its versions in flight) at clock T."""

    def __init__(self, con, journey: Journey, defs: dict[int, Journey], clock, run_id: str, env: Env):
        self.con, self.j, self.defs, self.T, self.run_id, self.env = con, journey, defs, clock, run_id, env
        self.res = RunResult(journey=journey.name, run_id=run_id, clock=str(clock))
        self.Tl = f"TIMESTAMP '{clock}'"

    # -- writing ---------------------------------------------------------------------------------------

    def emit(self, moves_sql: str) -> int:
        """Write the outcome and arrival rows of a set of moves.

        `moves_sql` yields CARRY columns plus node_id, outcome (NULL: none), detail, next_node (NULL: stays),
        due_override (the due time of an outcome row, e.g. a deferred send's slot)."""
        con = self.con
        con.execute(f"CREATE OR REPLACE TEMP TABLE _moves AS {moves_sql}")
        n = con.execute("SELECT count(*) FROM _moves").fetchall()[0][0]
        if not n:
            return 0
        due = self._arrival_due_sql()
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _rows AS
            SELECT customer_id, entry_no, version, entered_at, entry_key, arm, step + 1 AS step, node_id,
                outcome AS transition, coalesce(due_override, {self.Tl}) AS due_at, detail
            FROM _moves WHERE outcome IS NOT NULL
            UNION ALL
            SELECT m.customer_id, m.entry_no, m.version, m.entered_at, m.entry_key, m.arm,
                m.step + 1 + (m.outcome IS NOT NULL)::INTEGER, m.next_node,
                CASE WHEN m.next_node IN (SELECT node_id FROM _exits WHERE version = m.version) THEN 'exited'
                     ELSE 'arrived' END,
                {due}, CASE WHEN m.next_node IN (SELECT node_id FROM _exits WHERE version = m.version)
                            THEN 'exit_node' END
            FROM _moves m LEFT JOIN _people p ON p.customer_id = m.customer_id
            WHERE m.next_node IS NOT NULL""")
        self._append("_rows")
        return n

    def _append(self, rows: str) -> None:
        con = self.con
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _ins AS
            SELECT md5(concat_ws('|', $j, r.customer_id, r.entry_no, r.step, r.transition)) AS transition_id,
                $j AS journey, r.version, r.customer_id, r.entry_no, r.step, r.node_id, r.transition, r.arm, r.due_at,
                $t::TIMESTAMP AS occurred_at, $run AS run_id, r.entry_key, r.entered_at, r.detail
            FROM {rows} r""", {"j": self.j.name, "t": self.T, "run": self.run_id})
        with transaction(con):
            # Anti-join on the deterministic id: a re-run after a crash writes nothing twice.
            con.execute("""INSERT INTO journeys.transitions SELECT * FROM _ins i WHERE NOT EXISTS (
                SELECT 1 FROM journeys.transitions t WHERE t.journey = i.journey AND t.customer_id = i.customer_id
                    AND t.entry_no = i.entry_no AND t.transition_id = i.transition_id)""")
            # `_cur` (latest row per entry, this journey) follows the log.
            con.execute("""DELETE FROM _cur WHERE (customer_id, entry_no) IN (SELECT customer_id, entry_no FROM _ins)""")
            con.execute("""INSERT INTO _cur SELECT * FROM _ins
                QUALIFY row_number() OVER (PARTITION BY customer_id, entry_no ORDER BY step DESC) = 1""")

    def _arrival_due_sql(self) -> str:
        """Due time of an arrival at m.next_node: now, or when its wait ends."""
        cases = []
        for v, d in self.defs.items():
            for n in d.nodes:
                expr = None
                if isinstance(n, WaitNode):
                    if n.duration:
                        expr = f"{self.Tl} + {_lit(parse_duration(n.duration))}"
                    elif n.until_window:
                        expr = next_slot_sql(self.Tl, TZ, n.until_window)
                    else:
                        u = n.until_date
                        local = f"(p.{_q(u.attribute)}::DATE + {int(u.offset_days)}) + {_lit(u.at)}"
                        utc = _to_utc(local, TZ)
                        expr = f"coalesce(greatest({self.Tl}, {utc}), {self.Tl})"
                elif isinstance(n, WaitFor):
                    expr = f"{self.Tl} + {_lit(parse_duration(n.timeout))}"
                if expr:
                    cases.append(f"WHEN m.version = {v} AND m.next_node = {_lit(n.id)} THEN {expr}")
        return f"CASE {' '.join(cases)} ELSE {self.Tl} END" if cases else self.Tl

    # -- the run ---------------------------------------------------------------------------------------

    def setup(self) -> None:
        """The run's working tables: people, exit nodes, the latest row per entry, failed deliveries."""
        con = self.con
        _people(con)
        exits = [(v, n.id) for v, d in self.defs.items() for n in d.nodes if isinstance(n, ExitNode)]
        con.execute("CREATE OR REPLACE TEMP TABLE _exits (version INTEGER, node_id VARCHAR)")
        if exits:
            con.execute("INSERT INTO _exits VALUES " + ", ".join(f"({v}, {_lit(i)})" for v, i in exits))
        con.execute("""CREATE OR REPLACE TEMP TABLE _cur AS SELECT * FROM journeys.transitions WHERE journey = ?
            QUALIFY row_number() OVER (PARTITION BY customer_id, entry_no ORDER BY step DESC) = 1""", [self.j.name])
        con.execute("CREATE OR REPLACE TEMP TABLE _failed (customer_id VARCHAR, entry_no INTEGER)")

    def run(self) -> RunResult:
        t0 = _time.perf_counter()
        self.setup()
        self._migrate()
        self._exits_and_goals()
        self._enter()
        max_hops = max(len(d.nodes) for d in self.defs.values()) + 2
        for _ in range(max_hops):
            moved = self._hop()
            if not moved:
                break
            self.res.hops += 1
            self.res.moved += moved
        self.res.seconds = round(_time.perf_counter() - t0, 3)
        return self.res

    def _active(self, where: str = "true") -> str:
        return f"SELECT * FROM _cur WHERE transition <> 'exited' AND ({where})"

    def _migrate(self) -> None:
        """People on an older version at a node the current version maps move to the mapped node."""
        j = self.j
        maps = {k: v for k, v in j.migrate.items() if v is not None}
        if not maps:
            return
        values = ", ".join(f"({_lit(k)}, {_lit(v)})" for k, v in maps.items())
        self.emit(f"""SELECT c.customer_id, c.entry_no, {j.version} AS version, c.entered_at, c.entry_key, c.arm, c.step,
                c.node_id, 'migrated' AS outcome, 'from version ' || c.version AS detail, m.target AS next_node,
                NULL::TIMESTAMP AS due_override
            FROM ({self._active(f'version < {j.version}')}) c JOIN (VALUES {values}) m(source, target)
                ON m.source = c.node_id""")

    def _exits_and_goals(self) -> None:
        """Goals and exit criteria end an entry at this run, whatever node it is at."""
        j, T = self.j, self.Tl
        checks = []
        if j.goal:
            within = _lit(parse_duration(j.goal.within))
            checks.append(("goal", f"""EXISTS (SELECT 1 FROM journeys.events e WHERE e.customer_id = c.customer_id
                AND e.event_name = {_lit(j.goal.event)} AND e.event_at > c.entered_at
                AND e.event_at <= least(c.entered_at + {within}, {T}))"""))
        if "left_audience" in j.exit_when:
            aud = j.entry.audience or (j.entry.schedule.audience if j.entry.schedule else None)
            if aud:
                checks.append(("left_audience",
                               f"c.customer_id NOT IN (SELECT customer_id::VARCHAR FROM {self.env.relation(aud)})"))
        has_sup = _has(self.con, "activation", "suppression_list")
        if "unsubscribed" in j.exit_when:
            sup = ("OR c.customer_id IN (SELECT customer_id FROM activation.suppression_list WHERE reason = "
                   "'unsubscribed' AND customer_id IS NOT NULL)") if has_sup else ""
            checks.append(("unsubscribed", f"""(EXISTS (SELECT 1 FROM journeys.events e
                WHERE e.customer_id = c.customer_id AND e.event_name = 'email_unsubscribe'
                AND e.event_at > c.entered_at AND e.event_at <= {T}) {sup})"""))
        if "erased" in j.exit_when and has_sup:
            checks.append(("erased", "c.customer_id IN (SELECT customer_id FROM activation.suppression_list "
                                     "WHERE reason = 'erased' AND customer_id IS NOT NULL)"))
        if not checks:
            return
        reason = "CASE " + " ".join(f"WHEN {sql} THEN {_lit(name)}" for name, sql in checks) + " END"
        self.emit(f"""SELECT * FROM (SELECT {CARRY}, c.node_id, 'exited' AS outcome, {reason} AS detail,
                NULL AS next_node, NULL::TIMESTAMP AS due_override FROM ({self._active()}) c) WHERE detail IS NOT NULL""")
        for k, n in self.con.execute("SELECT detail, count(*) FROM _moves GROUP BY 1").fetchall():
            self.res.exited[k] = self.res.exited.get(k, 0) + n

    def _since(self) -> str:
        """The clock of this journey's last finished run (entries count events after it)."""
        last = self.con.execute("""SELECT max(clock) FROM journeys.runs WHERE journey = ? AND status = 'succeeded'
            AND clock < ?::TIMESTAMP""", [self.j.name, self.T]).fetchall()[0][0]
        return f"TIMESTAMP '{last}'" if last else None

    def _candidates(self) -> str:
        """SELECT customer_id, entry_key, entry_at: who qualifies for entry at this run."""
        e, T, since = self.j.entry, self.Tl, self._since()
        if e.audience:
            return f"SELECT customer_id::VARCHAR AS customer_id, NULL::VARCHAR AS entry_key FROM {self.env.relation(e.audience)}"
        if e.event:
            lo = since or f"{T} - {_lit(parse_duration(e.event.lookback))}"
            key = "event_key" if e.event.dedupe_key == "event_key" else "NULL::VARCHAR"
            return f"""SELECT customer_id, arg_min({key}, (event_at, event_key)) AS entry_key FROM journeys.events
                WHERE event_name = {_lit(e.event.name)} AND event_at > {lo} AND event_at <= {T}
                AND customer_id IS NOT NULL GROUP BY customer_id"""
        if e.date:
            d = e.date
            lo = since or f"{T} - INTERVAL 1 DAY"
            tz = TZ
            base = f"(p.{_q(d.attribute)}::DATE + {int(d.offset_days)})"
            if d.annual:
                # This year's and last year's anniversary (a run near New Year sees both).
                inst = [(f"({base} + to_years(year({T})::INTEGER + {k} - year({base})::INTEGER))", k) for k in (-1, 0)]
            else:
                inst = [(base, 0)]
            parts = [f"""SELECT p.customer_id, year({x})::VARCHAR AS entry_key, {_to_utc(f'{x}::DATE + {_lit(d.at)}', tz)}
                    AS entry_at FROM _people p WHERE p.{_q(d.attribute)} IS NOT NULL""" for x, _ in inst]
            return f"""SELECT customer_id, min(entry_key) AS entry_key FROM ({' UNION ALL '.join(parts)})
                WHERE entry_at > {lo} AND entry_at <= {T} GROUP BY customer_id"""
        s = e.schedule
        start, every = datetime.fromisoformat(s.start), parse_duration(s.every)
        if self.T < start:
            return "SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS entry_key WHERE false"
        k = int((self.T - start) / every)
        occ = start + k * every
        lo = datetime.fromisoformat(since.split("'")[1]) if since else self.T - every
        if occ <= lo:
            return "SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS entry_key WHERE false"
        return f"SELECT customer_id::VARCHAR AS customer_id, {_lit(occ.isoformat())} AS entry_key FROM {self.env.relation(s.audience)}"

    def _enter(self) -> None:
        j, e, T = self.j, self.j.entry, self.Tl
        con = self.con
        con.execute("""CREATE OR REPLACE TEMP TABLE _hist AS
            SELECT customer_id, entry_no, entry_key,
                max(occurred_at) FILTER (WHERE transition = 'exited') AS exited_at,
                bool_or(transition = 'exited') AS done
            FROM journeys.transitions WHERE journey = $j GROUP BY ALL
            UNION ALL
            SELECT customer_id, entry_no, entry_key, exited_at, true FROM journeys.finished WHERE journey = $j""",
                    {"j": j.name})
        rule = {
            "never": "NOT EXISTS (SELECT 1 FROM _hist h WHERE h.customer_id = c.customer_id)",
            "after_exit": "true",
            "cooldown": f"""NOT EXISTS (SELECT 1 FROM _hist h WHERE h.customer_id = c.customer_id
                AND h.exited_at > {T} - {_lit(parse_duration(e.cooldown)) if e.cooldown else 'INTERVAL 0 DAY'})""",
            "once_per_event_key": """NOT EXISTS (SELECT 1 FROM _hist h WHERE h.customer_id = c.customer_id
                AND h.entry_key IS NOT DISTINCT FROM c.entry_key)""",
        }[e.re_entry]
        limit = ""
        if e.cap_per_run or e.max_active:
            active = con.execute("SELECT count(*) FROM _cur WHERE transition <> 'exited'").fetchall()[0][0]
            caps = [x for x in (e.cap_per_run, (e.max_active - active) if e.max_active else None) if x is not None]
            limit = f"ORDER BY md5({_lit(j.name)} || c.customer_id) LIMIT {max(0, min(caps))}"
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _new_entries AS
            SELECT c.customer_id::VARCHAR AS customer_id, c.entry_key::VARCHAR AS entry_key,
                coalesce((SELECT max(entry_no) FROM _hist h
                WHERE h.customer_id = c.customer_id), 0) + 1 AS entry_no
            FROM ({self._candidates()}) c
            WHERE c.customer_id IS NOT NULL
              -- One entry in flight per person, whatever the re-entry rule.
              AND NOT EXISTS (SELECT 1 FROM _hist h WHERE h.customer_id = c.customer_id AND NOT h.done)
              AND {rule}
            {limit}""")
        # The start node's due time is an arrival's: a journey may start with a wait.
        due = self._arrival_due_sql()
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _entry_rows AS
            SELECT m.customer_id, m.entry_no::INTEGER AS entry_no, {j.version} AS version, {T} AS entered_at,
                m.entry_key, NULL::VARCHAR AS arm, 1 AS step, {_lit(j.start)} AS node_id,
                CASE WHEN {_lit(j.start)} IN (SELECT node_id FROM _exits WHERE version = {j.version})
                     THEN 'exited' ELSE 'entered' END AS transition, {due} AS due_at, NULL::VARCHAR AS detail
            FROM (SELECT *, {_lit(j.start)} AS next_node, {j.version} AS version FROM _new_entries) m
            LEFT JOIN _people p ON p.customer_id = m.customer_id""")
        self._append("_entry_rows")
        self.res.entered = con.execute("SELECT count(*) FROM _entry_rows").fetchall()[0][0]

    def _hop(self) -> int:
        """Move every due entry on by one node; returns how many moved."""
        con, T = self.con, self.Tl
        wait_for = [(v, n) for v, d in self.defs.items() for n in d.nodes if isinstance(n, WaitFor)]
        early = " OR ".join(f"(c.version = {v} AND c.node_id = {_lit(n.id)} AND {self._happened(n)})"
                            for v, n in wait_for) or "false"
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _due AS SELECT c.* FROM _cur c
            WHERE c.transition IN {WAITING} AND (c.due_at <= {T} OR {early})
              AND (c.customer_id, c.entry_no) NOT IN (SELECT customer_id, entry_no FROM _failed)""")
        by_node = con.execute("SELECT version, node_id, count(*) FROM _due GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
        moved = 0
        for v, node_id, _ in by_node:
            d = self.defs.get(v)
            if d is None or node_id not in d.node_ids:
                raise JourneyRuntimeError(f"journey {self.j.name}: people are at node {node_id!r} of version {v}, "
                                          "which is not defined (register the old version or map it in `migrate`)")
            node = d.node(node_id)
            con.execute(f"CREATE OR REPLACE TEMP TABLE _at AS SELECT * FROM _due WHERE version = {v} "
                        f"AND node_id = {_lit(node_id)}")
            moved += self._process(node)
        return moved

    def _happened(self, n: WaitFor, c: str = "c") -> str:
        if n.event:
            return f"""EXISTS (SELECT 1 FROM journeys.events e WHERE e.customer_id = {c}.customer_id
                AND e.event_name = {_lit(n.event)} AND e.event_at > {c}.occurred_at AND e.event_at <= {self.Tl})"""
        return f"{c}.customer_id IN (SELECT customer_id::VARCHAR FROM {self.env.relation(n.segment)})"

    def _move_sql(self, next_node: str, outcome: str = "NULL", detail: str = "NULL", due_override: str = "NULL",
                  where: str = "true", arm: str = "a.arm", src: str = "_at a") -> str:
        carry = "a.customer_id, a.entry_no, a.version, a.entered_at, a.entry_key"
        return f"""SELECT {carry}, {arm} AS arm, a.step, a.node_id, {outcome}::VARCHAR AS outcome,
            {detail}::VARCHAR AS detail, {next_node}::VARCHAR AS next_node, {due_override}::TIMESTAMP AS due_override
            FROM {src} WHERE {where}"""

    def _process(self, node) -> int:
        if isinstance(node, WaitNode):
            return self.emit(self._move_sql(_lit(node.next)))
        if isinstance(node, WaitFor):
            c_happened = self._happened(node, "a")
            nxt = f"CASE WHEN {c_happened} THEN {_lit(node.next)} ELSE {_lit(node.on_timeout)} END"
            det = f"CASE WHEN {c_happened} THEN 'happened' ELSE 'timeout' END"
            return self.emit(self._move_sql(nxt, detail=det))
        if isinstance(node, BranchNode):
            whens = " ".join(f"WHEN {self._condition(node, r.when)} THEN {_lit(r.next)}" for r in node.rules)
            return self.emit(self._move_sql(f"CASE {whens} ELSE {_lit(node.default)} END",
                                            src="_at a LEFT JOIN _people p ON p.customer_id = a.customer_id"))
        if isinstance(node, SplitNode):
            return self.emit(self._split(node))
        if isinstance(node, ExitNode):
            return self.emit(self._move_sql("NULL", outcome="'exited'", detail="'exit_node'"))
        if isinstance(node, ActionsNode):
            return self._actions(node)
        if isinstance(node, SendNode):
            return self._send(node)
        raise TypeError(node)

    def _split(self, node: SplitNode) -> str:
        arms = [(a.name, a.weight, a.next) for a in node.arms]
        if node.control:
            arms.append(("control", node.control.weight, node.control.next))
        total = sum(w for _, w, _ in arms)
        # Sticky: a stable hash of (journey, split node, person) picks the same arm on every entry and run.
        u = f"(('0x' || substr(md5({_lit(self.j.name)} || ':' || {_lit(node.id)} || ':' || a.customer_id), 1, 8))" \
            f"::UBIGINT / 4294967296.0)"
        cases_arm, cases_next, acc = [], [], 0.0
        for name, w, nxt in arms:
            acc += w / total
            bound = "2" if (name, w, nxt) == arms[-1] else repr(acc)
            cases_arm.append(f"WHEN {u} < {bound} THEN {_lit(name)}")
            cases_next.append(f"WHEN {u} < {bound} THEN {_lit(nxt)}")
        return self._move_sql(f"CASE {' '.join(cases_next)} END", outcome="'assigned'",
                              detail=f"'split ' || {_lit(node.id)}", arm=f"CASE {' '.join(cases_arm)} END")

    def _condition(self, node, c: Condition) -> str:
        if c.attribute:
            self._need_attribute(node, c.attribute)
            return self._compare(f"p.{_q(c.attribute)}", c)
        if c.score:
            col = (f"(SELECT arg_max(s.score, s.scored_at) FROM ml.scores s WHERE s.customer_id = a.customer_id "
                   f"AND s.model = {_lit(c.score)})") if _has(self.con, "ml", "scores") else "NULL::DOUBLE"
            return self._compare(col, c)
        if c.segment:
            return f"a.customer_id IN (SELECT customer_id::VARCHAR FROM {self.env.relation(c.segment)})"
        sent = f"""(SELECT min(t.occurred_at) FROM journeys.transitions t WHERE t.journey = {_lit(self.j.name)}
            AND t.customer_id = a.customer_id AND t.entry_no = a.entry_no AND t.node_id = {_lit(c.node)}
            AND t.transition = 'sent')"""
        if c.engagement == "delivered":
            return f"{sent} IS NOT NULL"
        ev = {"opened": "'email_open'", "clicked": "'email_click'",
              "converted": _lit(self.j.goal.event) if self.j.goal else "'order_completed'"}[c.engagement]
        return f"""EXISTS (SELECT 1 FROM journeys.events e WHERE e.customer_id = a.customer_id AND e.event_name = {ev}
            AND e.event_at >= {sent} AND e.event_at <= {self.Tl})"""

    def _need_attribute(self, node, attribute: str) -> None:
        cols = {r[0] for r in self.con.execute("DESCRIBE _people").fetchall()}
        if attribute not in cols:
            raise JourneyRuntimeError(f"journey {self.j.name}: node {node.id}: unknown attribute {attribute!r}; "
                                      f"known: {', '.join(sorted(cols))}")

    @staticmethod
    def _compare(col: str, c: Condition) -> str:
        op = OPS[c.op]
        if c.op in ("in", "not_in"):
            vals = c.value if isinstance(c.value, list) else [c.value]
            return f"coalesce({col} {op} ({', '.join(_lit(v) for v in vals)}), false)"
        return f"coalesce({col} {op} {_lit(c.value)}, false)"

    # -- sends and actions through the activation sync engine ----------------------------------------------

    def _deliver(self, node_id: str, channel: str, who: str, extra_cols: str = "") -> tuple[str, str]:
        """Sync the people in temp table `who` to the channel's destination; leaves `_sent` and `_skipped`
        (customer_id, entry_no[, reason]); the rest failed (retried next run)."""
        from beacon.activation.governance import default_policy
        from beacon.activation.sync import run_sync

        con = self.con
        aud_name = f"journey__{self.j.name}__{node_id}"
        con.execute("CREATE SCHEMA IF NOT EXISTS journeys_out")
        rel = f"journeys_out.{aud_name}"
        try:
            dest = self.env.destination(channel)
        except LookupError as exc:  # e.g. no connection for the channel: everyone stays, retried next run
            self.res.errors.append(f"node {node_id}: {exc}")
            con.execute(f"INSERT INTO _failed SELECT customer_id, entry_no FROM {who}")
            self.res.failed += con.execute(f"SELECT count(*) FROM {who}").fetchall()[0][0]
            con.execute("CREATE OR REPLACE TEMP TABLE _sent (customer_id VARCHAR, entry_no INTEGER)")
            con.execute("CREATE OR REPLACE TEMP TABLE _skipped (customer_id VARCHAR, entry_no INTEGER, reason VARCHAR)")
            return "_sent", "_skipped"
        # The payload carries the entry number: a new entry is a new change (a new idempotency key), the same
        # entry after a crash is `unchanged` (already acknowledged), so it is never sent twice.
        con.execute(f"""CREATE OR REPLACE TABLE {rel} AS SELECT customer_id, entry_no AS journey_entry_no,
            {_lit(self.j.name)} AS journey, {_lit(node_id)} AS journey_node, arm AS journey_arm {extra_cols}
            FROM {who}""")
        audience = Audience(name=aud_name, description=f"journey {self.j.name}, node {node_id}", owner=self.j.owner,
                            channels=(channel,), priority=self.j.priority, holdout_pct=0.0, refresh="hourly",
                            relation=rel, model=aud_name, path=f"journeys/{self.j.name}.yml")
        policy = self.env.policy(dest) if self.env.policy else default_policy(dest.channel)
        bind = getattr(dest, "use_journey_messages", None)
        if bind is not None and "journey_template" in extra_cols:  # render the node's own template (personalized)
            from beacon.config import settings
            from beacon.journeys.messages import JourneyMessages

            tdir = self.env.templates_dir or settings().home / "journeys" / "templates"
            bind(JourneyMessages.load(con, who, tdir, self.env.audiences, self.env.relations))
        # Empty plan tables: if the sync fails before planning, nobody counts as sent or skipped.
        con.execute("CREATE OR REPLACE TEMP TABLE _desired (customer_id VARCHAR, payload VARCHAR, row_hash VARCHAR)")
        con.execute("CREATE OR REPLACE TEMP TABLE _gov (customer_id VARCHAR, reason VARCHAR, held_out BOOLEAN)")
        try:
            run_sync(con, audience, [audience, *[a for a in self.env.audiences if a.name != aud_name]], dest, self.T,
                     mode="upsert", run_id=f"{self.run_id}:{node_id}", policy=policy)
        except Exception as exc:  # noqa: BLE001 - the rows not acknowledged are retried next run
            self.res.errors.append(f"node {node_id}: {type(exc).__name__}: {exc}")
        finally:
            if bind is not None:
                bind(None)
            close = getattr(dest, "close", None)
            if close:
                close()
        # Per-person failures (e.g. a template field one person lacks) are in activation.sync_log; report each kind.
        for err, k in con.execute("""SELECT error, count(*) FROM activation.sync_log WHERE run_id = $r
                AND status = 'failed' AND error IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5""",
                                  {"r": f"{self.run_id}:{node_id}"}).fetchall():
            self.res.errors.append(f"node {node_id}: {k} failed: {err}")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _sent AS
            SELECT w.customer_id, w.journey_entry_no AS entry_no FROM {rel} w
            JOIN _desired d ON d.customer_id = w.customer_id
            JOIN activation.sync_state s ON s.audience = $a AND s.destination = $d AND s.customer_id = w.customer_id
                AND s.present AND s.row_hash = d.row_hash""", {"a": aud_name, "d": dest.name})
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _skipped AS
            SELECT w.customer_id, w.journey_entry_no AS entry_no,
                CASE WHEN g.held_out THEN 'held_out' ELSE g.reason END AS reason
            FROM {rel} w JOIN _gov g ON g.customer_id = w.customer_id WHERE g.reason IS NOT NULL OR g.held_out""")
        con.execute(f"""INSERT INTO _failed SELECT customer_id, journey_entry_no FROM {rel} w
            WHERE (customer_id, journey_entry_no) NOT IN (SELECT customer_id, entry_no FROM _sent)
              AND (customer_id, journey_entry_no) NOT IN (SELECT customer_id, entry_no FROM _skipped)""")
        self.res.failed += con.execute(f"""SELECT count(*) FROM {rel} w
            WHERE (customer_id, journey_entry_no) NOT IN (SELECT customer_id, entry_no FROM _sent)
              AND (customer_id, journey_entry_no) NOT IN (SELECT customer_id, entry_no FROM _skipped)""").fetchall()[0][0]
        return "_sent", "_skipped"

    def _best_time(self, node: SendNode) -> int:
        """Best-time send: people arriving at the node wait (`deferred`, detail `best_time`) until their learned
        local hour (`best_send_hours`: own opens and clicks, the others' as prior, a bandit that keeps exploring),
        moved out of quiet hours to the first allowed hour; already in that hour, or back from the wait: sent now.
        Leaves in `_at` the people to send now."""
        import zlib

        import pandas as pd

        from beacon.personalize.best_time import best_send_hours, local_hours, next_send_times

        con = self.con
        con.execute("""CREATE OR REPLACE TEMP TABLE _bt_in AS SELECT a.*, coalesce(p.tz, 'UTC') AS bt_tz FROM _at a
            LEFT JOIN _people p ON p.customer_id = a.customer_id
            WHERE NOT (a.transition = 'deferred' AND coalesce(a.detail, '') = 'best_time')""")
        people = con.execute("SELECT DISTINCT customer_id, bt_tz AS tz FROM _bt_in ORDER BY 1").df()
        if not len(people):
            return 0
        cols = {r[0] for r in con.execute("""SELECT column_name FROM information_schema.columns
            WHERE table_schema = 'marts' AND table_name = 'fct_email_events'""").fetchall()}
        if cols:  # the year before the warehouse clock, these people only
            msg = "e.message_id" if "message_id" in cols else "NULL::VARCHAR AS message_id"
            engagement = con.execute(f"""SELECT e.customer_id, e.event_name, e.event_at, {msg}
                FROM marts.fct_email_events e WHERE e.customer_id IN (SELECT customer_id FROM _bt_in)
                  AND e.event_name IN ('sent', 'open', 'click') AND e.event_at <= {self.Tl}
                  AND e.event_at > {self.Tl} - INTERVAL 365 DAY""").df()
        else:
            engagement = pd.DataFrame(columns=["customer_id", "event_name", "event_at", "message_id"])
        seed = zlib.crc32(f"{self.j.name}|{node.id}|{self.T}".encode())
        hours = best_send_hours(engagement, people, seed=seed).local_hour.to_numpy()
        if node.quiet_hours:  # a quiet hour becomes the first allowed hour (quiet hours' end)
            q = node.quiet_hours
            first = (q.end.hour + (q.end.minute > 0)) % 24

            def quiet(h: int) -> bool:
                t = time(int(h))
                return (t >= q.start or t < q.end) if q.start > q.end else q.start <= t < q.end

            hours = [first if quiet(h) else int(h) for h in hours]
        now = pd.Series([pd.Timestamp(self.T)] * len(people))
        in_hour = local_hours(now, people.tz) == pd.Series(hours).to_numpy()
        due = next_send_times(now, people.tz, pd.Series(hours)).dt.tz_convert("UTC").dt.tz_localize(None)
        con.register("_bt_df", pd.DataFrame({"customer_id": people.customer_id, "bt_due": due.where(~in_hour)}))
        con.execute("CREATE OR REPLACE TEMP TABLE _bt AS SELECT customer_id, bt_due::TIMESTAMP AS bt_due FROM _bt_df")
        con.unregister("_bt_df")
        src = "_bt_in a JOIN _bt b ON b.customer_id = a.customer_id"
        moved = self.emit(self._move_sql("NULL", outcome="'deferred'", detail="'best_time'", due_override="b.bt_due",
                                         src=src, where="b.bt_due IS NOT NULL"))
        self.res.deferred += moved
        con.execute("""CREATE OR REPLACE TEMP TABLE _at AS SELECT * FROM _at WHERE (customer_id, entry_no) NOT IN
            (SELECT a.customer_id, a.entry_no FROM _bt_in a JOIN _bt b ON b.customer_id = a.customer_id
             WHERE b.bt_due IS NOT NULL)""")
        return moved

    def _send(self, node: SendNode) -> int:
        con, T = self.con, self.Tl
        moved = self._best_time(node) if node.best_time else 0
        if node.quiet_hours:
            q = node.quiet_hours
            allowed = LocalWindow(start=q.end, end=q.start)
            slot = next_slot_sql(T, TZ, allowed)
            con.execute(f"""CREATE OR REPLACE TEMP TABLE _q AS SELECT a.*, {slot} AS slot FROM _at a
                LEFT JOIN _people p ON p.customer_id = a.customer_id""")
            if q.fallback == "skip":
                moved += self.emit(self._move_sql(_lit(node.next), outcome="'skipped'", detail="'quiet_hours'",
                                                  src="_q a", where=f"a.slot > {T}"))
            else:
                moved += self.emit(self._move_sql("NULL", outcome="'deferred'", detail="'quiet_hours'",
                                                  due_override="a.slot", src="_q a", where=f"a.slot > {T}"))
            con.execute(f"CREATE OR REPLACE TEMP TABLE _go AS SELECT * EXCLUDE (slot) FROM _q WHERE slot <= {T}")
            if q.fallback == "next_slot":
                self.res.deferred += con.execute(f"SELECT count(*) FROM _q WHERE slot > {T}").fetchall()[0][0]
        else:
            con.execute("CREATE OR REPLACE TEMP TABLE _go AS SELECT * FROM _at")
        if not con.execute("SELECT count(*) FROM _go").fetchall()[0][0]:
            return moved
        con.execute(f"CREATE OR REPLACE TEMP TABLE _go_t AS SELECT *, {_lit(node.template)} AS journey_template FROM _go")
        sent, skipped = self._deliver(node.id, node.channel, "_go_t", ", journey_template")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _go_out AS SELECT g.*, CASE WHEN s.customer_id IS NOT NULL
                THEN 'sent' ELSE 'skipped' END AS outcome, k.reason FROM _go g
            LEFT JOIN {sent} s ON s.customer_id = g.customer_id AND s.entry_no = g.entry_no
            LEFT JOIN {skipped} k ON k.customer_id = g.customer_id AND k.entry_no = g.entry_no
            WHERE s.customer_id IS NOT NULL OR k.customer_id IS NOT NULL""")
        n = self.emit(self._move_sql(_lit(node.next), outcome="a.outcome", detail="a.reason", src="_go_out a"))
        for outcome, reason, k in con.execute("SELECT outcome, reason, count(*) FROM _go_out GROUP BY 1, 2").fetchall():
            if outcome == "sent":
                self.res.sent += k
            else:
                self.res.skipped[reason] = self.res.skipped.get(reason, 0) + k
        return moved + n

    def _actions(self, node: ActionsNode) -> int:
        con = self.con
        con.execute("CREATE OR REPLACE TEMP TABLE _act AS SELECT * FROM _at")
        for i, a in enumerate(node.actions):
            if a.sales_task or a.webhook:
                # Through a destination (governed and exactly once like a send); not acknowledged: retried.
                sent, skipped = self._deliver(f"{node.id}_{i}", a.sales_task or a.webhook, "_act",
                                              f", {_lit(a.kind)} AS journey_action")
                con.execute(f"""CREATE OR REPLACE TEMP TABLE _act AS SELECT * FROM _act x
                    WHERE (customer_id, entry_no) IN (SELECT customer_id, entry_no FROM {sent}
                                                      UNION ALL SELECT customer_id, entry_no FROM {skipped})""")
        locals_ = [(i, a) for i, a in enumerate(node.actions) if not (a.sales_task or a.webhook)]
        if locals_:
            values = ", ".join(f"({i}, {_lit(a.kind)}, {_lit(str(getattr(a, a.kind)))})" for i, a in locals_)
            con.execute(f"""INSERT INTO journeys.actions
                SELECT md5(concat_ws('|', $j, x.customer_id, x.entry_no, $n, v.i)), $j, x.customer_id, x.entry_no, $n,
                    v.kind, v.value::VARCHAR, $t::TIMESTAMP, $run
                FROM _act x, (VALUES {values}) v(i, kind, value)
                WHERE md5(concat_ws('|', $j, x.customer_id, x.entry_no, $n, v.i)) NOT IN
                    (SELECT action_id FROM journeys.actions WHERE journey = $j)""",
                        {"j": self.j.name, "n": node.id, "t": self.T, "run": self.run_id})
        return self.emit(self._move_sql(_lit(node.next), src="_act a"))


def register_definition(con: duckdb.DuckDBPyConnection, j: Journey, clock) -> None:
    """Keep every version's definition: people in flight finish on the version they entered."""
    con.execute("""INSERT INTO journeys.definitions SELECT ?, ?, ?::JSON, ?::TIMESTAMP WHERE NOT EXISTS (
        SELECT 1 FROM journeys.definitions WHERE journey = ? AND version = ?)""",
                [j.name, j.version, j.model_dump_json(), clock, j.name, j.version])


def definitions(con: duckdb.DuckDBPyConnection, j: Journey) -> dict[int, Journey]:
    """The current definition and every older version that still has people in flight."""
    rows = con.execute("""SELECT d.version, d.definition FROM journeys.definitions d WHERE d.journey = ?
        AND d.version IN (SELECT DISTINCT version FROM journeys.transitions WHERE journey = ?)""",
                       [j.name, j.name]).fetchall()
    defs = {v: Journey.model_validate(json.loads(s)) for v, s in rows}
    defs[j.version] = j
    return defs


def occupancy(con: duckdb.DuckDBPyConnection, journey: str) -> dict[tuple[int, str], int]:
    """People in flight per (version, node)."""
    ensure_tables(con)
    rows = con.execute("""SELECT version, node_id, count(*) FROM journeys.current WHERE journey = ?
        AND transition <> 'exited' GROUP BY 1, 2""", [journey]).fetchall()
    return {(v, n): c for v, n, c in rows}


# The mart every journey run reads (the people); the segments it reads are added per journey.
CORE_RELATIONS = ("marts.dim_customers",)


def missing_relations(con: duckdb.DuckDBPyConnection, journey: Journey, env: Env) -> list[str]:
    """The tables this journey reads that the warehouse does not have yet (sorted)."""
    from beacon.journeys.validate import segments_used

    wanted = set(CORE_RELATIONS) | {env.relation(s) for s in segments_used(journey)}
    have = {f"{a}.{b}" for a, b in con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables").fetchall()}
    return sorted(w for w in wanted if w not in have)


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
        r = _Run(con, journey, definitions(con, journey), clock, run_id, env)
        missing = missing_relations(con, journey, env)
        if missing:
            # A new deployment: the timetable runs journeys before the first warehouse and ML runs build what
            # they read. Decide nothing (no exits on an empty segment) and say what is awaited.
            r.res.waiting_for = missing
            log.warning("journey %s waits: %s not built yet (the warehouse and ML DAGs build them); nothing decided",
                        journey.name, ", ".join(missing))
            con.execute("UPDATE journeys.runs SET finished_at = ?, status = 'waiting', summary = ?::JSON "
                        "WHERE run_id = ?", [datetime.now(), json.dumps(r.res.to_dict()), run_id])
            return r.res
        if not journey.enabled:
            r.res.seconds = 0.0
        else:
            r.run()
        if compact_after is not None:
            compact(con, journey.name, clock - compact_after, run_id)
        con.execute("UPDATE journeys.runs SET finished_at = ?, status = 'succeeded', summary = ?::JSON WHERE run_id = ?",
                    [datetime.now(), json.dumps(r.res.to_dict()), run_id])
        return r.res


def _default_lock() -> Path:
    from beacon.config import settings

    return settings().data_dir / "journeys.lock"


def compact(con: duckdb.DuckDBPyConnection, journey: str, before, run_id: str) -> int:
    """Fold entries that exited at or before `before` into one row each (journeys.finished); returns how many."""
    con.execute("""CREATE OR REPLACE TEMP TABLE _done AS SELECT customer_id, entry_no FROM journeys.current
        WHERE journey = ? AND transition = 'exited' AND occurred_at <= ?::TIMESTAMP""", [journey, before])
    n = con.execute("SELECT count(*) FROM _done").fetchall()[0][0]
    if not n:
        return 0
    with transaction(con):
        con.execute("""INSERT INTO journeys.finished
            SELECT journey, arg_max(version, step), customer_id, entry_no, any_value(entry_key), arg_max(arm, step),
                min(entered_at), max(occurred_at) FILTER (WHERE transition = 'exited'),
                arg_max(node_id, step), arg_max(detail, step), count(*) FILTER (WHERE transition = 'sent'),
                max(step), ?
            FROM journeys.transitions WHERE journey = ? AND (customer_id, entry_no) IN (SELECT * FROM _done)
            GROUP BY journey, customer_id, entry_no""", [run_id, journey])
        con.execute("""DELETE FROM journeys.transitions WHERE journey = ?
            AND (customer_id, entry_no) IN (SELECT * FROM _done)""", [journey])
    return n
