"""A new node type is one module: its model, its successors and its compiled step, registered once.

`random_wait` below is such a module (written inside the test): it holds each person for a random, per-person
stable time between `min` and `max`. Nothing else in Beacon changes, yet journey files accept it, the
validator checks it (successors, waits in loops) and the engine runs people through it."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Literal

import pytest
import yaml
from support.activation_world import segment, warehouse
from support.journeys_world import Outboxes, env, journey

from beacon.journeys import nodes
from beacon.journeys.engine import advance
from beacon.journeys.fields import Duration, NodeId, Strict, parse_duration
from beacon.journeys.model import journey_schema
from beacon.journeys.nodes.base import NodeType
from beacon.journeys.sql import lit, move_sql
from beacon.journeys.validate import check, parse

T = datetime(2026, 6, 30, 15, 0)

# ------------------------------------------------------------------------------ the whole node type: one module


class RandomWaitNode(Strict):
    id: NodeId
    type: Literal["random_wait"]
    min: Duration
    max: Duration
    next: NodeId


class RandomWait(NodeType):
    type, model, waits = "random_wait", RandomWaitNode, True

    def arrival_due(self, run, node: RandomWaitNode) -> str:
        lo, hi = (int(parse_duration(d).total_seconds()) for d in (node.min, node.max))
        u = f"((hash({lit(node.id)} || m.customer_id) % 1000) / 1000.0)"  # stable per person and node
        return f"{run.Tl} + to_seconds(({lo} + ({hi} - {lo}) * {u})::BIGINT)"

    def step(self, run, node: RandomWaitNode) -> int:
        return run.emit(move_sql(lit(node.next)))
# ------------------------------------------------------------------------------------------------------------


DOC = {"name": "jitter", "version": 1, "entry": {"audience": "members"}, "start": "pause",
       "nodes": [{"id": "pause", "type": "random_wait", "min": "1h", "max": "3h", "next": "hello"},
                 {"id": "hello", "type": "send", "channel": "email", "template": "t", "next": "done"},
                 {"id": "done", "type": "exit"}]}


@pytest.fixture
def random_wait():
    nodes.register(RandomWait())
    yield
    nodes.unregister("random_wait")


def test_unknown_until_registered():
    j, problems = parse("jitter.yml", yaml.safe_dump(DOC))
    assert j is None and "unknown node type 'random_wait'" in problems[0]


def test_a_registered_node_type_is_validated_and_run(random_wait):
    j, problems = parse("jitter.yml", yaml.safe_dump(DOC))
    assert problems == [] and check("jitter.yml", j) == []
    assert "RandomWaitNode" in journey_schema()["$defs"]
    # The validator asks the node type for its successors: a wrong `next` is caught like any other.
    bad = {**DOC, "nodes": [{**DOC["nodes"][0], "next": "nowhere"}, *DOC["nodes"][1:]]}
    assert "leads to unknown node 'nowhere'" in check("bad.yml", journey(**bad))[0]

    con = warehouse(40)
    segment(con, "members", [f"c{i}" for i in range(40)])
    boxes, lock = Outboxes(), f"/tmp/beacon-journeys-registry-{os.getpid()}.lock"
    first = advance(con, j, T, env(boxes), lock_path=lock)
    assert first.entered == 40 and first.sent == 0  # everyone waits at least an hour
    due = dict(con.execute("SELECT customer_id, due_at FROM journeys.current WHERE node_id = 'pause'").fetchall())
    assert all(T + timedelta(hours=1) <= d <= T + timedelta(hours=3) for d in due.values())
    assert len(set(due.values())) > 10  # spread over the range, not one time for everyone
    mid = advance(con, j, T + timedelta(hours=2), env(boxes), lock_path=lock)
    expected_mid = sum(d <= T + timedelta(hours=2) for d in due.values())
    assert 0 < mid.sent == expected_mid < 40
    last = advance(con, j, T + timedelta(hours=3), env(boxes), lock_path=lock)
    assert mid.sent + last.sent == 40 and len(boxes.sent()) == 40
    assert con.execute("SELECT count(*) FROM journeys.current WHERE transition = 'exited'").fetchone()[0] == 40


def test_removed_again_after_the_test():
    assert "random_wait" not in nodes.types()
