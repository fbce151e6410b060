"""`make up`, `make down`, status: Postgres and the four components started, checked and stopped together."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from beacon.config import Settings, settings
from beacon.stack.components import COMPONENTS, health, init_airflow, job_healthy, start_component
from beacon.stack.env import USERS
from beacon.stack.layout import Paths, StackError, log_tail, paths, read_state, save_state
from beacon.stack.postgres import pg_running, start_postgres, stop_postgres
from beacon.stack.processes import port_free, running_pid, stop_pid

# `down` stops the API server last: until then, a client can still see what is stopping.
STOP_ORDER = ("scheduler", "triggerer", "dag-processor", "api-server")


def _wait_healthy(p: Paths, api_port: int, started: dict[str, subprocess.Popen], timeout: float) -> None:
    """Until every component reports healthy; raise naming the first that died or is not healthy in time."""
    deadline = time.monotonic() + timeout
    while True:
        dead = [n for n in COMPONENTS if not running_pid(p, n)]
        if dead:
            n = dead[0]
            code = started[n].poll() if n in started else None
            raise StackError(f"airflow {n} exited during start-up (exit code {code}); last lines of {p.log(n)}:\n"
                             f"{log_tail(p.log(n))}")
        h = health(api_port)
        waiting = [n for n in COMPONENTS if not job_healthy(h, n)]
        if not waiting:
            return
        if time.monotonic() > deadline:
            n = waiting[0]
            raise StackError(f"airflow {n} not healthy after {timeout:.0f} s (health: {h}); "
                             f"last lines of {p.log(n)}:\n{log_tail(p.log(n))}")
        time.sleep(2)


def up(s: Settings | None = None, say: Callable[[str], None] = print, timeout: float = 240) -> dict:
    """Start (or keep) Postgres and the four Airflow components; return where the UI is and who can log in."""
    from beacon.dbt import ensure_manifest

    s = s or settings()
    p = paths(s)
    p.root.mkdir(parents=True, exist_ok=True)
    running = {n: pid for n in COMPONENTS if (pid := running_pid(p, n))}
    st = read_state(p)
    api_port = int(st["api_port"]) if running.get("api-server") and st.get("api_port") else s.api_port
    if "api-server" not in running and not port_free(api_port):
        raise StackError(f"port {api_port} on 127.0.0.1 is taken by another program: stop it, or choose another "
                         f"port with BEACON_API_PORT=<port> make up")
    save_state(p, api_port=api_port)
    say("dbt parse (the DAGs render from the manifest)")
    ensure_manifest(s)
    start_postgres(s, p, say)
    init_airflow(s, p, say)
    started: dict[str, subprocess.Popen] = {}
    for name in COMPONENTS:
        if name in running:
            say(f"{name} already running (pid {running[name]})")
            continue
        proc = start_component(s, p, name, api_port)
        started[name] = proc
        say(f"started {name} (pid {proc.pid}, log {p.log(name)})")
    _wait_healthy(p, api_port, started, timeout)
    info = {"url": f"http://127.0.0.1:{api_port}", "users": {u: r for u, r in USERS.items()},
            "passwords_file": str(p.passwords), "logs": str(p.logs), "started": list(started),
            "pg_port": read_state(p)["pg_port"]}
    say(f"Airflow UI: {info['url']}  (users {', '.join(USERS)}; passwords in {p.passwords})")
    if p.warehouse_key.exists() and not (s.warehouse_key or s.warehouse_key_conn):
        info["warehouse_key_file"] = str(p.warehouse_key)
        say(f"the warehouse is encrypted at rest with the key generated into {p.warehouse_key}; to use it from a "
            f"shell: export BEACON_WAREHOUSE_KEY_FILE={p.warehouse_key}")
    return info


def down(s: Settings | None = None, say: Callable[[str], None] = print) -> list[str]:
    """Stop the Airflow components (api-server last) and Postgres; idempotent. Returns what was stopped."""
    s = s or settings()
    p = paths(s)
    stopped = []
    for name in STOP_ORDER:
        pid = running_pid(p, name)
        if pid:
            stop_pid(pid)
            stopped.append(name)
            say(f"stopped {name} (pid {pid})")
        p.pid(name).unlink(missing_ok=True)
    if stop_postgres(p):
        stopped.append("postgres")
        say("stopped Postgres")
    if not stopped:
        say("nothing was running")
    return stopped


def status(s: Settings | None = None) -> dict:
    """Which components run, and the API's health answer."""
    s = s or settings()
    p = paths(s)
    st = read_state(p)
    comps = {n: running_pid(p, n) for n in COMPONENTS}
    return {"postgres": pg_running(p), "components": comps,
            "health": health(int(st["api_port"])) if st.get("api_port") else None,
            "url": f"http://127.0.0.1:{st['api_port']}" if st.get("api_port") else None}
