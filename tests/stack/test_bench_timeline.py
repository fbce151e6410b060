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


def test_event_to_action_stops_waiting_once_everyone_entered_and_looks_again_when_the_warehouse_is_busy(monkeypatch):
    import beacon.bench.stack as bench
    from beacon.warehouse import WarehouseBusy

    answers = [WarehouseBusy("busy"),  # a DAG holds the warehouse: look again later
               ([("c1", "2026-11-28 10:00:05")], {"c1": "r1:cart_abandonment"}),  # one of two entered
               ([("c1", "2026-11-28 10:00:05"), ("c2", None)], {"c1": "r1:x", "c2": "r2:x"}),  # c2's run not finished
               ([("c1", "2026-11-28 10:00:05"), ("c2", "2026-11-28 10:00:09")], {"c1": "r1:x", "c2": "r2:x"}),
               AssertionError("looked again after everyone had entered")]
    calls = []

    def entries(people, key_env, lock_wait=None):
        calls.append((people, lock_wait))
        a = answers[len(calls) - 1]
        if isinstance(a, Exception):
            raise a
        return a

    monkeypatch.setattr(bench, "_entries", entries)
    bench._wait_for_entries(["c1", "c2"], horizon=600, every=0)
    assert calls == [(["c1", "c2"], 0)] * 4  # never waits for the lock; stops at the first complete answer
    calls.clear()
    answers[:] = [([], {})] * 10_000
    bench._wait_for_entries(["c1"], horizon=0.05, every=0.01)  # nobody enters: it gives up at the horizon
    assert 1 <= len(calls) < 10_000
