"""Activation benchmark: the diff of a large audience, and webhook delivery under injected faults.

Both run on a synthetic warehouse in memory (segment, customers, consent) so they measure the sync
engine, not the rest of the pipeline.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from datetime import datetime

import duckdb

from beacon.activation.destinations.file import FileExport
from beacon.activation.destinations.webhook import Webhook
from beacon.activation.sync import plan, run_sync
from beacon.audiences import Audience
from beacon.testing.receiver import FaultyReceiver

AS_OF = datetime(2026, 6, 30, 12, 0)


def synthetic_warehouse(members: int, audience: str = "bench_audience") -> tuple[duckdb.DuckDBPyConnection, Audience]:
    """An in-memory warehouse with one segment of `members` people, all with an email and email consent."""
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE SCHEMA segments; CREATE SCHEMA marts")
    con.execute(f"""CREATE TABLE segments.{audience} AS SELECT 'c' || lpad(i::VARCHAR, 8, '0') AS customer_id,
        (i * 7919) % 1000 AS points, ['gold', 'silver', 'bronze'][1 + i % 3] AS tier FROM range({members}) t(i)""")
    con.execute(f"""CREATE TABLE marts.dim_customers AS SELECT customer_id, 'p' || substr(customer_id, 2) || '@example.com'
        AS email, NULL::VARCHAR AS phone_e164, 'Ann' AS first_name, 'Lee' AS last_name, NULL::VARCHAR AS city,
        NULL::VARCHAR AS state, NULL::VARCHAR AS postal_code FROM segments.{audience}""")
    con.execute(f"""CREATE TABLE marts.dim_consent AS SELECT customer_id, 'email' AS channel, 'opt_in' AS status,
        TIMESTAMP '2026-01-01' AS recorded_at FROM segments.{audience}""")
    con.execute("""CREATE TABLE marts.fct_email_events (customer_id VARCHAR, event_name VARCHAR, bounce_type VARCHAR,
        event_at TIMESTAMP)""")
    a = Audience(name=audience, description="benchmark", owner="bench", channels=("file", "webhook"), priority=1,
                 holdout_pct=10.0, refresh="daily", relation=f"segments.{audience}", model=audience, path="bench")
    return con, a


def _acknowledge_all(con: duckdb.DuckDBPyConnection, audience: str, destination: str) -> None:
    """Record every planned change as delivered (stands in for a first full sync, which is not what is measured)."""
    con.execute("DELETE FROM activation.sync_state WHERE audience = ? AND destination = ?", [audience, destination])
    con.execute("""INSERT INTO activation.sync_state (audience, destination, customer_id, row_hash, version, present,
        run_id, synced_at, payload) SELECT ?, ?, customer_id, row_hash, version, true, 'seed', now(), payload
        FROM _changes WHERE operation <> 'remove'""", [audience, destination])


def bench_diff(members: int, changed: float, repeat: int) -> dict:
    """Seed the delivered state, change `changed` of the members, time the plan (govern + hash + diff)."""
    con, a = synthetic_warehouse(members)
    dest = FileExport("memory://unused", name="file")
    plan(con, a, [a], dest, AS_OF)
    _acknowledge_all(con, a.name, dest.name)
    n = int(members * changed)
    # Half the changes are edits, a quarter leave, a quarter join.
    con.execute(f"UPDATE segments.{a.name} SET points = points + 1 WHERE customer_id IN "
                f"(SELECT customer_id FROM segments.{a.name} USING SAMPLE {n // 2} ROWS (reservoir, 1))")
    con.execute(f"DELETE FROM segments.{a.name} WHERE customer_id IN (SELECT customer_id FROM segments.{a.name} "
                f"WHERE points % 1000 <> 1 USING SAMPLE {n // 4} ROWS (reservoir, 2))")
    con.execute(f"""INSERT INTO segments.{a.name} SELECT 'n' || lpad(i::VARCHAR, 8, '0'), i % 1000, 'new'
        FROM range({n - n // 2 - n // 4}) t(i)""")
    con.execute("""INSERT INTO marts.dim_consent SELECT customer_id, 'email', 'opt_in', TIMESTAMP '2026-01-01'
        FROM segments.bench_audience WHERE customer_id LIKE 'n%'""")
    times, s = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        s, _fields = plan(con, a, [a], dest, AS_OF)
        times.append(time.perf_counter() - t0)
    # The expected changes, counted independently of the engine: desired members are those not held out.
    expect = con.execute(f"""WITH d AS (SELECT customer_id, points FROM segments.{a.name}
            WHERE (('0x' || substr(md5('{a.name}:' || customer_id), 1, 8))::UBIGINT % 10000) / 100.0 >= 10)
        SELECT count(*) FILTER (WHERE st.customer_id IS NULL),
               count(*) FILTER (WHERE st.customer_id IS NOT NULL AND json_extract(st.payload, '$.points')::INT <> d.points),
               (SELECT count(*) FROM activation.sync_state x WHERE NOT EXISTS
                    (SELECT 1 FROM d WHERE d.customer_id = x.customer_id))
        FROM d LEFT JOIN activation.sync_state st USING (customer_id)""").fetchall()[0]
    return {"members": members, "changed_share": changed, "median_seconds": round(statistics.median(times), 3),
            "runs_seconds": [round(t, 3) for t in times], "adds": s.adds, "updates": s.updates, "removes": s.removes,
            "unchanged": s.unchanged, "held_out": s.held_out,
            "expected": {"adds": expect[0], "updates": expect[1], "removes": expect[2]},
            "correct": [s.adds, s.updates, s.removes] == list(expect), "target_seconds": 10.0}


def bench_webhook(rows: int, fault_rate: float, batch_size: int = 1000, concurrency: int = 8, seed: int = 7) -> dict:
    """Deliver `rows` changes to a local receiver that fails `fault_rate` of requests (429, 500, 503, timeouts)."""
    con, a = synthetic_warehouse(rows)
    a = Audience(**{**a.__dict__, "holdout_pct": 0.0})  # every member is sent
    with FaultyReceiver(fault_rate=fault_rate, seed=seed, token="bench-token", timeout_sleep=2.5,
                        retry_after="1") as r:
        dest = Webhook(r.url, token="bench-token", batch_size=batch_size, rate_limit=500, timeout=1.5,
                       concurrency=concurrency, backoff_base=0.05, backoff_max=2.0, max_retries=10, seed=seed)
        t0 = time.perf_counter()
        s = run_sync(con, a, [a], dest, AS_OF)
        total = time.perf_counter() - t0
        dest.close()
        rec = r.summary()
    present = con.execute("SELECT count(*) FROM activation.sync_state WHERE present").fetchall()[0][0]
    rerun = run_sync(con, a, [a], Webhook("http://127.0.0.1:9/unused", max_retries=0), AS_OF)
    send = s.seconds["send"]
    return {"rows": rows, "fault_rate": fault_rate, "batch_size": batch_size, "concurrency": concurrency,
            "send_seconds": round(send, 2), "rows_per_s": round(rows / send, 1), "total_seconds": round(total, 2),
            "delivered": s.delivered, "failed": s.failed, "delivered_pct": round(100 * s.delivered / rows, 3),
            "state_present": present, "receiver": rec, "client": dest.stats,
            "duplicates_at_receiver": rec["duplicates_applied"], "rerun_changes": rerun.changes,
            "target_rows_per_s": 5000}


def bench_activation(members: int = 1_000_000, changed: float = 0.01, rows: int = 100_000, fault_rate: float = 0.2,
                     repeat: int = 3) -> dict:
    """Both measurements, with the machine they ran on."""
    diff = bench_diff(members, changed, repeat)
    runs = [bench_webhook(rows, fault_rate, seed=7 + i) for i in range(repeat)]
    runs.sort(key=lambda r: r["rows_per_s"])
    webhook = runs[len(runs) // 2]  # the median run by throughput, reported whole
    webhook["runs_rows_per_s"] = [r["rows_per_s"] for r in runs]
    return {"benchmark": "activation", "diff": diff, "webhook": webhook,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "duckdb": duckdb.__version__}}
