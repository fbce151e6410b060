"""Where the journeys keep their state: the tables (DDL), the definitions per version, occupancy, compaction,
the events view and the run's people table.

State is the append-only log `journeys.transitions`: one row per thing that happened to one entry of one
person, numbered by `step` within the entry, with a deterministic `transition_id`. Where everyone is now is
the latest row of each entry (`journeys.current`). Finished entries are compacted into one row each
(`journeys.finished`) so the log holds active people.
"""

from __future__ import annotations

import json
import logging

import duckdb

from beacon.journeys.experiment import DECISIONS_DDL
from beacon.journeys.model import Journey
from beacon.warehouse import relation_kind, sql_literal, table_exists, transaction

log = logging.getLogger(__name__)

LOG_COLUMNS = """transition_id VARCHAR, journey VARCHAR, version INTEGER, customer_id VARCHAR, entry_no INTEGER,
    step INTEGER, node_id VARCHAR, transition VARCHAR, arm VARCHAR, due_at TIMESTAMP, occurred_at TIMESTAMP,
    run_id VARCHAR, entry_key VARCHAR, entered_at TIMESTAMP, detail VARCHAR"""
EVENT_COLUMNS = "customer_id VARCHAR, event_name VARCHAR, event_at TIMESTAMP, event_key VARCHAR"
# The marts journeys.events reads, and the people every run reads (one row per customer).
EVENT_MARTS = (("marts", "fct_web_events"), ("marts", "fct_email_events"))
PROFILE = ("marts", "customer_profile")


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
    con.execute(DECISIONS_DDL)
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
    ensure_events(con)


_MART_EVENTS = """SELECT customer_id, event_name, event_at, coalesce(product_id, webinar_id, message_id) AS event_key
    FROM marts.fct_web_events WHERE customer_id IS NOT NULL
    UNION ALL
    SELECT customer_id, 'email_' || event_name, event_at, campaign_id FROM marts.fct_email_events
    WHERE customer_id IS NOT NULL"""


PLACEHOLDER = "journeys.events placeholder: replaced by the view over the event marts once they exist"


def _events_kind(con: duckdb.DuckDBPyConnection) -> str | None:
    """'view', 'placeholder' (the empty table made before the marts existed), 'table' (one someone filled on
    purpose: tests, simulations) or None: what `journeys.events` is now."""
    found = relation_kind(con, "journeys", "events")
    if found is None:
        return None
    kind, comment = found
    if kind == "VIEW":
        return "view"
    empty = not con.execute("SELECT count(*) FROM journeys.events").fetchall()[0][0]
    return "placeholder" if comment == PLACEHOLDER and empty else "table"


def ensure_events(con: duckdb.DuckDBPyConnection) -> None:
    """`journeys.events` (customer_id, event_name, event_at, event_key): a view over the event marts when they
    exist; until then an empty placeholder table (tests and simulations may fill it, or make their own table).

    Checked on every call, so a deployment whose journeys run before the warehouse DAG built the marts reads
    them from the first run after they appear: the placeholder, still empty, is replaced by the view. A table
    that holds rows is left alone (someone filled it on purpose)."""
    kind = _events_kind(con)
    if kind in ("view", "table"):
        return
    if not all(table_exists(con, s, t) for s, t in EVENT_MARTS):
        if kind is None:
            con.execute(f"CREATE TABLE journeys.events ({EVENT_COLUMNS})")
            con.execute(f"COMMENT ON TABLE journeys.events IS {sql_literal(PLACEHOLDER)}")
        return
    with transaction(con):
        if kind == "placeholder":
            con.execute("DROP TABLE journeys.events")
        con.execute(f"CREATE VIEW journeys.events AS {_MART_EVENTS}")
    log.info("journeys.events now reads marts.fct_web_events and marts.fct_email_events")


def load_people(con: duckdb.DuckDBPyConnection) -> None:
    """Temp table `_people`: marts.customer_profile (one row per person: attributes, lead points, lifecycle stage,
    time zone) for the conditions, waits and local times of one run; empty while the mart is not built."""
    if table_exists(con, *PROFILE):
        con.execute("CREATE OR REPLACE TEMP TABLE _people AS SELECT * FROM marts.customer_profile")
    else:
        con.execute("""CREATE OR REPLACE TEMP TABLE _people AS
            SELECT NULL::VARCHAR AS customer_id, 'UTC' AS time_zone WHERE false""")


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
