"""Journeys benchmark: N synthetic people spread over the built-in journeys, on a DuckDB file.

Measures (1) one advance run of every built-in journey at one clock (the first run enters everyone who
qualifies, the heaviest), and (2) a stretch of simulated days with new cart adds and orders every day,
recording after each day the state's size: rows of the log, active entries and bytes per active person
(the file's growth over the synthetic warehouse, after a checkpoint, and DuckDB's estimate of the journeys
tables). Compaction runs as in production (entries finished for 7 days fold into one row).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from beacon.journeys.engine import Env, advance, ensure_tables
from beacon.journeys.simulate import Accepting
from beacon.journeys.validate import project_report
from beacon.testing.profile import build_customer_profile

# 18:00 UTC is daytime in every US time zone: a daily run at 12:00 UTC would land in the quiet hours of the
# Central and Pacific people every day and defer them forever (the DAG runs every 15 minutes, so it never does).
CLOCK = datetime(2026, 6, 30, 18, 0)
SEGMENTS = ("welcome_new_subscribers", "win_back_lapsed", "hot_b2b_leads")


def synthetic(con: duckdb.DuckDBPyConnection, people: int) -> None:
    """People with state (time zone), birth date, lead points and consent; the entry segments; recent cart adds and orders."""
    con.execute("SET preserve_insertion_order = false")
    con.execute("CREATE SCHEMA IF NOT EXISTS marts; CREATE SCHEMA IF NOT EXISTS segments")
    con.execute(f"""CREATE OR REPLACE TABLE marts.dim_customers AS SELECT 'c' || lpad(i::VARCHAR, 8, '0') AS customer_id,
        'p' || i || '@example.com' AS email, NULL::VARCHAR AS phone_e164, 'Ann' AS first_name, 'Lee' AS last_name,
        NULL::VARCHAR AS city, ['NY', 'IL', 'CA', 'TX', 'FL'][1 + i % 5] AS state, NULL::VARCHAR AS postal_code,
        DATE '1970-01-01' + (i * 7919 % 18000)::INTEGER AS birth_date FROM range({people}) t(i)""")
    con.execute("""CREATE OR REPLACE TABLE marts.customer_lead_points AS
        SELECT customer_id, (row_number() OVER (ORDER BY customer_id) - 1) * 31 % 150 AS lead_points
        FROM marts.dim_customers""")
    build_customer_profile(con)  # the dbt mart's SQL over the tables above (time zone from the seed)
    con.execute("""CREATE OR REPLACE TABLE marts.dim_consent AS SELECT customer_id, ch AS channel,
        CASE WHEN hash(customer_id || ch) % 10 = 0 THEN 'opt_out' ELSE 'opt_in' END AS status,
        TIMESTAMP '2026-01-01' AS recorded_at FROM marts.dim_customers, (VALUES ('email'), ('ads')) c(ch)""")
    con.execute("""CREATE OR REPLACE TABLE marts.fct_email_events (customer_id VARCHAR, email VARCHAR,
        event_name VARCHAR, event_at TIMESTAMP, bounce_type VARCHAR, campaign_id VARCHAR)""")
    # Spread: 10% new subscribers, 15% lapsed, 5% B2B leads; cart adds and orders come as events.
    for name, lo, hi in (("welcome_new_subscribers", 0, 10), ("win_back_lapsed", 10, 25), ("hot_b2b_leads", 25, 30)):
        con.execute(f"""CREATE OR REPLACE TABLE segments.{name} AS SELECT customer_id FROM marts.dim_customers
            WHERE hash(customer_id) % 100 >= {lo} AND hash(customer_id) % 100 < {hi}""")
    con.execute("CREATE SCHEMA IF NOT EXISTS journeys")
    con.execute("""CREATE OR REPLACE TABLE journeys.events (customer_id VARCHAR, event_name VARCHAR,
        event_at TIMESTAMP, event_key VARCHAR)""")
    day_events(con, CLOCK - timedelta(days=1), 0)


def day_events(con: duckdb.DuckDBPyConnection, start: datetime, day: int) -> None:
    """One day of cart adds (3% of people) and orders (1%), and opens and clicks of yesterday's sends."""
    con.execute(f"""INSERT INTO journeys.events
        SELECT customer_id, 'product_added', TIMESTAMP '{start}' + to_seconds(hash(customer_id, {day}) % 86400),
            'P' || (hash(customer_id, {day}, 1) % 500)
        FROM marts.dim_customers WHERE hash(customer_id, {day}, 2) % 100 < 3
        UNION ALL
        SELECT customer_id, 'order_completed', TIMESTAMP '{start}' + to_seconds(hash(customer_id, {day}, 3) % 86400),
            'O' || {day} || customer_id
        FROM marts.dim_customers WHERE hash(customer_id, {day}, 4) % 100 < 1""")
    if day:
        con.execute(f"""INSERT INTO journeys.events SELECT customer_id,
                CASE WHEN hash(customer_id, step) % 10 < 2 THEN 'email_click' ELSE 'email_open' END,
                occurred_at + INTERVAL 3 HOUR, journey
            FROM journeys.transitions WHERE transition = 'sent' AND occurred_at > TIMESTAMP '{start}' - INTERVAL 1 DAY
              AND occurred_at <= TIMESTAMP '{start}' AND hash(customer_id, step) % 10 < 4""")


def _sizes(con: duckdb.DuckDBPyConnection, path: Path, base_bytes: int) -> dict:
    con.execute("CHECKPOINT")
    active = con.execute("SELECT count(*) FROM journeys.current WHERE transition <> 'exited'").fetchall()[0][0]
    log_rows = con.execute("SELECT count(*) FROM journeys.transitions").fetchall()[0][0]
    finished = con.execute("SELECT count(*) FROM journeys.finished").fetchall()[0][0]
    est = con.execute("""SELECT sum(estimated_size) FROM duckdb_tables() WHERE schema_name = 'journeys'""").fetchall()[0][0]
    grown = max(0, path.stat().st_size - base_bytes)
    return {"active_entries": active, "log_rows": log_rows, "finished_rows": finished,
            "log_rows_per_active": round(log_rows / active, 2) if active else None,
            "file_growth_bytes": grown, "file_bytes_per_active": round(grown / active, 1) if active else None,
            "journeys_estimated_bytes": int(est or 0),
            "estimated_bytes_per_active": round((est or 0) / active, 1) if active else None}


def progress(d: dict) -> None:
    """One JSON line per stage on stderr, so a long run shows (and keeps) its figures as it goes."""
    print(json.dumps(d), file=sys.stderr, flush=True)


def bench_journeys(people: int, days: int = 30, step_hours: int = 24, folder: Path | None = None) -> dict:
    """One advance of every built-in journey over `people`, then `days` simulated days (a run every `step_hours`)."""
    journeys = [x.journey for x in project_report(strict=True).journeys]
    dests: dict[str, Accepting] = {}
    env = Env(destination=lambda ch: dests.setdefault(ch, Accepting(ch, ch)))
    with tempfile.TemporaryDirectory(prefix="beacon-bench-journeys-", dir=folder) as tmp:
        path = Path(tmp) / "bench.duckdb"
        con = duckdb.connect(str(path))
        con.execute("SET enable_progress_bar = false")
        t0 = time.perf_counter()
        synthetic(con, people)
        ensure_tables(con)
        con.execute("CHECKPOINT")
        base_bytes = path.stat().st_size
        setup = time.perf_counter() - t0
        lock = Path(tmp) / "journeys.lock"
        per_journey, t1 = {}, time.perf_counter()
        for j in journeys:
            r = advance(con, j, CLOCK, env, lock_path=lock)
            per_journey[j.name] = {"seconds": r.seconds, "entered": r.entered, "sent": r.sent,
                                   "skipped": sum(r.skipped.values()), "deferred": r.deferred, "hops": r.hops}
        first = time.perf_counter() - t1
        after_first = _sizes(con, path, base_bytes)
        progress({"first_advance_seconds": round(first, 2), "per_journey": per_journey, **after_first})
        daily, clock = [], CLOCK
        run_seconds = []
        for d in range(1, days + 1):
            for _ in range(24 // step_hours):
                clock += timedelta(hours=step_hours)
                day_events(con, clock - timedelta(hours=step_hours), d)
                t = time.perf_counter()
                for j in journeys:
                    advance(con, j, clock, env, lock_path=lock)
                run_seconds.append(time.perf_counter() - t)
            daily.append({"day": d, "advance_seconds": round(run_seconds[-1], 2), **_sizes(con, path, base_bytes)})
            progress(daily[-1])
        con.close()
    worst = max(daily, key=lambda x: x["file_bytes_per_active"] or 0) if daily else None
    return {"people": people, "journeys": [j.name for j in journeys], "setup_seconds": round(setup, 2),
            "first_advance_seconds": round(first, 2), "per_journey": per_journey, "after_first_run": after_first,
            "days": days, "step_hours": step_hours,
            "advance_seconds": {"max": round(max(run_seconds), 2) if run_seconds else None,
                                "median": round(sorted(run_seconds)[len(run_seconds) // 2], 2) if run_seconds else None},
            "daily": daily, "max_file_bytes_per_active": worst["file_bytes_per_active"] if worst else None,
            "delivered": {k: v.delivered for k, v in dests.items()},
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "duckdb": duckdb.__version__}}
