"""Crash safety: a sync process killed mid-delivery, then re-run, neither loses nor duplicates a delivery."""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from pathlib import Path

import duckdb
from support.activation_world import AS_OF, audience, segment, warehouse

from beacon.testing.receiver import FaultyReceiver

# Children fork from a server that imported the sync engine once (support/crash_child.py): a real process each,
# killed with a real SIGKILL, without a fresh interpreter's imports per child.
# (The server imports what support.crash_child imports from installed packages; Python 3.11's fork server does not
# get the test's sys.path, so support/ itself is imported by each child, which does.)
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(["duckdb", "pandas", "beacon.activation.sync", "beacon.activation.destinations.registry",
                               "beacon.activation.destinations.webhook", "beacon.audiences", "beacon.testing.profile"])


class Child:
    """One sync in a child process, killed at a chosen moment: by the receiver after its N-th applied request,
    or by the child itself after N acknowledged rows (before or after committing them)."""

    def __init__(self, db: Path, url: str = "", kind: str = "webhook", kill_after: int = 0, when: str = "",
                 exports: str = ""):
        from support import crash_child

        self.conn, child_end = _FORKS.Pipe(duplex=False)
        self.proc = _FORKS.Process(target=crash_child.run, args=(child_end, str(db), url, kind, kill_after, when,
                                                                 exports, dict(os.environ)))
        self.proc.start()
        child_end.close()  # the child holds its end: a kill shows here as the end of the pipe

    def kill(self) -> None:
        """SIGKILL the child; return once it is dead (its fork server has reaped it). Only waits on the process'
        sentinel, never reads it: the receiver's thread may call this while the test's thread is in wait()."""
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        multiprocessing.connection.wait([self.proc.sentinel], timeout=60)

    def wait(self) -> tuple[int, str, str]:
        """(exit code, its last JSON line, an error it reported) once the child has ended."""
        sent: list[str] = []
        deadline = time.monotonic() + 600  # a generous bound for a condition, not a timing
        while self.proc.is_alive() or self.conn.poll():
            if time.monotonic() > deadline:
                self.kill()  # never leave a child running behind a failed test
                raise TimeoutError(f"crash-test child still running after 600 s; it sent {sent}")
            try:
                if self.conn.poll(1):
                    sent.append(self.conn.recv())
            except EOFError:
                break
        self.proc.join()
        out = "\n".join(m for m in sent if m != "READY" and not m.startswith("ERROR "))
        err = "\n".join(m for m in sent if m.startswith("ERROR "))
        return self.proc.exitcode, out, err


def _desired(db: Path) -> dict[str, dict]:
    """What the destination should hold: every segment member with their current points (no holdout, all opted in)."""
    con = duckdb.connect(str(db))
    rows = con.execute("SELECT customer_id, points FROM segments.hooked").fetchall()
    con.close()
    return {c: p for c, p in rows}


def _delivered(db: Path) -> int:
    """Rows whose delivery is committed in the sync log."""
    con = duckdb.connect(str(db))
    try:
        return con.execute("SELECT count(*) FROM activation.sync_log WHERE status = 'delivered'").fetchall()[0][0]
    finally:
        con.close()


def _finish(db: Path, url: str) -> dict:
    """The re-run after the crashes, to completion, in this process."""
    from beacon.activation.destinations.webhook import Webhook
    from beacon.activation.sync import run_sync

    con = duckdb.connect(str(db))
    a = audience("hooked")
    s = run_sync(con, a, [a], Webhook(url, batch_size=20, concurrency=2, seed=1, backoff_base=0.01), AS_OF)
    again = run_sync(con, a, [a], Webhook(url, batch_size=20, seed=1), AS_OF)
    con.close()
    assert again.changes == 0  # and a further re-run sends nothing
    return s.to_dict()


def test_killed_mid_sync_then_rerun_neither_loses_nor_duplicates(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    warehouse(300, con=con)
    segment(con, "hooked", [f"c{i}" for i in range(200)], points=range(200))
    con.close()
    child: dict[str, Child] = {}
    kill_at = {3, 6}  # the 3rd and 6th applied requests: applied by the receiver, the answer never read

    def on_applied(n: int) -> None:
        if n in kill_at:
            child["now"].kill()

    with FaultyReceiver(on_applied=on_applied) as r:
        for _ in range(2):
            child["now"] = Child(db, r.url)
            assert child["now"].wait()[0] == -signal.SIGKILL
        assert _finish(db, r.url)["failed"] == 0  # the re-run, in this process
        # The killed batches had been applied before the kill (and, with two in flight, maybe acknowledged but not yet
        # committed), so they came again under the same keys and were dropped.
        assert r.redelivered >= 40 and r.redelivered % 20 == 0
        assert r.duplicates_applied == 0
        assert {x["customer_id"] for x in r.applied.values()} == set(_desired(db))
        assert len(r.applied) == 200

        # Now change the audience and kill the sync at chosen acknowledgements: once after 50 acknowledged rows but
        # before they are committed (the receiver has them, the warehouse does not), once just after committing 40.
        con = duckdb.connect(str(db))
        con.execute("UPDATE segments.hooked SET points = points + 1000 WHERE customer_id IN "
                    "(SELECT customer_id FROM segments.hooked ORDER BY customer_id LIMIT 60)")
        con.execute("DELETE FROM segments.hooked WHERE customer_id IN "
                    "(SELECT customer_id FROM segments.hooked ORDER BY customer_id DESC LIMIT 40)")
        con.execute("INSERT INTO segments.hooked SELECT 'c' || i, i FROM range(200, 260) t(i)")
        con.close()
        kill_at.clear()
        redelivered = r.redelivered
        for n, when in ((50, "before_commit"), (40, "after_commit")):
            before = _delivered(db)
            child["now"] = Child(db, r.url, kill_after=n, when=when)
            assert child["now"].wait()[0] == -signal.SIGKILL
            committed = _delivered(db) - before
            if when == "before_commit":
                assert committed < n  # killed with acknowledged rows not yet committed
            else:
                assert committed >= n  # the kill came after the commit
        assert _finish(db, r.url)["failed"] == 0
        assert r.redelivered > redelivered  # the acknowledged-but-uncommitted rows came again and were dropped
        print(f"total requests {r.requests}, redelivered rows {r.redelivered}")
    desired = _desired(db)
    # Nothing lost: every current member holds its current values at the receiver; every one who left was removed.
    held: dict[str, int] = {}
    con = duckdb.connect(str(db))
    log = con.execute("""SELECT idempotency_key, count(*) FROM activation.sync_log WHERE status = 'delivered'
        GROUP BY 1 HAVING count(*) > 1""").fetchall()
    state = dict(con.execute("SELECT customer_id, payload FROM activation.sync_state WHERE present").fetchall())
    con.close()
    by_member: dict[str, list[dict]] = {}
    for row in r.applied.values():
        by_member.setdefault(row["customer_id"], []).append(row)
    for c, rows in by_member.items():
        ops = [x["operation"] for x in rows]
        # Each member's applied changes: one add, then at most one update or one remove, never the same twice.
        assert len(ops) == len(set(ops)), (c, ops)
        if "remove" not in ops:
            last = next((x for x in rows if x["operation"] == "update"), rows[0])
            held[c] = last["fields"]["points"]
    assert held == desired
    assert log == []  # no change acknowledged twice
    assert {c: json.loads(p)["points"] for c, p in state.items()} == desired
    assert r.duplicates_applied == 0


def _world(tmp_path, members: int = 60) -> Path:
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    warehouse(100, con=con)
    segment(con, "hooked", [f"c{i}" for i in range(members)], points=range(members))
    con.close()
    return db


def test_file_export_killed_before_its_commit_is_rewritten_not_duplicated(tmp_path):
    # The file is written and acknowledged, then the process dies before the sync log records it. The re-run
    # sends the same changes under the same keys, so it writes the same file name with the same bytes.
    db, exports = _world(tmp_path), tmp_path / "exports"
    child = Child(db, kind="file", kill_after=1, when="before_commit", exports=str(exports))
    assert child.wait()[0] == -signal.SIGKILL
    assert _delivered(db) == 0
    [first] = sorted(exports.rglob("hooked-*.csv"))
    written = first.read_bytes()
    child = Child(db, kind="file", exports=str(exports))
    code, out, err = child.wait()
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["delivered"] == 60
    files = sorted(exports.rglob("hooked-*.csv"))
    assert files == [first] and first.read_bytes() == written  # one file, every member once, nothing duplicated
    exported = first.read_text().splitlines()[1:]
    assert len(exported) == len({line.split(",")[0] for line in exported}) == 60
    # Killed just after the commit: the re-run has nothing to send and writes no file.
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO segments.hooked SELECT 'c' || i, i FROM range(60, 70) t(i)")
    con.close()
    assert Child(db, kind="file", kill_after=1, when="after_commit", exports=str(exports)).wait()[0] == -signal.SIGKILL
    code, out, err = Child(db, kind="file", exports=str(exports)).wait()
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["changes"] == 0, err
    assert len(sorted(exports.rglob("hooked-*.csv"))) == 2


def test_email_killed_between_acceptance_and_commit_resends_only_the_uncommitted_messages(tmp_path, monkeypatch):
    """SMTP has no idempotency key: a message the server accepted but whose acceptance was not yet committed
    is sent again on the re-run (docs/architecture.md, "Exactly once"). The re-run resends exactly those, under
    the same Message-ID, and nothing else; nothing is lost."""
    from support.smtp import email_connection, smtp_server

    with smtp_server() as (sink, port):
        monkeypatch.setenv("AIRFLOW_CONN_BEACON_EMAIL", email_connection(port))
        db = _world(tmp_path)
        assert Child(db, kind="email", kill_after=7, when="before_commit").wait()[0] == -signal.SIGKILL
        accepted, committed = len(sink.messages), _delivered(db)
        assert committed < 7 <= accepted  # killed with accepted messages not yet committed
        code, out, err = Child(db, kind="email").wait()
        assert code == 0, err
        assert json.loads(out.strip().splitlines()[-1])["failed"] == 0
        ids = [m["Message-ID"] for _, m in sink.messages]
        to = [rcpt[0] for rcpt, _ in sink.messages]
        assert set(to) == {f"p{i}@example.com" for i in range(60)}  # nothing lost
        # Resent: exactly the accepted-but-uncommitted ones, each under its first Message-ID (a receiver can dedupe).
        assert len(ids) == accepted + (60 - committed)
        assert len(ids) - len(set(ids)) == accepted - committed == len(to) - len(set(to))
        code, out, err = Child(db, kind="email").wait()
        assert code == 0 and json.loads(out.strip().splitlines()[-1])["changes"] == 0, err
        assert len(sink.messages) == len(ids)  # a further run sends nothing


def test_ads_upload_killed_before_its_commit_is_rewritten_not_duplicated(tmp_path, monkeypatch):
    """Customer Match upload files, like the file export: named from their rows' keys and renamed into place
    whole, so the re-run after a kill before the commit writes the same file with the same bytes."""
    exports = tmp_path / "ads"
    monkeypatch.setenv("AIRFLOW_CONN_BEACON_ADS", json.dumps(
        {"conn_type": "generic", "extra": {"kind": "ads", "url": str(exports), "platform": "google"}}))
    db = _world(tmp_path)
    assert Child(db, kind="ads", kill_after=1, when="before_commit").wait()[0] == -signal.SIGKILL
    assert _delivered(db) == 0
    first = sorted(exports.rglob("hooked-*.csv"))
    assert len(first) == 1, first
    written = first[0].read_bytes()
    code, out, err = Child(db, kind="ads").wait()
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["delivered"] == 60
    assert sorted(exports.rglob("hooked-*.csv")) == first and first[0].read_bytes() == written
    assert len(written.decode().splitlines()) == 1 + 60  # header + every member once
    assert not list(exports.rglob("*.partial"))  # no half-written upload left by the kill


def test_sms_killed_between_acceptance_and_commit_resends_only_the_uncommitted_messages(tmp_path, monkeypatch):
    """The SMS API takes no idempotency key, so SMS is at least once (docs/architecture.md, "Delivery semantics"):
    a text the provider accepted but whose acceptance was not yet committed is sent again on the re-run. The re-run
    resends exactly those, at most once each; nothing committed is sent again; nothing is lost."""
    from beacon.testing.sms import FakeSmsProvider

    def phone(c: str) -> str:  # the world's phone number of member c<i>
        return f"+1415555{int(c[1:]):04d}"

    with FakeSmsProvider() as provider:
        monkeypatch.setenv("AIRFLOW_CONN_BEACON_SMS", json.dumps({
            "conn_type": "sms", "host": provider.url, "login": provider.sid, "password": provider.token,
            "extra": {"from": "+18005550000", "batch_size": 10}}))  # AS_OF 12:00 UTC: outside quiet hours
        db = _world(tmp_path)
        con = duckdb.connect(str(db))
        con.execute("INSERT INTO marts.dim_consent SELECT customer_id, 'sms', 'opt_in', TIMESTAMP '2026-01-01' "
                    "FROM segments.hooked")
        con.close()
        assert Child(db, kind="sms", kill_after=25, when="before_commit").wait()[0] == -signal.SIGKILL
        first = [m["To"] for m in provider.messages]
        con = duckdb.connect(str(db))
        committed = {phone(c) for (c,) in con.execute(
            "SELECT customer_id FROM activation.sync_log WHERE status = 'delivered'").fetchall()}
        con.close()
        assert len(committed) < 25 <= len(first)  # killed with accepted texts not yet committed
        assert committed <= set(first) and len(first) == len(set(first))
        code, out, err = Child(db, kind="sms").wait()
        assert code == 0, err
        assert json.loads(out.strip().splitlines()[-1])["failed"] == 0
        to = [m["To"] for m in provider.messages]
        resent = to[len(first):]
        assert set(to) == {phone(f"c{i}") for i in range(60)}  # nothing lost: every member texted at least once
        assert committed.isdisjoint(resent)  # nothing committed is sent again
        # Resent: exactly the accepted-but-uncommitted texts, once each (at most one resend per crash).
        assert {p for p in set(to) if to.count(p) > 1} == set(first) - committed
        assert max(to.count(p) for p in to) == 2
        assert len(to) == len(first) + 60 - len(committed)
        assert all(m["From"] == "+18005550000" and "Reply STOP" in m["Body"] for m in provider.messages)
        code, out, err = Child(db, kind="sms").wait()
        assert code == 0 and json.loads(out.strip().splitlines()[-1])["changes"] == 0, err
        assert len(provider.messages) == len(to)  # a further run sends nothing
