"""The stack's processes: free ports, pid files that know a process by its start time, stopping a group."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from beacon.stack.layout import Paths


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our exited child not yet reaped) is not alive.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return True


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22): with the pid, its identity."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def write_pid(p: Paths, name: str, pid: int) -> None:
    """The component's pid file: its pid and its start time."""
    p.pid(name).write_text(f"{pid} {start_time(pid) or ''}".strip())


def running_pid(p: Paths, name: str) -> int | None:
    """The component's pid while that very process still runs, else None (and the stale pid file goes).

    The pid file holds the pid and the process's start time, so a reused pid is never taken for the component.
    Not the command line: Airflow rewrites its process title (setproctitle), and a read of /proc/<pid>/cmdline
    during the rewrite comes back empty; CI once saw a healthy api-server declared dead that way.
    """
    f = p.pid(name)
    if not f.exists():
        return None
    parts = f.read_text().split()
    pid = int(parts[0]) if parts and parts[0].isdigit() else 0
    if pid and alive(pid):
        started = parts[1] if len(parts) > 1 else None
        if started is None or start_time(pid) == started:
            return pid
    f.unlink(missing_ok=True)
    return None


def stop_pid(pid: int, grace: float = 30) -> None:
    """SIGTERM the component's process group (it and its task runners), SIGKILL after `grace` seconds."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    sig_target = (lambda sig: os.killpg(pgid, sig)) if pgid == pid else (lambda sig: os.kill(pid, sig))
    try:
        sig_target(signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(pid):
            break
        time.sleep(0.3)
    try:
        sig_target(signal.SIGKILL)  # whatever is left of the group (forked task runners)
    except ProcessLookupError:
        pass
