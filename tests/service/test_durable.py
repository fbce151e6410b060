"""The spool in-process: recover() on torn files, and group commit (acknowledged only after the fsync that
holds the line; the requests waiting at one moment share one fsync)."""

from __future__ import annotations

import os
import stat
import threading

from beacon.service.durable import DurableLog

STAMP = "20260629T101500000000"


def test_recover_cuts_a_torn_part_file_at_its_last_complete_line(tmp_path):
    log = DurableLog(tmp_path)
    log.spool.mkdir(parents=True)
    torn = log.spool / f"collected_events-{STAMP}-41-000001.jsonl.part"
    torn.write_bytes(b'{"n":1}\n{"n":2}\n{"n":3,"cut')
    only_torn = log.spool / f"collected_events-{STAMP}-41-000002.jsonl.part"
    only_torn.write_bytes(b'{"n":4')
    empty = log.spool / f"collected_events-{STAMP}-41-000003.jsonl.part"
    empty.write_bytes(b"")
    other = log.spool / f"webhook_events-{STAMP}-41-000001.jsonl.part"  # another log's spool: not ours
    other.write_bytes(b'{"x":1')
    out = log.recover()
    published = tmp_path / "2026-06-29" / f"collected_events-{STAMP}-41-000001.jsonl"
    assert out == [published]
    assert published.read_bytes() == b'{"n":1}\n{"n":2}\n'
    assert sorted(p.name for p in log.spool.iterdir()) == [other.name]


def test_group_commit_one_fsync_per_batch_of_concurrent_requests(tmp_path, monkeypatch):
    real_fsync = os.fsync
    file_fsyncs: list[int] = []
    in_first, release = threading.Event(), threading.Event()

    def counting_fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # data files (directory fsyncs are counted apart)
            file_fsyncs.append(fd)
            if len(file_fsyncs) == 1:  # hold the first commit: requests pile up meanwhile
                in_first.set()
                assert release.wait(60)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    log = DurableLog(tmp_path, rotate_seconds=3600)
    log.start()
    try:
        first = log.submit(b'{"n":0}\n')
        assert in_first.wait(60)
        results: list = [None] * 40

        def request(i: int) -> None:
            results[i] = log.submit(b'{"n":%d}\n' % (i + 1))

        threads = [threading.Thread(target=request, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # Written but not yet fsynced: nobody is acknowledged.
        assert not first.done() and not any(f.done() for f in results)
        release.set()
        first.result(60)
        for f in results:
            f.result(60)
        # 41 requests, 2 fsyncs of the data file: the first, then one for the 40 that waited for it.
        assert len(file_fsyncs) == 2
    finally:
        release.set()
        log.stop()
    lines = b"".join(p.read_bytes() for p in log.closed_files).splitlines()
    assert sorted(lines) == sorted(b'{"n":%d}' % i for i in range(41))
