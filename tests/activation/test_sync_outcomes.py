"""The sync engine's public result: each member's outcome (sent, skipped with the governance reason, failed),
which the journeys read instead of the engine's working tables."""

from __future__ import annotations

from support.activation_world import AS_OF, audience, consent, segment, warehouse

from beacon.activation.destinations import Batch, RowResult
from beacon.activation.governance import add_suppression
from beacon.activation.sync import run_sync


class Flaky:
    """An email destination (batches of 5) that refuses some members and can crash on a batch."""

    name = channel = "email"
    default_mode, fields, required_any = "upsert", None, ("email",)

    def __init__(self, refuse: set[str] = frozenset(), crash_on_batch: int | None = None):
        self.refuse, self.crash_on_batch, self.batches = set(refuse), crash_on_batch, 0

    def plan(self, rows, name, meta):
        return [Batch(name=name, rows=rows.iloc[i:i + 5].reset_index(drop=True), meta=meta)
                for i in range(0, len(rows), 5)]

    def send(self, batch):
        self.batches += 1
        if self.batches == self.crash_on_batch:
            raise ConnectionError("the destination went away")
        return [RowResult(c, "failed" if c in self.refuse else "delivered", "refused" if c in self.refuse else "")
                for c in batch.rows.customer_id]


def outcomes(s) -> dict[str, tuple[str, str | None]]:
    return {r.customer_id: (r.outcome, r.reason) for r in s.outcomes.itertuples()}


def test_each_member_has_an_outcome_and_a_rerun_reports_the_acknowledged_as_sent():
    con = warehouse(12)
    a = audience("news", holdout=0.0)
    segment(con, a.name, [f"c{i}" for i in range(10)])
    add_suppression(con, "erased", AS_OF, customer_id="c0")
    consent(con, "c1", "email", "opt_out")
    s = run_sync(con, a, [a], Flaky(refuse={"c2"}), AS_OF, outcomes=True)
    got = outcomes(s)
    assert got["c0"] == ("skipped", "erased") and got["c1"] == ("skipped", "opted_out")
    assert got["c2"][0] == "failed"
    assert {c for c, (o, _) in got.items() if o == "sent"} == {f"c{i}" for i in range(3, 10)}
    assert len(got) == 10 and s.desired == 8 == s.delivered + s.failed
    # Nothing changed: nothing is sent again, yet the acknowledged members still count as sent; c2 is retried.
    again = run_sync(con, a, [a], Flaky(), AS_OF, outcomes=True)
    assert again.adds == 1 and {c for c, (o, _) in outcomes(again).items() if o == "sent"} == {
        f"c{i}" for i in range(2, 10)}
    assert run_sync(con, a, [a], Flaky(), AS_OF).outcomes is None  # only when asked for


def test_a_destination_that_fails_mid_run_returns_what_was_acknowledged_when_told_not_to_raise():
    con = warehouse(12)
    a = audience("news", holdout=0.0)
    segment(con, a.name, [f"c{i}" for i in range(10)])
    s = run_sync(con, a, [a], Flaky(crash_on_batch=2), AS_OF, outcomes=True, raise_errors=False)
    assert s.status == "failed" and "went away" in s.message
    got = outcomes(s)
    assert sorted(o for o, _ in got.values()) == ["failed"] * 5 + ["sent"] * 5  # the first batch was acknowledged
    status = con.execute("SELECT status FROM activation.sync_runs WHERE run_id = ?", [s.run_id]).fetchone()[0]
    assert status == "failed"
