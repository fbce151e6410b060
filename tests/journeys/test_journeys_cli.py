"""`beacon journeys ...` on a small warehouse file: validate, list, preview, status, advance, simulate."""

from __future__ import annotations

import json

import duckdb
import pytest
from support.activation_world import journeys_warehouse, segment

from beacon.cli import main
from beacon.config import override_env


@pytest.fixture
def wh(tmp_path):
    path = tmp_path / "w.duckdb"
    con = journeys_warehouse(path)
    for s in ("win_back_lapsed", "hot_b2b_leads"):
        segment(con, s, [])
    con.close()
    with override_env(BEACON_WAREHOUSE=str(path)):
        yield path


def out(capsys):
    return json.loads(capsys.readouterr().out)


def test_validate_and_list(capsys):
    assert main(["journeys", "validate", "--json"]) == 0
    d = out(capsys)
    assert d["problems"] == [] and "cart_abandonment" in d["valid"]
    assert main(["journeys", "list", "--json"]) == 0
    rows = {r["name"]: r for r in out(capsys)}
    assert rows["welcome_series"]["sends"] == 4 and rows["cart_abandonment"]["entry"] == "event"


def test_preview_writes_nothing_then_status_after_an_advance(wh, capsys):
    assert main(["journeys", "preview", "welcome_series", "--json"]) == 0
    d = out(capsys)
    assert d["would_enter"] == 10
    assert sum(d["branches"]["opened_first"].values()) == 10  # nobody has opened anything yet: all default
    assert list(d["branches"]["opened_first"]) == ["default -> welcome_2_reminder"]
    con = duckdb.connect(str(wh))
    assert con.execute("SELECT count(*) FROM journeys.transitions").fetchall()[0][0] == 0
    con.close()
    assert main(["journeys", "advance", "welcome_series", "--json"]) == 0
    r = out(capsys)
    assert r["entered"] == 10 and r["sent"] + r["deferred"] + sum(r["skipped"].values()) == 10
    assert main(["journeys", "status", "welcome_series", "--json"]) == 0
    s = out(capsys)
    assert s["in_flight"] == 10 and s["runs"][0]["status"] == "succeeded"


def test_simulate_prints_a_per_day_per_node_table(wh, capsys):
    assert main(["journeys", "simulate", "cart_abandonment", "--days", "2", "--step-minutes", "180", "--json"]) == 0
    d = out(capsys)
    assert d["days"] == 2 and d["runs"] == 17
    days = {r["day"] for r in d["per_day"]}
    assert days <= {1, 2, 3} and 1 in days
    nodes = {r["node_id"] for r in d["per_day"]}
    assert {"experiment", "wait_1h"} <= nodes
    assert sum(r["sent"] for r in d["per_day"]) > 0
    assert {a["arm"] for a in d["arms"]} <= {"reminders", "control"}
    # The real warehouse was only read.
    con = duckdb.connect(str(wh))
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'journeys'").fetchall()[0][0] == 0
    con.close()


def test_unknown_journey_is_a_clear_error(wh, capsys):
    for cmd in ("status", "advance", "preview", "simulate"):
        assert main(["journeys", cmd, "nope"]) == 2
        assert "no journey named 'nope'; known: birthday, cart_abandonment" in capsys.readouterr().err

