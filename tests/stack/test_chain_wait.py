"""wait_for_chain's rules without a stack: later DAGs count only Asset-triggered runs, a failed run raises
naming its failed tasks, and the wait is bounded."""

from __future__ import annotations

import pytest

from beacon.stack import StackError, chain, trigger_chain, wait_for_chain

SINCE = "2026-11-28T20:00:00+00:00"


class FakeApi:
    def __init__(self, runs: dict[str, list[dict]], tis: list[dict] | None = None):
        self._runs, self._tis = runs, tis or []

    def runs(self, dag_id):
        return self._runs.get(dag_id, [])

    def task_instances(self, dag_id, run_id):
        return self._tis


def run(state, run_type="asset_triggered", queued="2026-11-28T20:05:00+00:00", rid="r"):
    return {"dag_run_id": rid, "state": state, "run_type": run_type, "queued_at": queued}


def test_a_timetable_run_of_a_later_dag_does_not_count():
    dags = ("a", "b")
    api = FakeApi({"a": [run("success", "manual")], "b": [run("success", "scheduled")]})
    with pytest.raises(StackError, match=r"did not finish within 0 s \(a: success, b: waiting\)"):
        wait_for_chain(api, SINCE, dags, timeout=0, say=lambda m: None)
    api = FakeApi({"a": [run("success", "manual")], "b": [run("success", "scheduled"), run("success", rid="b1")]})
    assert wait_for_chain(api, SINCE, dags, timeout=0, say=lambda m: None)["b"]["dag_run_id"] == "b1"


def test_runs_before_the_trigger_do_not_count_and_a_failure_names_its_tasks():
    dags = ("a", "b")
    old = run("success", "manual", queued="2026-11-28T19:00:00+00:00")
    with pytest.raises(StackError, match="a: waiting"):
        wait_for_chain(FakeApi({"a": [old]}), SINCE, dags, timeout=0, say=lambda m: None)
    api = FakeApi({"a": [run("success", "manual")], "b": [run("failed", rid="b9")]},
                  tis=[{"task_id": "sync_destination", "map_index": 3, "state": "failed"},
                       {"task_id": "publish", "map_index": -1, "state": "success"}])
    with pytest.raises(StackError, match=r"b run b9 failed; tasks: \['sync_destination\[3\]'\]"):
        wait_for_chain(api, SINCE, dags, timeout=5, say=lambda m: None)


def test_the_chain_is_the_four_dags_then_journeys_where_it_exists(tmp_path, monkeypatch):
    (tmp_path / "dags").mkdir()
    monkeypatch.setenv("BEACON_HOME", str(tmp_path))
    from beacon.config import settings

    assert chain(settings()) == ("beacon_ingest", "beacon_warehouse", "beacon_ml", "beacon_activation")
    (tmp_path / "dags" / "beacon_journeys.py").write_text("")
    assert chain(settings())[-1] == "beacon_journeys"


def test_trigger_unpauses_the_chain_and_takes_the_scheduled_interval():
    calls = []

    class Recording(FakeApi):
        def call(self, method, path, **kw):
            calls.append((method, path, kw.get("json")))
            return {"next_dagrun_logical_date": "2026-11-27T00:00:00Z"} if method == "GET" else {}

    trigger_chain(Recording({}))
    dags = chain()
    assert [c[1] for c in calls if c[0] == "PATCH"] == [f"dags/{d}" for d in (*dags[1:], dags[0])]
    [(_, path, body)] = [c for c in calls if c[0] == "POST"]
    assert path == "dags/beacon_ingest/dagRuns" and body["logical_date"] == "2026-11-27T00:00:00Z"
