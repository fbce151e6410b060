"""`beacon bench stack`'s pure parts: where the chain's time went, and reading `beacon demo --json`'s output."""

from __future__ import annotations

import pytest

from beacon.bench.stack import _last_json, timeline


def _ti(task, start, end, map_index=-1):
    return {"task_id": task, "map_index": map_index, "start_date": f"2026-11-28T10:00:{start:02d}Z",
            "end_date": f"2026-11-28T10:00:{end:02d}Z" if end is not None else None}


def test_busy_counts_overlapping_tasks_once_and_idle_is_the_rest():
    runs = {"a": {"start_date": "2026-11-28T10:00:00Z"}, "b": {"end_date": "2026-11-28T10:00:40Z"}}
    tis = {"a": [_ti("x", 1, 10), _ti("y", 5, 12), _ti("never_ran", 0, None)],
           "b": [_ti("m", 20, 30, map_index=0), _ti("m", 29, 31, map_index=1)]}
    t = timeline(runs, tis, ("a", "b"))
    assert t["busy_s"] == 11 + 11  # 1-12 and 20-31
    assert t["idle_s"] == 40 - 22
    assert t["tasks"] == 4 and t["task_sum_s"] == 9 + 7 + 10 + 2
    assert list(t["slowest"])[:2] == ["b.m[0]", "a.x"]


def test_the_last_json_document_is_read_after_log_lines():
    out = 'INFO {not json}\n{"seconds": {"total": 1}}\nwarning: {"x": 1} inline\n{"seconds": {"total": 2}}\n'
    assert _last_json(out) == {"seconds": {"total": 2}}
    with pytest.raises(ValueError, match="no JSON document"):
        _last_json("no json here {")
