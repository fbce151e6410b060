"""`beacon bench service`: the HTTP service on loopback, bounded in count and time.

Three phases against a real `beacon serve` process (127.0.0.1 only):
1. collection (`beacon.bench.collection_load`): concurrent /v1/batch posts for `seconds`, plain JSON and gzip
   bodies (what RudderStack's library sends by default); events/s acknowledged, p50/p99 latency, closed loop and
   paced at 5,000 events/s; single /v1/track requests/s beside.
2. offers: a synthetic published snapshot of `profiles` people (customer id and email-hash keys), p50/p99
   of GET /v1/profiles/{id}/offers.
3. crash: batches with unique messageIds, kill -9 of the server after `kill_after` acknowledged batches,
   restart (the spool is recovered), the client re-sends what was not acknowledged (a Segment client
   retries), then the ingest loads the landing zone: acknowledged events lost and loaded twice are counted.
4. realtime (`beacon.bench.realtime_load`): event posted -> in raw.collected_events, the load step of the realtime
   cycle every 20 s.
5. event_to_action: event posted -> journey email received by a local SMTP server, on a 300-person dbt-built
   world, with the whole trigger cycle (`trigger_cycle`: load, dbt refresh, journeys advance) every 20 s.
"""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

from beacon.bench.collection_load import collection, pct, run_workers
from beacon.bench.realtime_load import realtime_load


def write_offer_snapshot(path: Path, profiles: int) -> None:
    """A synthetic published snapshot: each person under its customer id and its email's SHA-256."""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    cids = [f"c{i}" for i in range(profiles)]
    hashes = [hashlib.sha256(f"p{i}@example.com".encode()).hexdigest() for i in range(profiles)]
    offers = [f'[{{"offer":"segment_{i % 7}","score":{(i % 100) / 100}}}]' for i in range(profiles)]
    allowed = [i % 50 != 0 for i in range(profiles)]
    t = pa.table({"key": cids + hashes, "customer_id": cids + cids, "offers": offers + offers,
                  "allowed": allowed + allowed})
    tmp = path.with_suffix(".tmp")
    pq.write_table(t, tmp)
    os.replace(tmp, path)


def _offers(work: Path, profiles: int, requests: int, concurrency: int) -> dict:
    import random

    import httpx

    from beacon.testing.service import ServiceProcess

    snap = work / "offers.parquet"
    t0 = time.perf_counter()
    write_offer_snapshot(snap, profiles)
    written = time.perf_counter() - t0
    key = "ok_" + secrets.token_hex(16)  # the server-side offers key (generated per run, never stored)
    proc = ServiceProcess(work, {"write_keys": {}, "offers_snapshot": str(snap), "offers_keys": {key: "bench"}})
    t0 = time.perf_counter()
    proc.start(timeout=300)
    while httpx.get(f"{proc.url}/health").json()["offers_snapshot"] is None and time.perf_counter() - t0 < 300:
        time.sleep(0.2)
    loaded = time.perf_counter() - t0
    rng = random.Random(7)
    ids = [f"c{rng.randrange(profiles)}" for _ in range(requests)]
    lat: list[float] = []
    statuses: dict[int, int] = {}

    it = iter(ids)
    lock = threading.Lock()

    def worker():  # a blocking client per thread: less client overhead than asyncio httpx at this rate
        with httpx.Client(base_url=proc.url, timeout=10, headers={"Authorization": f"Bearer {key}"}) as client:
            while True:
                with lock:
                    cid = next(it, None)
                if cid is None:
                    return
                t = time.perf_counter()
                r = client.get(f"/v1/profiles/{cid}/offers")
                lat.append(time.perf_counter() - t)
                with lock:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    try:
        wall = run_workers(worker, concurrency)
    finally:
        proc.stop()
    return {"profiles": profiles, "requests": len(lat), "concurrency": concurrency, "statuses": statuses,
            "snapshot_write_s": round(written, 2), "start_and_load_s": round(loaded, 2),
            "requests_per_s": round(len(lat) / wall, 1), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}


def _crash(work: Path, kill_after: int, batch_size: int, concurrency: int, after_kill=None) -> dict:
    """kill -9 after `kill_after` acknowledged batches; `after_kill(spool_dir)` runs before the restart (a test
    can leave a torn tail there, as a write cut by the crash would)."""
    import httpx
    import orjson

    from beacon.ingest.landing import load_landing
    from beacon.testing.service import ServiceProcess
    from beacon.warehouse import connect

    key = "crash_" + secrets.token_hex(6)
    proc = ServiceProcess(work, {"write_keys": {key: "bench"}, "rotate_seconds": 1.0,
                                 "limits": {"rate_events_per_second": 1e9, "rate_burst": 1e9}}).start()
    acked: set[str] = set()
    unacked: list[list[str]] = []
    next_batch = iter(range(10**9))
    killed_at = None

    async def run():
        nonlocal killed_at
        async with httpx.AsyncClient(base_url=proc.url, auth=(key, ""), timeout=10) as client:
            async def worker():
                nonlocal killed_at
                while killed_at is None:
                    b = next(next_batch)
                    ids = [f"k{b}-{i}" for i in range(batch_size)]
                    body = orjson.dumps({"batch": [{"type": "track", "event": "Crash Test", "anonymousId": "a",
                                                    "messageId": m} for m in ids]})
                    try:
                        r = await client.post("/v1/batch", content=body, headers={"content-type": "application/json"})
                        ok = r.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    if ok:
                        acked.update(ids)
                        if len(acked) >= kill_after * batch_size and killed_at is None:
                            killed_at = len(acked)
                            proc.kill()  # SIGKILL while the other workers' requests are in flight
                    else:
                        unacked.append(ids)
            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(run())
    spool_files = len(list((work / "data" / "landing" / "_spool").glob("*.part")))
    if after_kill is not None:
        after_kill(work / "data" / "landing" / "_spool")
    proc.start()  # recovery renames what the spool holds into the landing zone
    retried = 0
    for ids in unacked:  # the client's retry of what it never saw acknowledged
        body = {"batch": [{"type": "track", "event": "Crash Test", "anonymousId": "a", "messageId": m} for m in ids]}
        r = httpx.post(f"{proc.url}/v1/batch", json=body, auth=(key, ""), timeout=10)
        if r.status_code == 200:
            acked.update(ids)
            retried += 1
    proc.stop()  # closes and renames the open file
    wh = work / "crash.duckdb"
    summary = load_landing(work / "data" / "landing", warehouse=wh)
    with connect(wh) as con:
        con.execute("CREATE TEMP TABLE acked (message_id VARCHAR)")
        con.executemany("INSERT INTO acked VALUES (?)", [[m] for m in acked])
        lost = con.execute("SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT 1 FROM raw.collected_events r "
                           "WHERE r.message_id = a.message_id)").fetchone()[0]
        twice = con.execute("SELECT count(*) FROM (SELECT message_id FROM raw.collected_events GROUP BY 1 "
                            "HAVING count(*) > 1)").fetchone()[0]
        loaded = con.execute("SELECT count(*) FROM raw.collected_events").fetchone()[0]
        dup_quarantined = con.execute("SELECT count(*) FROM raw._quarantine WHERE source = 'collected_events' AND "
                                      "reason = 'duplicate'").fetchone()[0]
    return {"acknowledged_before_kill": killed_at, "batches_unacknowledged_at_kill": len(unacked),
            "batches_retried_after_restart": retried, "spool_files_left_by_kill": spool_files,
            "acknowledged_total": len(acked), "loaded": loaded, "duplicates_quarantined": dup_quarantined,
            "acknowledged_lost": lost, "loaded_twice": twice, "ingest_totals": summary.totals()}


# The e2e test's journey: an entry event that leads straight to a send (the project's cart journey waits 1 h).
ACTION_JOURNEY = {
    "name": "rt_cart", "version": 1, "owner": "bench", "priority": 90,
    "entry": {"event": {"name": "product_added", "dedupe_key": "event_key", "lookback": "1d"}, "re_entry": "never"},
    "exit_when": ["unsubscribed", "erased"], "start": "reminder",
    "nodes": [{"id": "reminder", "type": "send", "channel": "email", "template": "cart_reminder_1", "next": "done"},
              {"id": "done", "type": "exit"}]}


def build_small_world(data: Path, people: int = 300, seed: int = 19) -> None:
    """Generate, load and `dbt run` the marts the journeys read, into BEACON_DATA_DIR=`data` (set by the caller)."""
    from beacon import dbt
    from beacon.config import settings
    from beacon.generate import GenConfig, generate
    from beacon.ingest.landing import load_landing

    if settings().data_dir != data:
        raise ValueError(f"set BEACON_DATA_DIR={data} around build_small_world: dbt builds settings().warehouse_path")
    generate(GenConfig(people=people, seed=seed), data)  # landing/ and truth/ under `data`
    load_landing(data / "landing")  # not settings().landing_dir: the caller may point that at a service's
    # Seeds first (`dbt run` builds models only): the lead point rules and the state time zones customer_profile reads.
    ok = dbt.run(["seed"], quiet=True) and dbt.run(
        ["run", "--select", "+warehouse_as_of", "+customer_profile", "+dim_consent"], quiet=True)
    dbt.release_warehouse()
    if not ok:
        raise RuntimeError(f"dbt run of the marts failed for the world in {data}")


def identified_opted_in(con, n: int) -> list[tuple[str, str, str]]:
    """(anonymous_id, customer_id, email) of `n` visitors the daily run identified, opted in to email."""
    return con.execute("""SELECT i.anonymous_id, i.customer_id, d.email
        FROM intermediate.int_web_identities_mapped i JOIN marts.dim_customers d USING (customer_id)
        JOIN marts.dim_consent k ON k.customer_id = i.customer_id AND k.channel = 'email' AND k.status = 'opt_in'
        WHERE d.email IS NOT NULL AND d.is_email_valid ORDER BY i.anonymous_id LIMIT ?""", [n]).fetchall()


def trigger_cycle(landing: Path, journey, run_id: str) -> tuple[int, object]:
    """One trigger cycle, the functions the DAGs call: `beacon_realtime` (load, then the dbt refresh of the
    event facts and the clock) and `beacon_journeys` (advance at the warehouse clock, the real environment)."""
    from datetime import UTC, datetime

    from beacon import dbt
    from beacon.ingest.realtime import load_realtime, refresh_event_facts
    from beacon.journeys.api import default_env
    from beacon.journeys.engine import advance
    from beacon.warehouse import clock, connect

    loaded = load_realtime(landing, datetime.now(UTC).date()).totals()["rows_loaded"]
    if loaded:
        if not refresh_event_facts():
            raise RuntimeError("dbt run of the event facts failed")
        dbt.release_warehouse()
    with connect() as con:
        return loaded, advance(con, journey, clock(con), default_env(), run_id=run_id)


def _smtp_sink(received: dict[str, float]):
    """A started local SMTP server (aiosmtpd) that stamps the first arrival time of each recipient in `received`."""
    import logging

    from aiosmtpd.controller import Controller

    from beacon.testing.service import free_port

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command at INFO

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's naming
            for rcpt in envelope.rcpt_tos:
                received.setdefault(rcpt, time.perf_counter())
            return "250 OK"

    smtp = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    return smtp


def _smtp_conn(port: int, secret: str) -> str:
    """The AIRFLOW_CONN_BEACON_EMAIL JSON for the local SMTP server."""
    import json

    return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": {
        "from": "Beacon <news@beacon.example>", "postal_address": "Beacon Inc., 1 Main St",
        "unsubscribe_url": "https://beacon.example/v1/unsubscribe", "unsubscribe_secret": secret}})


def _trigger_cycles(landing: Path, journey, interval: float, stop: threading.Event, cycle_s: list[float],
                    errors: list[str]) -> None:
    """Run `trigger_cycle` every `interval` s until `stop`; the first error is recorded and ends the loop."""
    i = 0
    while not stop.is_set():
        t = time.perf_counter()
        try:
            trigger_cycle(landing, journey, f"bench-cycle-{i}")
        except Exception as exc:  # noqa: BLE001 - reported in the result, the phase ends
            errors.append(f"{type(exc).__name__}: {exc}")
            stop.set()
            return
        cycle_s.append(time.perf_counter() - t)
        i += 1
        stop.wait(max(0.0, interval - (time.perf_counter() - t)))


def _event_to_action(work: Path, interval: float, events: int) -> dict:
    """Event posted -> email received by a local SMTP server, with the trigger cycle (`trigger_cycle`) run
    back to back every `interval` s in one process: the DAG interval, load, dbt refresh and journeys advance are
    in the figure; Airflow's scheduling overhead between the two DAGs is not."""
    import httpx

    from beacon.config import override_env
    from beacon.journeys.model import Journey
    from beacon.testing.service import ServiceProcess
    from beacon.warehouse import connect

    received: dict[str, float] = {}
    key, secret = "ea_" + secrets.token_hex(6), "us_" + secrets.token_hex(16)
    smtp = _smtp_sink(received)
    journey = Journey.model_validate(ACTION_JOURNEY)
    (work / "svc").mkdir(parents=True, exist_ok=True)
    proc = ServiceProcess(work / "svc", {"write_keys": {key: "bench"}, "unsubscribe_secret": secret}).start()
    landing = work / "svc" / "data" / "landing"
    posted: dict[str, float] = {}
    cycle_s: list[float] = []
    errors: list[str] = []
    stop = threading.Event()
    try:
        with override_env(BEACON_DATA_DIR=str(work / "world"), BEACON_LANDING_DIR=str(landing),
                          AIRFLOW_CONN_BEACON_EMAIL=_smtp_conn(smtp.port, secret)):
            t_world = time.perf_counter()
            build_small_world(work / "world")
            world_s = time.perf_counter() - t_world
            with connect() as con:
                people = identified_opted_in(con, events)
            th = threading.Thread(target=_trigger_cycles, args=(landing, journey, interval, stop, cycle_s, errors),
                                  daemon=True)
            th.start()
            for anon, _, email in people:
                time.sleep(interval * 0.37)  # events land at different points of the cycle
                r = httpx.post(f"{proc.url}/v1/track", auth=(key, ""), json={
                    "event": "Product Added", "anonymousId": anon, "messageId": f"ea-{anon}"})
                if r.status_code == 200:
                    posted[email] = time.perf_counter()
            deadline = time.perf_counter() + 3 * interval + 60
            while time.perf_counter() < deadline and set(posted) - set(received) and not errors:
                time.sleep(0.2)
            stop.set()
            th.join(timeout=300)
    finally:
        stop.set()
        proc.stop()
        smtp.stop()
    lat = sorted(received[e] - posted[e] for e in posted if e in received)
    return {"cycle_seconds": interval, "events": len(posted), "emails_received": len(lat),
            "unexpected_emails": len(set(received) - set(posted)), "errors": errors, "world_build_s": round(world_s, 1),
            "latency_s_max": round(lat[-1], 1) if lat else None,
            "latency_s_median": round(lat[len(lat) // 2], 1) if lat else None,
            "cycle_s_median": round(sorted(cycle_s)[len(cycle_s) // 2], 2) if cycle_s else None}


def bench_service(seconds: float = 10.0, concurrency: int = 4, batch_size: int = 100, profiles: int = 1_000_000,
                  offer_requests: int = 20_000, kill_after: int = 200, workdir: Path | None = None,
                  realtime_interval: float = 20.0, realtime_events: int = 4, action_events: int = 3) -> dict:
    """All three phases; each bounded (seconds, request counts), loopback only."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="beacon-bench-service-"))
    try:
        out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
        for name, fn in (("collection", lambda d: collection(d, seconds, concurrency, batch_size)),
                         ("offers", lambda d: _offers(d, profiles, offer_requests, 2)),
                         ("crash", lambda d: _crash(d, kill_after, 50, 8)),
                         ("realtime", lambda d: realtime_load(d, realtime_interval, realtime_events)),
                         ("event_to_action", lambda d: _event_to_action(d, realtime_interval, action_events))):
            if name == "event_to_action" and not action_events:
                continue
            d = work / name
            d.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            out[name] = fn(d)
            out[name]["phase_seconds"] = round(time.perf_counter() - t0, 1)
        c, o, k = out["collection"], out["offers"], out["crash"]
        out["targets"] = {
            "collection_events_per_s>=5000": c["batch"]["events_per_s"] >= 5000,
            "collection_p99_ms<=50_at_5000_per_s": c["batch_at_5000_per_s"]["p99_ms"] <= 50,
            "collection_gzip_events_per_s>=5000": c["batch_gzip"]["events_per_s"] >= 5000,
            "collection_gzip_p99_ms<=50_at_5000_per_s": c["batch_gzip_at_5000_per_s"]["p99_ms"] <= 50,
            "offers_p99_ms<=10": o["p99_ms"] <= 10, "acknowledged_lost==0": k["acknowledged_lost"] == 0,
            "loaded_twice==0": k["loaded_twice"] == 0}
        if "event_to_action" in out:
            a = out["event_to_action"]
            out["targets"]["event_to_action_s<=60"] = (a["emails_received"] == a["events"] > 0 and not a["errors"]
                                                       and a["unexpected_emails"] == 0 and a["latency_s_max"] <= 60)
        out["note"] = "single run; on a shared machine timings are noisy"
        return out
    finally:
        if not workdir:
            shutil.rmtree(work, ignore_errors=True)
