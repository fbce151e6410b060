"""`beacon bench service`, phase 4 (realtime): event posted -> in raw.collected_events, the load step of the
realtime cycle every `interval` s against a real `beacon serve` process on loopback."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path


def realtime_load(work: Path, interval: float, events: int) -> dict:
    """Event posted -> in raw.collected_events, with the beacon_realtime cycle simulated every `interval` s
    (its load step, `load_realtime`; the dbt refresh of the event facts is not included here)."""
    from datetime import UTC, datetime

    import httpx

    from beacon.ingest.realtime import load_realtime
    from beacon.testing.service import ServiceProcess
    from beacon.warehouse import connect

    key = "rt_" + secrets.token_hex(6)
    proc = ServiceProcess(work, {"write_keys": {key: "bench"}}).start()  # default rotate_seconds (2 s)
    wh = work / "rt.duckdb"
    posted: dict[str, float] = {}
    seen: dict[str, float] = {}
    load_s: list[float] = []
    stop = threading.Event()

    def cycles():
        while not stop.is_set():
            t = time.perf_counter()
            load_realtime(work / "data" / "landing", datetime.now(UTC).date(), warehouse=wh)
            load_s.append(time.perf_counter() - t)
            with connect(wh) as con:
                for (m,) in con.execute("SELECT message_id FROM raw.collected_events").fetchall():
                    seen.setdefault(m, time.perf_counter())
            stop.wait(max(0.0, interval - (time.perf_counter() - t)))

    th = threading.Thread(target=cycles, daemon=True)
    th.start()
    try:
        for i in range(events):
            time.sleep(interval * 0.37)  # events land at different points of the cycle
            m = f"rt-{i}"
            r = httpx.post(f"{proc.url}/v1/track", auth=(key, ""), json={"event": "Cart Abandoned", "userId": "u1",
                                                                        "messageId": m})
            if r.status_code == 200:
                posted[m] = time.perf_counter()
        deadline = time.perf_counter() + 3 * interval + 30
        while time.perf_counter() < deadline and set(posted) - set(seen):
            time.sleep(0.2)
    finally:
        stop.set()
        th.join(timeout=120)
        proc.stop()
    lat = [seen[m] - posted[m] for m in posted if m in seen]
    return {"cycle_seconds": interval, "events": len(posted), "reached_raw": len(lat),
            "latency_s_max": round(max(lat), 1) if lat else None,
            "latency_s_median": round(sorted(lat)[len(lat) // 2], 1) if lat else None,
            "load_cycle_s_median": round(sorted(load_s)[len(load_s) // 2], 2) if load_s else None}
