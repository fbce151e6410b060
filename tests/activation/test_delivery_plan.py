"""The activation run's plan (one sync task per configured destination) and the loop inside that task."""

from __future__ import annotations

import pytest

from beacon.activation import activate as act
from beacon.activation.activate import activate_destination, delivery_pairs, delivery_plan
from beacon.activation.destinations.registry import NotConfigured


def test_the_plan_keeps_every_configured_pair_in_priority_order_and_says_why_the_rest_are_left_out(manifest):
    pairs = delivery_pairs(manifest)
    asked = []

    def configured(d):
        asked.append(d)
        return d in ("file", "webhook")

    plan, skipped = delivery_plan(manifest, configured)
    assert sorted(asked) == sorted({p["destination"] for p in pairs})  # each destination asked once
    assert {p["destination"] for p in plan} == {"file", "webhook"} & {p["destination"] for p in pairs}
    for entry in plan:  # the pairs of that destination, in delivery_pairs' (priority) order
        assert entry["audiences"] == [p["audience"] for p in pairs if p["destination"] == entry["destination"]]
    assert {(x["audience"], x["destination"]) for x in skipped} == \
        {(p["audience"], p["destination"]) for p in pairs if p["destination"] not in ("file", "webhook")}
    assert all(f"beacon_{x['destination']}" in x["reason"] for x in skipped)
    assert sum(len(e["audiences"]) for e in plan) + len(skipped) == len(pairs)


class _Summary:
    def __init__(self, audience):
        self.audience, self.destination = audience, "file"
        self.delivered, self.adds, self.updates, self.removes, self.failed, self.message = 3, 3, 0, 0, 0, ""


def test_one_failing_audience_does_not_stop_the_others_and_is_reported(monkeypatch, caplog):
    calls = []

    def fake(con, manifest_path, audience, destination, exports_url, as_of, run_id=None):
        calls.append((audience, run_id))
        if audience == "b":
            raise ConnectionError("server went away")
        return _Summary(audience)

    monkeypatch.setattr(act, "activate", fake)
    seen = []
    done, errors = activate_destination(None, None, "file", ["a", "b", "c"], "/x", None, run_id="r1",
                                        on_done=lambda s: seen.append(s.audience))
    assert [a for a, _ in calls] == ["a", "b", "c"]  # in the given (priority) order, c after the failure
    assert [r for _, r in calls] == ["r1:a:file", "r1:b:file", "r1:c:file"]
    assert [s.audience for s in done] == seen == ["a", "c"]
    assert errors == {"b": "ConnectionError: server went away"}
    assert "b -> file failed" in caplog.text


def test_a_destination_without_a_connection_stops_the_task(monkeypatch):
    def fake(*a, **k):
        raise NotConfigured("destination 'email' has no Airflow connection")

    monkeypatch.setattr(act, "activate", fake)
    with pytest.raises(NotConfigured):
        activate_destination(None, None, "email", ["a", "b"], "/x", None, run_id="r")
