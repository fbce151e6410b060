"""Experiments that decide: a `split` with a `winner:` block picks its winning arm from the warehouse.

At every advance (before entries), for each split of the current version with a winner rule and no winner yet,
`look` counts per arm the people assigned there (the arm is on the log rows of the split, `journeys.transitions`,
and on compacted entries, `journeys.finished`) and their outcomes in the measurement window after entry, with
the measurement code's own definition (the dbt macro `exposure_outcomes` over `measurement.campaign_outcome_events`,
rendered by `beacon.measure.outcomes`), counting only events up to the warehouse clock of the run. Guardrails
count people with the guardrail's email event (unsubscribe, complaint, bounce) in the same window
(`journeys.events`). `beacon.measure.experiments.decide` judges on always-valid intervals; a decision that says
something new (a winner, or an arm newly breaching a guardrail) is appended to `journeys.experiment_decisions`,
once (a deterministic `decision_id`).

Routing (`split_cases`): people who were assigned at this split before (any entry) keep their arm. New entrants
whose stable hash falls in the control arm stay in control (the control keeps its share, so lift stays
measurable); the others go to the winner, or, after a guardrail breach without a winner, to the arms left, in
proportion to their weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from beacon.journeys.sql import lit
from beacon.measure.experiments import ArmCounts, Decision, WinnerRule, decide
from beacon.warehouse import table_exists, transaction

if TYPE_CHECKING:  # the split node imports this module while a journey is validated at DAG-parse time
    import duckdb

DECISIONS_DDL = """CREATE TABLE IF NOT EXISTS journeys.experiment_decisions (decision_id VARCHAR, journey VARCHAR,
    version INTEGER, node_id VARCHAR, decided_at TIMESTAMP, winner VARCHAR, breached JSON, control VARCHAR,
    metric VARCHAR, arms JSON, comparisons JSON, method VARCHAR, reason VARCHAR, rule JSON, run_id VARCHAR)"""
# A guardrail is the share of people with this email event (journeys.events) in the window after entry.
GUARDRAIL_EVENTS = {"unsubscribed": "email_unsubscribe", "complained": "email_complaint", "bounced": "email_bounce"}
OUTCOME_EVENTS = ("measurement", "campaign_outcome_events")
CONTROL = "control"  # the name the control arm is recorded under


def rule_of(node) -> WinnerRule:
    """The split's parsed winner rule (the node was validated, so this does not fail)."""
    return WinnerRule.from_config(node.winner, "winner")


def check_guardrails(rule: WinnerRule) -> None:
    bad = [g for g in rule.guardrails if g not in GUARDRAIL_EVENTS]
    if bad:
        raise ValueError(f"winner.guardrails: unknown {bad}; known: {', '.join(GUARDRAIL_EVENTS)}")


@dataclass
class State:
    """What the recorded decisions of one split say: the winner (if any) and the arms that breached a guardrail."""

    winner: str | None = None
    breached: dict[str, str] = field(default_factory=dict)

    @property
    def routes(self) -> bool:
        return bool(self.winner or self.breached)


def state(con: duckdb.DuckDBPyConnection, journey: str, node_id: str) -> State:
    st = State()
    if not table_exists(con, "journeys", "experiment_decisions"):
        return st
    for winner, breached in con.execute("""SELECT winner, breached FROM journeys.experiment_decisions
            WHERE journey = ? AND node_id = ? ORDER BY decided_at""", [journey, node_id]).fetchall():
        st.winner = st.winner or winner
        st.breached.update(json.loads(breached) if breached else {})
    return st


def arm_names(node) -> list[str]:
    return [a.name for a in node.arms] + ([CONTROL] if node.control else [])


def weighted_arms(node, st: State | None = None) -> list[tuple[str, float, str]]:
    """(name, weight, next) in hash order, control last. After a decision the competing arms' share goes to the
    winner (or to the arms left after a breach, pro rata); the control's weight and place never change, so the
    same people fall in control before and after."""
    arms = [(a.name, a.weight, a.next) for a in node.arms]
    if st is not None and st.routes:
        share = sum(w for _, w, _ in arms)
        keep = [x for x in arms if x[0] == st.winner] if st.winner else [x for x in arms if x[0] not in st.breached]
        kept = sum(w for _, w, _ in keep)
        arms = [(n, w * share / kept, nxt) for n, w, nxt in keep] if keep else arms
    if node.control:
        arms.append((CONTROL, node.control.weight, node.control.next))
    return arms


def hash_cases(journey: str, node, arms: list[tuple[str, float, str]]) -> tuple[str, str]:
    total = sum(w for _, w, _ in arms)
    # Sticky: a stable hash of (journey, split node, person) picks the same arm on every entry and run.
    u = f"(('0x' || substr(md5({lit(journey)} || ':' || {lit(node.id)} || ':' || a.customer_id), 1, 8))" \
        f"::UBIGINT / 4294967296.0)"
    cases_arm, cases_next, acc = [], [], 0.0
    for i, (name, w, nxt) in enumerate(arms):
        acc += w / total
        bound = "2" if i == len(arms) - 1 else repr(acc)
        cases_arm.append(f"WHEN {u} < {bound} THEN {lit(name)}")
        cases_next.append(f"WHEN {u} < {bound} THEN {lit(nxt)}")
    return f"CASE {' '.join(cases_arm)} END", f"CASE {' '.join(cases_next)} END"


def assignments_sql(journey: str, node) -> str:
    """One row per person ever assigned at this split: customer_id, arm (their first), exposed_at (entry time)."""
    names = ", ".join(lit(n) for n in arm_names(node))
    return f"""SELECT customer_id, arg_min(arm, entered_at) AS arm, min(entered_at) AS exposed_at FROM (
            SELECT customer_id, arm, entered_at FROM journeys.transitions WHERE journey = {lit(journey)}
                AND node_id = {lit(node.id)} AND transition = 'assigned' AND arm IS NOT NULL
            UNION ALL
            SELECT customer_id, arm, entered_at FROM journeys.finished WHERE journey = {lit(journey)}
                AND arm IN ({names}))
        GROUP BY customer_id"""


def split_cases(con: duckdb.DuckDBPyConnection, journey: str, node) -> tuple[str, str]:
    """(SQL of the arm, SQL of the next node) for the person `a` at this split, following its decisions."""
    plain = hash_cases(journey, node, weighted_arms(node))
    if getattr(node, "winner", None) is None:
        return plain
    st = state(con, journey, node.id)
    if not st.routes:
        return plain
    routed = hash_cases(journey, node, weighted_arms(node, st))
    before = f"a.customer_id IN (SELECT customer_id FROM ({assignments_sql(journey, node)}))"
    return (f"CASE WHEN {before} THEN {plain[0]} ELSE {routed[0]} END",
            f"CASE WHEN {before} THEN {plain[1]} ELSE {routed[1]} END")


def arm_counts(con: duckdb.DuckDBPyConnection, journey: str, node, clock: datetime, window_days: float,
               rule: WinnerRule) -> tuple[dict[str, ArmCounts], datetime | None]:
    """Per arm (every arm of the split, control included): people, the metric's sum and sum of squares, and the
    guardrail counts, from outcomes up to `clock`; and when the first person was assigned (None: nobody yet)."""
    from beacon.measure.outcomes import (  # pandas: at run time, never at parse time
        in_window_sql,
        outcomes_sql,
    )

    T = lit(clock)
    events = f"(SELECT * FROM {'.'.join(OUTCOME_EVENTS)} WHERE occurred_at <= {T})"
    exposures = f"(SELECT * FROM ({assignments_sql(journey, node)}) WHERE exposed_at <= {T})"
    out = f"({outcomes_sql(exposures, events, window_days, keys=('customer_id',))})"
    metric = {"converted": "o.converted", "clicked": "(o.clicks > 0)::INTEGER", "revenue": "o.revenue"}[rule.metric]
    guards = ", ".join(
        f"""count(*) FILTER (WHERE EXISTS (SELECT 1 FROM journeys.events e WHERE e.customer_id = o.customer_id
            AND e.event_name = {lit(GUARDRAIL_EVENTS[g])} AND e.event_at <= {T}
            AND {in_window_sql('e.event_at', 'o.exposed_at', window_days)})) AS {g}""" for g in rule.guardrails)
    rows = con.execute(f"""SELECT o.arm, count(*) AS people, sum({metric})::DOUBLE AS total,
            sum(({metric}) * ({metric}))::DOUBLE AS total_sq, min(o.exposed_at) AS first{', ' + guards if guards else ''}
        FROM {out} o GROUP BY o.arm""").fetchall()
    counts = {a: ArmCounts(0, 0.0, 0.0, dict.fromkeys(rule.guardrails, 0)) for a in arm_names(node)}
    started = None
    for arm, people, total, sq, first, *g in rows:
        if arm in counts:
            counts[arm] = ArmCounts(int(people), float(total or 0), float(sq or 0),
                                    dict(zip(rule.guardrails, (int(x) for x in g), strict=True)))
            started = first if started is None else min(started, first)
    return counts, started


@dataclass
class Look:
    """One look at one split's experiment: the decision (None while the outcomes are not built or nobody was
    assigned yet, with the reason) and whether this look recorded it."""

    node_id: str
    decision: Decision | None
    reason: str
    recorded: bool = False


def look(con: duckdb.DuckDBPyConnection, journey, node, clock: datetime, window_days: float, run_id: str = "",
         record: bool = True) -> Look:
    """Count, decide, and (with `record`) append the decision if it says something new."""
    if not table_exists(con, *OUTCOME_EVENTS):
        return Look(node.id, None, f"waiting for {'.'.join(OUTCOME_EVENTS)} (the warehouse DAG builds it)")
    rule = rule_of(node)
    counts, started = arm_counts(con, journey.name, node, clock, window_days, rule)
    if started is None:
        return Look(node.id, None, "nobody assigned yet")
    d = decide(counts, rule, now=clock, started_at=started, control=CONTROL if node.control else None)
    st = state(con, journey.name, node.id)
    new = d.decided and ((d.winner and not st.winner) or bool(set(d.breached) - set(st.breached)))
    if not (record and new):
        return Look(node.id, d, d.reason)
    _record(con, journey, node, d, rule, run_id)
    return Look(node.id, d, d.reason, recorded=True)


def _record(con: duckdb.DuckDBPyConnection, journey, node, d: Decision, rule: WinnerRule, run_id: str) -> None:
    key = f"{journey.name}|{node.id}|{d.winner}|{json.dumps(sorted(d.breached))}"
    decision_id = hashlib.md5(key.encode()).hexdigest()
    with transaction(con):
        con.execute("""INSERT INTO journeys.experiment_decisions SELECT ?, ?, ?, ?, ?::TIMESTAMP, ?, ?::JSON, ?, ?,
                ?::JSON, ?::JSON, ?, ?, ?::JSON, ? WHERE NOT EXISTS (
                SELECT 1 FROM journeys.experiment_decisions WHERE decision_id = ?)""",
                    [decision_id, journey.name, journey.version, node.id, d.at, d.winner, json.dumps(d.breached),
                     CONTROL if node.control else None, d.metric, json.dumps(d.arms), json.dumps(d.comparisons),
                     d.method, d.reason, json.dumps(node.winner, default=str), run_id, decision_id])


def experiment_nodes(journey) -> list:
    return [n for n in journey.nodes if n.type == "split" and getattr(n, "winner", None) is not None]


def decisions(con: duckdb.DuckDBPyConnection, journey: str) -> list[dict]:
    """The recorded decisions of a journey, oldest first."""
    if not table_exists(con, "journeys", "experiment_decisions"):
        return []
    df = con.execute("""SELECT node_id, decided_at, winner, breached, control, metric, arms, comparisons, method,
            reason, rule, run_id, version FROM journeys.experiment_decisions WHERE journey = ?
        ORDER BY decided_at, node_id""", [journey]).df()
    recs = df.to_dict("records")
    for r in recs:
        for k in ("breached", "arms", "comparisons", "rule"):
            r[k] = json.loads(r[k]) if r[k] else None
        r["decided_at"] = str(r["decided_at"])
    return recs


def status(con: duckdb.DuckDBPyConnection, journey, clock: datetime | None, window_days: float) -> list[dict]:
    """Per split with a winner rule: its rule, state (undecided, guardrail breached, decided), the recorded
    decisions, and what `decide` says now at `clock` (the journey's last run; nothing is recorded). `reason`,
    `arms` and `decided_at` are the latest decision's, or the current look's while undecided."""
    recorded = decisions(con, journey.name)
    out = []
    for node in experiment_nodes(journey):
        mine = [r for r in recorded if r["node_id"] == node.id]
        st = state(con, journey.name, node.id)
        now = None
        if clock is not None:
            lk = look(con, journey, node, clock, window_days, record=False)
            now = {"clock": str(clock), "reason": lk.reason, "arms": lk.decision.arms if lk.decision else None,
                   "comparisons": lk.decision.comparisons if lk.decision else []}
        latest = mine[-1] if mine else None
        shown = latest or now or {}
        out.append({"node": node.id, "rule": json.loads(json.dumps(node.winner, default=str)),
                    "metric": rule_of(node).metric, "control": CONTROL if node.control else None,
                    "state": "decided" if st.winner else ("guardrail breached" if st.breached else "undecided"),
                    "winner": st.winner, "breached": st.breached,
                    "decided_at": latest["decided_at"] if latest else None,
                    "reason": shown.get("reason") or "not looked at yet (no run)",
                    "arms": [{"arm": a, **v} for a, v in (shown.get("arms") or {}).items()],
                    "decisions": mine, "now": now})
    return out
