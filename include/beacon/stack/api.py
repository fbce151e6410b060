"""Airflow's REST API v2 on the stack: log in, trigger the chain, wait for every DAG of it.

The chain (which DAGs one ingest run leads to, in order) is `beacon.dag_chain`'s one definition.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from beacon import dag_chain
from beacon.config import Settings, settings
from beacon.stack.env import passwords
from beacon.stack.layout import StackError, paths, read_state

# The DAGs every project's chain has, and those it has where their DAG file exists (journeys).
CHAIN = dag_chain.CORE_CHAIN
OPTIONAL = tuple(d for d in dag_chain.CHAIN if dag_chain.BY_ID[d].optional)


def chain(s: Settings | None = None) -> tuple[str, ...]:
    """The DAGs one ingest run leads to, in order: the core four, then journeys when the project has it."""
    s = s or settings()
    return tuple(d for d in dag_chain.CHAIN if d in CHAIN or (s.home / "dags" / f"{d}.py").exists())


class Api:
    """Airflow's REST API v2 as one user: a JWT from POST /auth/token, sent as a Bearer token."""

    def __init__(self, base_url: str, username: str, password: str):
        import requests

        self.base = base_url.rstrip("/")
        self.http = requests.Session()
        r = self.http.post(f"{self.base}/auth/token", json={"username": username, "password": password}, timeout=30)
        if r.status_code not in (200, 201):
            raise StackError(f"login as {username} failed: HTTP {r.status_code} {r.text[:200]}")
        self.token = r.json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    @classmethod
    def for_stack(cls, s: Settings | None = None, username: str = "admin") -> Api:
        s = s or settings()
        return cls(f"http://127.0.0.1:{read_state(paths(s))['api_port']}", username, passwords(s)[username])

    def call(self, method: str, path: str, **kw):
        r = self.http.request(method, f"{self.base}/api/v2/{path.lstrip('/')}", timeout=60, **kw)
        if r.status_code >= 400:
            raise StackError(f"{method} /api/v2/{path}: HTTP {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    def runs(self, dag_id: str) -> list[dict]:
        return self.call("GET", f"dags/{dag_id}/dagRuns", params={"order_by": "-run_after", "limit": 50})["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.call("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 500})[
            "task_instances"]


def trigger_chain(api: Api, dags: tuple[str, ...] | None = None) -> str:
    """Unpause the chain and trigger the ingest DAG; the Assets schedule the rest. Returns the ingest run id.

    The ingest run takes the logical date of the schedule's latest interval, the one the scheduler would create
    on unpausing (catchup is off): with that date taken, the scheduler does not add a second ingest run."""
    dags = dags or chain()
    for dag_id in dags[1:]:
        api.call("PATCH", f"dags/{dag_id}", json={"is_paused": False})
    dag = api.call("GET", f"dags/{dags[0]}")
    logical = dag.get("next_dagrun_logical_date")
    run_id = f"beacon_chain__{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    api.call("POST", f"dags/{dags[0]}/dagRuns", json={"dag_run_id": run_id, "logical_date": logical,
                                                       "note": "triggered by beacon.stack.trigger_chain"})
    api.call("PATCH", f"dags/{dags[0]}", json={"is_paused": False})
    return run_id


def _check_runs(api: Api, dags: tuple[str, ...], since: str, done: dict[str, dict]) -> None:
    """Record in `done` each DAG's succeeded run queued after `since`; raise on a failed one, naming its tasks."""
    for dag_id in dags:
        if dag_id in done:
            continue
        runs = [r for r in api.runs(dag_id) if (r.get("queued_at") or r.get("run_after") or "") >= since
                and (dag_id == dags[0] or r.get("run_type") == "asset_triggered")]
        for r in runs:
            if r["state"] == "success":
                done[dag_id] = r
            elif r["state"] == "failed":
                tis = api.task_instances(dag_id, r["dag_run_id"])
                bad = [f"{t['task_id']}[{t.get('map_index', -1)}]" for t in tis if t["state"] in
                       ("failed", "upstream_failed")]
                raise StackError(f"{dag_id} run {r['dag_run_id']} failed; tasks: {bad}")


def wait_for_chain(api: Api, since: str, dags: tuple[str, ...] | None = None, timeout: float = 600,
                   say: Callable[[str], None] = print) -> dict[str, dict]:
    """Wait until each DAG has a run queued after `since` (ISO time) that succeeded, every DAG after the first
    one started by an Asset (not by its timetable); raise on a failed one (naming its failed tasks) or after
    `timeout` seconds. Returns the succeeded run of each DAG."""
    dags = dags or chain()
    deadline = time.monotonic() + timeout
    done: dict[str, dict] = {}
    last = ""
    while True:
        _check_runs(api, dags, since, done)
        now = ", ".join(f"{d}: {'success' if d in done else 'waiting'}" for d in dags)
        if now != last:
            say(now)
            last = now
        if len(done) == len(dags):
            return done
        if time.monotonic() > deadline:
            raise StackError(f"the chain did not finish within {timeout:.0f} s ({now})")
        time.sleep(3)
