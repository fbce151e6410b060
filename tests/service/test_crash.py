"""kill -9 of the server under load (placed by counting acknowledgements), restart, client retries, ingest:
every acknowledged event is in raw exactly once."""

from __future__ import annotations

from beacon.bench.service import _crash


def test_acknowledged_events_survive_kill_9_exactly_once(tmp_path):
    r = _crash(tmp_path, kill_after=30, batch_size=20, concurrency=4)
    assert r["acknowledged_before_kill"] >= 600
    assert r["acknowledged_lost"] == 0 and r["loaded_twice"] == 0
    assert r["loaded"] == r["acknowledged_total"]  # every unacknowledged batch was re-sent and acknowledged
    assert r["ingest_totals"]["rows_read"] == r["loaded"] + r["duplicates_quarantined"]
