"""One advance of one journey at warehouse clock T: the run's state machine.

Exits and goals for everyone in flight; new entries; then hops: every entry due at a node (arrived,
due_at <= T) moves on by one node, all entries of one node in one statement (the node type's step, see
`beacon.journeys.nodes`), until nobody is due (no loop without a wait, so at most one hop per node).

A dry run (`dry_run=True`) computes the same entries and decisions but writes nothing to the warehouse:
log rows only move the run's own temp table `_cur`, and steps that act (sends, actions) are not taken.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from beacon.audiences import Audience
from beacon.journeys import entry, experiment
from beacon.journeys.errors import JourneyRuntimeError
from beacon.journeys.fields import parse_duration
from beacon.journeys.model import Journey
from beacon.journeys.nodes import handler
from beacon.journeys.sql import CARRY, WAITING, lit
from beacon.journeys.store import load_people
from beacon.warehouse import table_exists, transaction


@dataclass
class Env:
    """What an advance needs from outside: destinations per channel, the audiences (priority arbitration) and
    where each segment lives. Tests pass doubles; the DAG and CLI build the real ones (see `default_env`)."""

    destination: Callable[[str], object]
    audiences: list[Audience] = field(default_factory=list)
    relations: dict[str, str] = field(default_factory=dict)  # segment name -> schema.table
    policy: Callable[[object], object] | None = None  # destination -> ChannelPolicy (None: the house default)
    templates_dir: Path | None = None  # the send templates (None: <home>/journeys/templates)
    outcome_window_days: float | None = None  # experiments' outcome window (None: BEACON_MEASUREMENT_WINDOW_DAYS)

    def window_days(self) -> float:
        if self.outcome_window_days is not None:
            return float(self.outcome_window_days)
        from beacon.config import settings

        return settings().measurement_window_days

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
    experiments: dict[str, str] = field(default_factory=dict)  # split node -> what its winner rule found now
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Run:
    """One advance of one journey (all its versions in flight) at clock T."""

    def __init__(self, con: duckdb.DuckDBPyConnection, journey: Journey, defs: dict[int, Journey], clock,
                 run_id: str, env: Env, dry_run: bool = False):
        if isinstance(clock, str):
            clock = datetime.fromisoformat(clock)
        self.con, self.j, self.defs, self.T, self.run_id, self.env = con, journey, defs, clock, run_id, env
        self.dry_run = dry_run
        self.res = RunResult(journey=journey.name, run_id=run_id, clock=str(clock))
        self.Tl = lit(clock)

    # -- writing ---------------------------------------------------------------------------------------

    def emit(self, moves_sql: str) -> int:
        """Write the outcome and arrival rows of a set of moves.

        `moves_sql` yields CARRY columns plus node_id, outcome (NULL: none), detail, next_node (NULL: stays),
        due_override (the due time of an outcome row, e.g. a deferred send's slot); see `sql.move_sql`."""
        con = self.con
        con.execute(f"CREATE OR REPLACE TEMP TABLE _moves AS {moves_sql}")
        n = con.execute("SELECT count(*) FROM _moves").fetchall()[0][0]
        if not n:
            return 0
        exit_node = "m.next_node IN (SELECT node_id FROM _exits WHERE version = m.version)"
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _rows AS
            SELECT customer_id, entry_no, version, entered_at, entry_key, arm, step + 1 AS step, node_id,
                outcome AS transition, coalesce(due_override, {self.Tl}) AS due_at, detail
            FROM _moves WHERE outcome IS NOT NULL
            UNION ALL
            SELECT m.customer_id, m.entry_no, m.version, m.entered_at, m.entry_key, m.arm,
                m.step + 1 + (m.outcome IS NOT NULL)::INTEGER, m.next_node,
                CASE WHEN {exit_node} THEN 'exited' ELSE 'arrived' END,
                {self.arrival_due_sql()}, CASE WHEN {exit_node} THEN 'exit_node' END
            FROM _moves m LEFT JOIN _people p ON p.customer_id = m.customer_id
            WHERE m.next_node IS NOT NULL""")
        self.append("_rows")
        return n

    def append(self, rows: str) -> None:
        """Append the log rows in temp table `rows` (CARRY columns, node_id, transition, due_at, detail)."""
        self._append(rows)

    def _append(self, rows: str) -> None:
        con = self.con
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _ins AS
            SELECT md5(concat_ws('|', $j, r.customer_id, r.entry_no, r.step, r.transition)) AS transition_id,
                $j AS journey, r.version, r.customer_id, r.entry_no, r.step, r.node_id, r.transition, r.arm, r.due_at,
                $t::TIMESTAMP AS occurred_at, $run AS run_id, r.entry_key, r.entered_at, r.detail
            FROM {rows} r""", {"j": self.j.name, "t": self.T, "run": self.run_id})
        with transaction(con):
            if not self.dry_run:
                # Anti-join on the deterministic id: a re-run after a crash writes nothing twice.
                con.execute("""INSERT INTO journeys.transitions SELECT * FROM _ins i WHERE NOT EXISTS (
                    SELECT 1 FROM journeys.transitions t WHERE t.journey = i.journey AND t.customer_id = i.customer_id
                        AND t.entry_no = i.entry_no AND t.transition_id = i.transition_id)""")
            # `_cur` (latest row per entry, this journey) follows the log.
            con.execute("""DELETE FROM _cur WHERE (customer_id, entry_no) IN (SELECT customer_id, entry_no FROM _ins)""")
            con.execute("""INSERT INTO _cur SELECT * FROM _ins
                QUALIFY row_number() OVER (PARTITION BY customer_id, entry_no ORDER BY step DESC) = 1""")

    def arrival_due_sql(self) -> str:
        """Due time of an arrival at m.next_node (people joined as p): now, or when its wait ends."""
        cases = []
        for v, d in self.defs.items():
            for n in d.nodes:
                expr = handler(n).arrival_due(self, n)
                if expr:
                    cases.append(f"WHEN m.version = {v} AND m.next_node = {lit(n.id)} THEN {expr}")
        return f"CASE {' '.join(cases)} ELSE {self.Tl} END" if cases else self.Tl

    # -- the run ---------------------------------------------------------------------------------------

    def setup(self) -> None:
        """The run's working tables: people, exit nodes, the latest row per entry, failed deliveries."""
        con = self.con
        load_people(con)
        exits = [(v, n.id) for v, d in self.defs.items() for n in d.nodes if handler(n).exits]
        con.execute("CREATE OR REPLACE TEMP TABLE _exits (version INTEGER, node_id VARCHAR)")
        if exits:
            con.execute("INSERT INTO _exits VALUES " + ", ".join(f"({v}, {lit(i)})" for v, i in exits))
        con.execute("""CREATE OR REPLACE TEMP TABLE _cur AS SELECT * FROM journeys.transitions WHERE journey = ?
            QUALIFY row_number() OVER (PARTITION BY customer_id, entry_no ORDER BY step DESC) = 1""", [self.j.name])
        con.execute("CREATE OR REPLACE TEMP TABLE _failed (customer_id VARCHAR, entry_no INTEGER)")

    def run(self) -> RunResult:
        if self.dry_run:
            raise ValueError("a dry run only enters and labels (see beacon.journeys.engine.dry_run); it never hops")
        t0 = _time.perf_counter()
        self.setup()
        self._migrate()
        self._exits_and_goals()
        self._experiments()
        self.res.entered = entry.enter(self)
        max_hops = max(len(d.nodes) for d in self.defs.values()) + 2
        for _ in range(max_hops):
            moved = self._hop()
            if not moved:
                break
            self.res.hops += 1
            self.res.moved += moved
        self.res.seconds = round(_time.perf_counter() - t0, 3)
        return self.res

    def _experiments(self) -> None:
        """Before entries: each split with a winner rule and no winner yet looks at its figures (and records a
        decision that says something new), so this run's entrants already follow it."""
        for node in experiment.experiment_nodes(self.j):
            if experiment.state(self.con, self.j.name, node.id).winner:
                self.res.experiments[node.id] = "decided earlier"
                continue
            lk = experiment.look(self.con, self.j, node, self.T, self.env.window_days(), self.run_id)
            self.res.experiments[node.id] = ("decided: " if lk.recorded else "") + lk.reason

    def _active(self, where: str = "true") -> str:
        return f"SELECT * FROM _cur WHERE transition <> 'exited' AND ({where})"

    def _migrate(self) -> None:
        """People on an older version at a node the current version maps move to the mapped node."""
        j = self.j
        maps = {k: v for k, v in j.migrate.items() if v is not None}
        if not maps:
            return
        values = ", ".join(f"({lit(k)}, {lit(v)})" for k, v in maps.items())
        self.emit(f"""SELECT c.customer_id, c.entry_no, {j.version} AS version, c.entered_at, c.entry_key, c.arm, c.step,
                c.node_id, 'migrated' AS outcome, 'from version ' || c.version AS detail, m.target AS next_node,
                NULL::TIMESTAMP AS due_override
            FROM ({self._active(f'version < {j.version}')}) c JOIN (VALUES {values}) m(source, target)
                ON m.source = c.node_id""")

    def _exit_checks(self) -> list[tuple[str, str]]:
        """(reason, SQL condition on the entry `c`) of the journey's goal and exit criteria."""
        j, T = self.j, self.Tl
        checks = []
        if j.goal:
            within = lit(parse_duration(j.goal.within))
            checks.append(("goal", f"""EXISTS (SELECT 1 FROM journeys.events e WHERE e.customer_id = c.customer_id
                AND e.event_name = {lit(j.goal.event)} AND e.event_at > c.entered_at
                AND e.event_at <= least(c.entered_at + {within}, {T}))"""))
        if "left_audience" in j.exit_when:
            aud = j.entry.audience or (j.entry.schedule.audience if j.entry.schedule else None)
            if aud:
                checks.append(("left_audience",
                               f"c.customer_id NOT IN (SELECT customer_id::VARCHAR FROM {self.env.relation(aud)})"))
        has_sup = table_exists(self.con, "activation", "suppression_list")
        if "unsubscribed" in j.exit_when:
            sup = ("OR c.customer_id IN (SELECT customer_id FROM activation.suppression_list WHERE reason = "
                   "'unsubscribed' AND customer_id IS NOT NULL)") if has_sup else ""
            checks.append(("unsubscribed", f"""(EXISTS (SELECT 1 FROM journeys.events e
                WHERE e.customer_id = c.customer_id AND e.event_name = 'email_unsubscribe'
                AND e.event_at > c.entered_at AND e.event_at <= {T}) {sup})"""))
        if "erased" in j.exit_when and has_sup:
            checks.append(("erased", "c.customer_id IN (SELECT customer_id FROM activation.suppression_list "
                                     "WHERE reason = 'erased' AND customer_id IS NOT NULL)"))
        return checks

    def _exits_and_goals(self) -> None:
        """Goals and exit criteria end an entry at this run, whatever node it is at."""
        checks = self._exit_checks()
        if not checks:
            return
        reason = "CASE " + " ".join(f"WHEN {sql} THEN {lit(name)}" for name, sql in checks) + " END"
        self.emit(f"""SELECT * FROM (SELECT {CARRY}, c.node_id, 'exited' AS outcome, {reason} AS detail,
                NULL AS next_node, NULL::TIMESTAMP AS due_override FROM ({self._active()}) c) WHERE detail IS NOT NULL""")
        for k, n in self.con.execute("SELECT detail, count(*) FROM _moves GROUP BY 1").fetchall():
            self.res.exited[k] = self.res.exited.get(k, 0) + n

    def _hop(self) -> int:
        """Move every due entry on by one node; returns how many moved."""
        con, T = self.con, self.Tl
        early = []
        for v, d in self.defs.items():
            for n in d.nodes:
                cond = handler(n).woken(self, n, "c")
                if cond:
                    early.append(f"(c.version = {v} AND c.node_id = {lit(n.id)} AND {cond})")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _due AS SELECT c.* FROM _cur c
            WHERE c.transition IN {WAITING} AND (c.due_at <= {T} OR {' OR '.join(early) or 'false'})
              AND (c.customer_id, c.entry_no) NOT IN (SELECT customer_id, entry_no FROM _failed)""")
        by_node = con.execute("SELECT version, node_id, count(*) FROM _due GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
        moved = 0
        for v, node_id, _ in by_node:
            node = self.node(v, node_id)
            con.execute(f"CREATE OR REPLACE TEMP TABLE _at AS SELECT * FROM _due WHERE version = {v} "
                        f"AND node_id = {lit(node_id)}")
            moved += handler(node).step(self, node)
        return moved

    def node(self, version: int, node_id: str):
        d = self.defs.get(version)
        if d is None or node_id not in d.node_ids:
            raise JourneyRuntimeError(f"journey {self.j.name}: people are at node {node_id!r} of version {version}, "
                                      "which is not defined (register the old version or map it in `migrate`)")
        return d.node(node_id)
