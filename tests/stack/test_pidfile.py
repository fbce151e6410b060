"""A component is known by its pid and its process start time, not by its command line.

CI once declared a healthy api-server dead: Airflow rewrites its process title (setproctitle), and a read of
/proc/<pid>/cmdline during the rewrite came back empty. These tests run real processes, no stack.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from beacon.stack import Paths
from beacon.stack.components import start_component as _start_component
from beacon.stack.processes import running_pid as _running_pid
from beacon.stack.processes import start_time as _start_time
from beacon.stack.processes import stop_pid as _stop_pid

# A process that keeps rewriting its title to one without "airflow" in it.
RETITLE = """
import time
from setproctitle import setproctitle
for i in range(100000):
    setproctitle(f"retitled {i}" + "x" * (i % 50))
    time.sleep(0.001)
"""


@pytest.fixture
def proc():
    p = subprocess.Popen([sys.executable, "-c", RETITLE])
    yield p
    p.kill()
    p.wait()


def _paths(tmp_path: Path) -> Paths:
    p = Paths(tmp_path)
    p.run.mkdir(parents=True)
    return p


def test_a_retitled_process_stays_alive_for_every_poll(tmp_path, proc):
    p = _paths(tmp_path)
    p.pid("api-server").write_text(f"{proc.pid} {_start_time(proc.pid)}")
    deadline = time.monotonic() + 3
    polls = 0
    while time.monotonic() < deadline:
        assert _running_pid(p, "api-server") == proc.pid, f"declared dead after {polls} polls"
        polls += 1
    assert polls > 100


def test_a_reused_pid_is_not_the_component(tmp_path, proc):
    p = _paths(tmp_path)
    # Same pid, another start time: the component died and something else got its pid.
    p.pid("scheduler").write_text(f"{proc.pid} {int(_start_time(proc.pid)) - 1}")
    assert _running_pid(p, "scheduler") is None
    assert not p.pid("scheduler").exists()  # the stale file is gone


def test_an_exited_component_is_dead_and_its_file_goes(tmp_path):
    p = _paths(tmp_path)
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    started = _start_time(done.pid)
    done.wait()
    p.pid("triggerer").write_text(f"{done.pid} {started}")
    assert _running_pid(p, "triggerer") is None
    assert not p.pid("triggerer").exists()


def test_start_component_records_pid_and_start_time(tmp_path, monkeypatch):
    from beacon.config import settings

    monkeypatch.setattr("beacon.stack.components.airflow_bin", lambda: "/bin/sleep")
    p = _paths(tmp_path)
    proc = _start_component(settings(), p, "triggerer", 0)  # runs `sleep triggerer`: exits at once, code 1
    try:
        pid, started = p.pid("triggerer").read_text().split()
        assert int(pid) == proc.pid and started.isdigit()
        assert proc.wait(10) != 0
        assert _running_pid(p, "triggerer") is None
    finally:
        proc.kill()


STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a component that does not stop on SIGTERM
if os.fork() == 0:  # and a task runner it forked, in the same process group
    time.sleep(600)
    sys.exit(0)
print("ready", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("stubborn", [False, True], ids=["stops-on-sigterm", "ignores-sigterm"])
def test_make_down_sends_sigterm_to_the_group_then_sigkill(stubborn):
    code = STUBBORN if stubborn else STUBBORN.replace("signal.signal(signal.SIGTERM, signal.SIG_IGN)", "pass")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert p.stdout.readline().strip() == "ready"
    pgid = p.pid
    _stop_pid(p.pid, grace=1)
    # SIGTERM first: a component that honours it ends by it; one that ignores it is killed after the grace.
    assert p.wait(timeout=120) == (-9 if stubborn else -15)
    deadline = time.time() + 120  # the forked runner of the group goes too (it is reaped by init)
    while time.time() < deadline and _group_alive(pgid):
        time.sleep(0.05)
    assert not _group_alive(pgid)


def _group_alive(pgid: int) -> bool:
    import os

    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
