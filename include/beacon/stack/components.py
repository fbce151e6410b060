"""Airflow's four components (scheduler, DAG processor, triggerer, API server) as processes of the stack."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from beacon.config import Settings, settings
from beacon.stack.env import POOLS_FILE, component_env, ensure_passwords
from beacon.stack.layout import Paths, StackError
from beacon.stack.processes import write_pid

COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
# The component's entry in the API's health answer (the api-server is healthy when its database is).
_HEALTH_KEY = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer",
               "api-server": "metadatabase"}


def airflow_bin() -> str:
    """The `airflow` executable of this environment."""
    return str(Path(sys.executable).with_name("airflow"))


def airflow_cli(args: list[str], s: Settings | None = None, check: bool = True,
                timeout: float = 600) -> subprocess.CompletedProcess:
    """`airflow <args>` against the stack's database, output captured."""
    s = s or settings()
    res = subprocess.run([airflow_bin(), *args], env=component_env(s), capture_output=True, text=True,
                         timeout=timeout)
    if check and res.returncode != 0:
        raise StackError(f"`airflow {' '.join(args)}` failed ({res.returncode}):\n{(res.stdout + res.stderr)[-3000:]}")
    return res


def init_airflow(s: Settings, p: Paths, say: Callable[[str], None]) -> None:
    """Idempotent: migrate the metadata DB, import the pools, generate the UI users' passwords once."""
    p.airflow_home.mkdir(parents=True, exist_ok=True)
    ensure_passwords(p)
    say("airflow db migrate")
    airflow_cli(["db", "migrate"], s)
    airflow_cli(["pools", "import", str(s.home / POOLS_FILE)], s)


def health(api_port: int) -> dict | None:
    """The API server's health answer, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=5) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def job_healthy(h: dict | None, name: str) -> bool:
    return bool(h) and (h.get(_HEALTH_KEY[name]) or {}).get("status") == "healthy"


def start_component(s: Settings, p: Paths, name: str, api_port: int) -> subprocess.Popen:
    """Start one component in its own session, its output in its log, its pid (and start time) in its pid file."""
    args = [airflow_bin(), name]
    if name == "api-server":
        args += ["--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"]
    p.logs.mkdir(parents=True, exist_ok=True)
    p.run.mkdir(parents=True, exist_ok=True)
    with open(p.log(name), "ab") as log:
        # Own session: `down` stops the component and the children it forked (task runners) together.
        proc = subprocess.Popen(args, env=component_env(s), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(s.home))
    write_pid(p, name, proc.pid)
    return proc
