"""The child process of the activation crash tests: one sync of the audience `hooked`, with a crash hook.

Children are forked from a multiprocessing fork server that imported DuckDB, pandas and the sync engine once
(tests/activation/test_activation_crash.py), so a child starts in a fraction of a second instead of paying a fresh
interpreter's imports (about 3 CPU-seconds each, 16 children per run). Each child is still its own OS process, killed with a real
SIGKILL; it opens the warehouse itself and shares nothing with the test process but the file.
"""

from __future__ import annotations

import json
import os
import signal
import traceback
from multiprocessing.connection import Connection

import duckdb

import beacon.activation.sync as sync
from beacon.activation.destinations.registry import build
from beacon.activation.destinations.webhook import Webhook
from support.activation_world import AS_OF, audience


def run(conn: Connection, db: str, url: str, kind: str, kill_after: int, when: str, exports: str,
        env: dict[str, str]) -> None:
    """Sync `hooked` to `kind`; SIGKILL this process once `kill_after` rows have been acknowledged by the
    destination, either before their commit (the destination has them, the warehouse does not) or just after it.
    Deterministic: it counts acknowledgements, not seconds. Sends "READY", then the sync's counts as JSON."""
    os.environ.clear()
    os.environ.update(env)  # the test's environment now (its AIRFLOW_CONN_* connections), not the fork server's
    try:
        real_commit, acked = sync._commit, [0]

        def commit(con, s, rows, results, as_of, attempts):
            acked[0] += len(results)
            due = kill_after and acked[0] >= kill_after
            if due and when == "before_commit":
                os.kill(os.getpid(), signal.SIGKILL)
            out = real_commit(con, s, rows, results, as_of, attempts)
            if due and when == "after_commit":
                os.kill(os.getpid(), signal.SIGKILL)
            return out

        sync._commit = commit
        con = duckdb.connect(db)
        a = audience("hooked")
        dest = Webhook(url, batch_size=20, concurrency=2, seed=1, backoff_base=0.01) if kind == "webhook" \
            else build(kind, exports)
        conn.send("READY")
        s = sync.run_sync(con, a, [a], dest, AS_OF)
        con.close()
        conn.send(json.dumps({"changes": s.changes, "delivered": s.delivered, "failed": s.failed}))
    except BaseException:
        conn.send("ERROR " + traceback.format_exc())
        raise
