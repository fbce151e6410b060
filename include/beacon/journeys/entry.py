"""Who enters a journey at a run: the candidates of each entry kind (audience, event, date, schedule) and the
re-entry rules, caps and one-entry-in-flight rule over them. Writes `_entry_rows` (the first log row of each
new entry) through the run."""

from __future__ import annotations

from datetime import datetime

from beacon.journeys.fields import parse_duration
from beacon.journeys.sql import TZ, lit, q, to_utc

NOBODY = "SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS entry_key WHERE false"


def last_run_clock(run) -> datetime | None:
    """The clock of this journey's last finished run before this one (entries count events after it)."""
    return run.con.execute("""SELECT max(clock) FROM journeys.runs WHERE journey = ? AND status = 'succeeded'
        AND clock < ?::TIMESTAMP""", [run.j.name, run.T]).fetchall()[0][0]


def _date_candidates(run, since: datetime | None) -> str:
    d, T = run.j.entry.date, run.Tl
    lo = lit(since) if since else f"{T} - INTERVAL 1 DAY"
    base = f"(p.{q(d.attribute)}::DATE + {int(d.offset_days)})"
    if d.annual:
        # This year's and last year's anniversary (a run near New Year sees both).
        inst = [f"({base} + to_years(year({T})::INTEGER + {k} - year({base})::INTEGER))" for k in (-1, 0)]
    else:
        inst = [base]
    parts = [f"""SELECT p.customer_id, year({x})::VARCHAR AS entry_key, {to_utc(f'{x}::DATE + {lit(d.at)}', TZ)}
            AS entry_at FROM _people p WHERE p.{q(d.attribute)} IS NOT NULL""" for x in inst]
    return f"""SELECT customer_id, min(entry_key) AS entry_key FROM ({' UNION ALL '.join(parts)})
        WHERE entry_at > {lo} AND entry_at <= {T} GROUP BY customer_id"""


def candidates_sql(run) -> str:
    """SELECT customer_id, entry_key: who qualifies for entry at this run."""
    e, T, since = run.j.entry, run.Tl, last_run_clock(run)
    if e.audience:
        return f"SELECT customer_id::VARCHAR AS customer_id, NULL::VARCHAR AS entry_key FROM {run.env.relation(e.audience)}"
    if e.event:
        lo = lit(since) if since else f"{T} - {lit(parse_duration(e.event.lookback))}"
        key = "event_key" if e.event.dedupe_key == "event_key" else "NULL::VARCHAR"
        return f"""SELECT customer_id, arg_min({key}, (event_at, event_key)) AS entry_key FROM journeys.events
            WHERE event_name = {lit(e.event.name)} AND event_at > {lo} AND event_at <= {T}
            AND customer_id IS NOT NULL GROUP BY customer_id"""
    if e.date:
        return _date_candidates(run, since)
    s = e.schedule
    start, every = datetime.fromisoformat(s.start), parse_duration(s.every)
    if run.T < start:
        return NOBODY
    occ = start + int((run.T - start) / every) * every
    if occ <= (since or run.T - every):
        return NOBODY
    return f"SELECT customer_id::VARCHAR AS customer_id, {lit(occ.isoformat())} AS entry_key FROM {run.env.relation(s.audience)}"


def enter(run) -> int:
    """New entries at the start node (written through `run.append`); returns how many."""
    j, e, T, con = run.j, run.j.entry, run.Tl, run.con
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
            AND h.exited_at > {T} - {lit(parse_duration(e.cooldown)) if e.cooldown else 'INTERVAL 0 DAY'})""",
        "once_per_event_key": """NOT EXISTS (SELECT 1 FROM _hist h WHERE h.customer_id = c.customer_id
            AND h.entry_key IS NOT DISTINCT FROM c.entry_key)""",
    }[e.re_entry]
    limit = ""
    if e.cap_per_run or e.max_active:
        active = con.execute("SELECT count(*) FROM _cur WHERE transition <> 'exited'").fetchall()[0][0]
        caps = [x for x in (e.cap_per_run, (e.max_active - active) if e.max_active else None) if x is not None]
        limit = f"ORDER BY md5({lit(j.name)} || c.customer_id) LIMIT {max(0, min(caps))}"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _new_entries AS
        SELECT c.customer_id::VARCHAR AS customer_id, c.entry_key::VARCHAR AS entry_key,
            coalesce((SELECT max(entry_no) FROM _hist h
            WHERE h.customer_id = c.customer_id), 0) + 1 AS entry_no
        FROM ({candidates_sql(run)}) c
        WHERE c.customer_id IS NOT NULL
          -- One entry in flight per person, whatever the re-entry rule.
          AND NOT EXISTS (SELECT 1 FROM _hist h WHERE h.customer_id = c.customer_id AND NOT h.done)
          AND {rule}
        {limit}""")
    # The start node's due time is an arrival's: a journey may start with a wait.
    start = lit(j.start)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _entry_rows AS
        SELECT m.customer_id, m.entry_no::INTEGER AS entry_no, {j.version} AS version, {T} AS entered_at,
            m.entry_key, NULL::VARCHAR AS arm, 1 AS step, {start} AS node_id,
            CASE WHEN {start} IN (SELECT node_id FROM _exits WHERE version = {j.version})
                 THEN 'exited' ELSE 'entered' END AS transition, {run.arrival_due_sql()} AS due_at,
            NULL::VARCHAR AS detail
        FROM (SELECT *, {start} AS next_node, {j.version} AS version FROM _new_entries) m
        LEFT JOIN _people p ON p.customer_id = m.customer_id""")
    run.append("_entry_rows")
    return con.execute("SELECT count(*) FROM _entry_rows").fetchall()[0][0]
