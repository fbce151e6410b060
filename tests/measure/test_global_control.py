"""The global control group: excluded from every send by governance, redrawn per numbered period, history kept."""

from __future__ import annotations

from datetime import timedelta

from support.activation_world import AS_OF, audience, segment, warehouse

from beacon.activation.governance import governed
from beacon.activation.sync import run_sync
from beacon.measure.global_control import global_period
from beacon.measure.warehouse import refresh_global_control


class Sink:
    name, channel, default_mode, required_any, fields = "sink", "webhook", "mirror", (), None

    def __init__(self):
        self.received = []

    def plan(self, rows, name, meta):
        from beacon.activation.destinations import Batch

        return [Batch(name=name, rows=rows, meta=meta)]

    def send(self, batch):
        from beacon.activation.destinations import RowResult

        self.received += batch.rows.to_dict(orient="records")
        return [RowResult(r, "delivered") for r in batch.rows.customer_id]


def test_global_control_gets_nothing_and_is_stable_within_a_period(monkeypatch):
    monkeypatch.setenv("BEACON_GLOBAL_CONTROL_PCT", "10")
    con = warehouse(4000)
    a, b = audience("a", holdout=10), audience("b", holdout=0)
    ids = [f"c{i}" for i in range(4000)]
    segment(con, "a", ids)
    segment(con, "b", ids)
    ga, gb = governed(con, a, [a], "webhook", AS_OF), governed(con, b, [b], "webhook", AS_OF)
    glob_a = set(ga[ga.reason == "global_control"].customer_id)
    # The same people in every audience, about 10% of everyone, and none of them in an audience's holdout.
    assert glob_a == set(gb[gb.reason == "global_control"].customer_id)
    assert 0.08 < len(glob_a) / 4000 < 0.12
    assert not glob_a & set(ga[ga.held_out].customer_id)
    sink = Sink()
    s = run_sync(con, a, [a], sink, AS_OF)
    assert not glob_a & {r["customer_id"] for r in sink.received} and s.suppressed["global_control"] == len(glob_a)
    # History: this period's members are recorded; the next period redraws the group and both are kept.
    first = refresh_global_control(con, AS_OF)
    later = AS_OF + timedelta(days=91)
    assert global_period(later) == global_period(AS_OF) + 1
    second = refresh_global_control(con, later)
    members = con.execute("SELECT period, list(customer_id) FROM measurement.global_control GROUP BY 1").fetchall()
    by_period = {p: set(m) for p, m in members}
    assert by_period[first["period"]] == glob_a and first["members"] == len(glob_a)
    assert by_period[second["period"]] != glob_a and second["members"] > 0
    assert refresh_global_control(con, AS_OF)["members"] == len(glob_a)  # re-running adds nobody twice


def test_no_global_control_by_default():
    con = warehouse(500)
    a = audience("a")
    segment(con, "a", [f"c{i}" for i in range(500)])
    assert not (governed(con, a, [a], "webhook", AS_OF).reason == "global_control").any()
