"""kill -9 of the server under load (placed by counting acknowledgements), a torn tail left in the spool,
restart, client retries, ingest: every acknowledged event is in raw exactly once, every batch the kill left
unacknowledged is retried and loaded once, and the torn line is never loaded."""

from __future__ import annotations

from pathlib import Path

from beacon.bench.service import _crash

TORN = b'{"type":"track","event":"Crash Test","anonymousId":"a","messageId":"torn-tail-'


def _tear(spool: Path) -> None:
    """What a write cut by the crash leaves: half a line at the end of the fullest spool file."""
    parts = sorted(spool.glob("*.part"), key=lambda p: p.stat().st_size)
    assert parts, "the kill left no spool file (the open file and the spare are always there)"
    with open(parts[-1], "ab") as fh:
        fh.write(TORN)


def test_acknowledged_events_survive_kill_9_exactly_once(tmp_path):
    batch, kill_after = 20, 30
    r = _crash(tmp_path, kill_after=kill_after, batch_size=batch, concurrency=8, after_kill=_tear)
    assert r["acknowledged_lost"] == 0 and r["loaded_twice"] == 0
    # The kill came while other requests were in flight: those batches were not acknowledged, were retried
    # after the restart, and are loaded exactly once (some of them may have reached the disk before the kill:
    # the ingest drops those copies as duplicates).
    assert r["batches_unacknowledged_at_kill"] >= 1
    assert r["batches_retried_after_restart"] == r["batches_unacknowledged_at_kill"]
    assert r["loaded"] == r["acknowledged_total"]
    # The torn tail was cut at the last complete line: not loaded, not quarantined as a bad row.
    assert r["ingest_totals"]["rows_read"] == r["loaded"] + r["duplicates_quarantined"]
    assert r["spool_files_left_by_kill"] >= 1
