"""`beacon bench stack`: the whole chain through the real scheduler (`make up`) against `dag.test()`.

A fresh world in a work folder, its own stack folder and port; the ingest DAG is triggered through the REST
API and the chain's wall time is the ingest run's start to the activation run's end (Airflow's own times).
Then everything started is stopped, and `beacon demo` (the same four DAGs through `dag.test()`) runs on the
same world as the baseline of the same run: the ratio is the chain's time against the demo's four DAGs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

from beacon.config import override_env, settings
from beacon.pipeline import prepare_world
from beacon.stack import CHAIN, Api, chain, down, free_port, paths, trigger_chain, up, wait_for_chain


def _t(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


REALTIME_JOURNEY = "cart_abandonment"  # the project's journey entered by a `Product Added` event


def event_to_action(s, api: Api, events: int = 3, horizon: float = 90.0) -> dict:
    """Event posted to `beacon serve` -> the person entered the cart journey, through the real scheduler.

    On the running stack after the chain: a `beacon serve` lands into the stack's landing zone; the
    `beacon_realtime` DAG (every BEACON_REALTIME_INTERVAL_SECONDS) loads, refreshes the event facts and emits
    its Asset; the scheduler starts `beacon_journeys`, whose run enters the person. `events` people, identified
    and never in that journey, each post one `Product Added` at a different point of the interval. Once every
    posted person has entered (or `horizon` s after the last post, whichever comes first) the realtime DAG is
    paused, running work finishes, and the latency of each is the end (wall clock) of the journeys run that
    entered them minus the time of the post."""
    import secrets

    import httpx

    from beacon.stack.env import warehouse_key_env
    from beacon.testing.service import ServiceProcess
    from beacon.warehouse import connect

    key_env = warehouse_key_env(s, paths(s))  # the stack's warehouse is encrypted with its key (docs/privacy.md)
    with override_env(**key_env), connect(read_only=True) as con:
        people = con.execute("""SELECT i.anonymous_id, i.customer_id
            FROM intermediate.int_web_identities_mapped i JOIN marts.dim_customers d USING (customer_id)
            WHERE i.customer_id NOT IN (SELECT customer_id FROM journeys.transitions WHERE journey = ?)
              AND i.customer_id NOT IN (SELECT customer_id FROM journeys.finished WHERE journey = ?)
            QUALIFY row_number() OVER (PARTITION BY i.customer_id ORDER BY i.anonymous_id) = 1
            ORDER BY hash(i.customer_id) LIMIT ?""", [REALTIME_JOURNEY, REALTIME_JOURNEY, events]).fetchall()
    key = "ea_" + secrets.token_hex(6)
    work = paths(s).root / "bench-serve"
    work.mkdir(parents=True, exist_ok=True)
    svc = ServiceProcess(work, {"write_keys": {key: "bench"}, "unsubscribe_secret": "us_" + secrets.token_hex(16)},
                         extra_env={"BEACON_DATA_DIR": str(s.data_dir), "BEACON_LANDING_DIR": str(s.landing_dir)})
    interval = float(s.realtime_interval_seconds)
    posted: dict[str, datetime] = {}
    svc.start(timeout=300)  # a bound for a condition: it answers in seconds on a quiet machine
    try:
        api.call("PATCH", "dags/beacon_realtime", json={"is_paused": False})
        for i, (anon, cid) in enumerate(people):
            time.sleep(interval * 0.37 if i else 2.0)  # at different points of the realtime interval
            r = httpx.post(f"{svc.url}/v1/track", auth=(key, ""), timeout=30, json={
                "event": "Product Added", "anonymousId": anon, "messageId": f"bench-e2a-{anon}"})
            if r.status_code == 200:
                posted[cid] = datetime.now()  # naive local wall time, as journeys.runs records it
        _wait_for_entries(list(posted), horizon, key_env)
    finally:
        api.call("PATCH", "dags/beacon_realtime", json={"is_paused": True})
        svc.stop()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and any(r["state"] in ("queued", "running") for d in ("beacon_realtime",
                                              "beacon_journeys") for r in api.runs(d)[:5]):
        time.sleep(2)
    rows, entry_runs = _entries(list(posted), key_env)
    entered = {c: (t - posted[c]).total_seconds() for c, t in rows if t is not None}
    lat = sorted(entered.values())
    return {"events": len(people), "posted": len(posted), "entered": len(lat), "interval_s": interval,
            "entry_dag_runs": sorted({r.rsplit(":", 1)[0] for r in entry_runs.values()}),
            "horizon_s": horizon, "latency_s": [round(x, 1) for x in lat],
            "median_s": round(median(lat), 1) if lat else None, "max_s": round(lat[-1], 1) if lat else None}


def _entries(people: list[str], key_env: dict[str, str],
             lock_wait: float | None = None) -> tuple[list[tuple], dict[str, str]]:
    """For the posted people: (customer, end of the first journeys run with a transition of theirs) and the
    journeys run that entered each (journeys.transitions.run_id is "<dag run id>:<journey>"). `key_env`: the
    stack's warehouse key (its warehouse is encrypted, docs/privacy.md)."""
    from beacon.warehouse import connect

    with override_env(**key_env), connect(read_only=True, lock_wait=lock_wait) as con:
        rows = con.execute("""SELECT t.customer_id, min(r.finished_at) FROM journeys.transitions t
            JOIN journeys.runs r ON r.run_id = t.run_id
            WHERE t.journey = ? AND t.customer_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1""",
                           [REALTIME_JOURNEY, people]).fetchall()
        entry_runs = dict(con.execute("""SELECT customer_id, any_value(run_id) FROM journeys.transitions
            WHERE journey = ? AND transition = 'entered' AND customer_id IN (SELECT unnest(?::VARCHAR[]))
            GROUP BY 1""", [REALTIME_JOURNEY, people]).fetchall())
    return rows, entry_runs


def _wait_for_entries(people: list[str], horizon: float, key_env: dict[str, str] | None = None,
                      every: float = 5.0) -> None:
    """Wait until every one of `people` has entered the journey in a finished journeys run, at most `horizon` s.
    The warehouse is looked at every `every` s without waiting for its lock (a DAG writing it: look again later)."""
    from beacon.warehouse import WarehouseBusy

    deadline = time.monotonic() + horizon
    while time.monotonic() < deadline:
        time.sleep(min(every, max(0.0, deadline - time.monotonic())))
        try:
            rows, entry_runs = _entries(people, key_env or {}, lock_wait=0)
        except WarehouseBusy:
            continue
        if set(entry_runs) == set(people) and all(t is not None for _, t in rows):
            return


def _stack_once(s, timeout: float, realtime_events: int = 0) -> dict:
    t1 = time.perf_counter()
    up(s, say=lambda m: None)
    startup = time.perf_counter() - t1
    try:
        api = Api.for_stack(s)
        since = datetime.now(UTC).isoformat()
        t2 = time.perf_counter()
        trigger_chain(api)
        runs = wait_for_chain(api, since, timeout=timeout, say=lambda m: None)
        waited = time.perf_counter() - t2
        dags = chain(s)
        per_dag = {d: round((_t(runs[d]["end_date"]) - _t(runs[d]["start_date"])).total_seconds(), 1) for d in dags}
        all_tis = {d: api.task_instances(d, runs[d]["dag_run_id"]) for d in dags}
        tis = {d: len(v) for d, v in all_tis.items()}
        realtime = event_to_action(s, api, realtime_events) if realtime_events else None
    finally:
        down(s, say=lambda m: None)
    # The four DAGs `beacon demo` runs: ingest's start to activation's end (journeys follow on their own Asset).
    four = (_t(runs[CHAIN[-1]]["end_date"]) - _t(runs[CHAIN[0]]["start_date"])).total_seconds()
    whole = (_t(runs[dags[-1]]["end_date"]) - _t(runs[dags[0]]["start_date"])).total_seconds()
    return {"startup_s": round(startup, 1), "chain_s": round(four, 1), "chain_with_journeys_s": round(whole, 1),
            "trigger_to_done_s": round(waited, 1), "dags_s": per_dag, "task_instances": tis,
            "timeline": timeline(runs, all_tis, CHAIN), **({"event_to_action": realtime} if realtime else {})}


def timeline(runs: dict[str, dict], tis: dict[str, list[dict]], dags: tuple[str, ...]) -> dict:
    """Where the chain's time went: seconds when at least one task ran (busy) and when none did (idle:
    scheduling, queueing, the gap between DAG runs), the summed task durations, and the slowest tasks."""
    start = _t(runs[dags[0]]["start_date"])
    end = _t(runs[dags[-1]]["end_date"])
    spans = sorted((_t(ti["start_date"]), _t(ti["end_date"]), f"{d}.{ti['task_id']}"
                    + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else ""))
                   for d in dags for ti in tis[d] if ti.get("start_date") and ti.get("end_date"))
    busy, cur_s, cur_e = 0.0, None, None
    for a, b, _ in spans:
        if cur_e is None or a > cur_e:
            if cur_e is not None:
                busy += (cur_e - cur_s).total_seconds()
            cur_s, cur_e = a, b
        else:
            cur_e = max(cur_e, b)
    if cur_e is not None:
        busy += (cur_e - cur_s).total_seconds()
    total = (end - start).total_seconds()
    slowest = sorted(spans, key=lambda x: (x[1] - x[0]).total_seconds(), reverse=True)[:8]
    return {"busy_s": round(busy, 1), "idle_s": round(total - busy, 1), "tasks": len(spans),
            "task_sum_s": round(sum((b - a).total_seconds() for a, b, _ in spans), 1),
            "slowest": {n: round((b - a).total_seconds(), 1) for a, b, n in slowest}}


def _last_json(text: str) -> dict:
    """The JSON document `--json` printed last (Airflow's own log lines may come before it)."""
    dec = json.JSONDecoder()
    for i in sorted((i for i, c in enumerate(text) if c == "{" and (i == 0 or text[i - 1] == "\n")), reverse=True):
        try:
            return dec.raw_decode(text, i)[0]
        except ValueError:
            continue
    raise ValueError(f"no JSON document in: {text[-500:]}")


def _demo_once(people: int, seed: int, data_dir: Path) -> dict:
    """`beacon demo --days 1` (one day through dag.test(), one process) on the same world, in a child process:
    its in-process Airflow (SQLite metadata, its own environment) stays out of this one."""
    env = {**os.environ, "BEACON_DATA_DIR": str(data_dir)}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "beacon.cli", "demo", "--people", str(people), "--seed", str(seed),
                          "--days", "1", "--json"], env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"beacon demo failed ({res.returncode}):\n{(res.stdout + res.stderr)[-3000:]}")
    seconds = _last_json(res.stdout)["seconds"]
    dags = {d: seconds[d] for d in CHAIN}
    return {"dags_s": dags, "four_dags_s": round(sum(dags.values()), 1), "total_s": seconds["total"],
            "wall_s": round(wall, 1)}


def bench_stack(people: int = 20_000, seed: int = 42, workdir: Path | None = None, keep: bool = False,
                timeout: float = 1800, repeat: int = 1, baseline: bool = True, realtime_events: int = 0) -> dict:
    """`repeat` rounds of: the chain through a fresh stack, then (with `baseline`) `beacon demo` on the same
    world. Medians over the rounds; the ratio is the scheduler's chain against the demo's four DAGs."""
    work = workdir or Path(tempfile.mkdtemp(prefix="beacon-bench-stack-"))
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)  # mkdtemp makes it private; Postgres runs as the `postgres` user when we are root
    rounds = []
    try:
        generate = None
        for i in range(repeat):
            env = {"BEACON_DATA_DIR": str(work / f"data-{i}"), "BEACON_STACK_DIR": str(work / f"stack-{i}"),
                   "BEACON_API_PORT": str(free_port())}
            with override_env(**env):
                s = settings()
                t0 = time.perf_counter()
                prepare_world(s, people, seed)
                generate = generate or round(time.perf_counter() - t0, 1)
                r = {"stack": _stack_once(s, timeout, realtime_events)}
            if baseline:
                r["demo"] = _demo_once(people, seed, work / f"demo-{i}")
                r["ratio"] = round(r["stack"]["chain_s"] / r["demo"]["four_dags_s"], 2)
            rounds.append(r)
        out = {"people": people, "seed": seed, "repeat": repeat, "generate_s": generate,
               "startup_s": median(r["stack"]["startup_s"] for r in rounds),
               "chain_s": median(r["stack"]["chain_s"] for r in rounds),
               "chain_with_journeys_s": median(r["stack"]["chain_with_journeys_s"] for r in rounds),
               "dags_s": {d: median(r["stack"]["dags_s"][d] for r in rounds) for d in rounds[0]["stack"]["dags_s"]},
               "task_instances": rounds[0]["stack"]["task_instances"], "rounds": rounds}
        if realtime_events:
            e2a = [x for r in rounds for x in r["stack"]["event_to_action"]["latency_s"]]
            out["event_to_action"] = {"events": sum(r["stack"]["event_to_action"]["events"] for r in rounds),
                                      "entered": len(e2a), "median_s": round(median(e2a), 1) if e2a else None,
                                      "max_s": max(e2a) if e2a else None}
        if baseline:
            out["demo_four_dags_s"] = median(r["demo"]["four_dags_s"] for r in rounds)
            out["demo_dags_s"] = {d: median(r["demo"]["dags_s"][d] for r in rounds) for d in CHAIN}
            out["ratio_median"] = median(r["ratio"] for r in rounds)
        return out
    finally:
        if not keep and workdir is None:
            shutil.rmtree(work, ignore_errors=True)
