"""The membership history records only the changes, and replaying it gives every day's members (issue 28).

`record_membership` diffs inside DuckDB against the members the history implies; these tests check it against a
plain Python model of that history over random sequences of days, re-runs of a day included.
"""

from __future__ import annotations

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from beacon.audiences import Audience, record_membership

AUD = Audience("a", "d", "o", ("file",), 1, 0.0, "daily", "segments.a", "a", "models/segments/a.sql")
PEOPLE = [f"c{i}" for i in range(8)]
DAYS = [f"2026-06-{d:02d}" for d in range(1, 9)]


def _replay(con: duckdb.DuckDBPyConnection, day: str) -> set[str]:
    """The members on `day` as the recorded changes say (each person's latest change up to that day)."""
    rows = con.execute("""SELECT customer_id, change FROM audiences.membership_events WHERE as_of <= ?::DATE
        ORDER BY as_of, change = 'exited'""", [day]).fetchall()
    members: set[str] = set()
    for cid, change in rows:
        (members.add if change == "entered" else members.discard)(cid)
    return members


# Each step: a day index (re-running a day, or an earlier one, is allowed as long as later days are re-run after
# it, as a backfill does) and that day's members.
steps = st.lists(st.tuples(st.sets(st.sampled_from(PEOPLE)), st.booleans()), min_size=1, max_size=len(DAYS))


@settings(max_examples=60, deadline=None)
@given(steps)
def test_recorded_changes_replay_to_every_days_members(days):
    con = duckdb.connect()
    con.execute("CREATE SCHEMA segments; CREATE TABLE segments.a (customer_id VARCHAR, x INTEGER)")
    before: set[str] = set()
    for i, (members, rerun) in enumerate(days):
        con.execute("DELETE FROM segments.a")
        if members:
            con.executemany("INSERT INTO segments.a VALUES (?, ?)", [[m, int(m[1:])] for m in sorted(members)])
        runs = 2 if rerun else 1  # a re-run of the day rewrites it: the same result
        for _ in range(runs):
            got = record_membership(con, AUD, DAYS[i])
        # Only the changes are written, and the counts say which.
        assert got == {"audience": "a", "as_of": DAYS[i], "size": len(members), "entered": len(members - before),
                       "exited": len(before - members)}
        n_day = con.execute("SELECT count(*) FROM audiences.membership_events WHERE as_of = ?::DATE",
                            [DAYS[i]]).fetchall()[0][0]
        assert n_day == len(members ^ before)
        assert _replay(con, DAYS[i]) == members
        before = members
    # Each entry keeps its qualifying row.
    bad = con.execute("""SELECT count(*) FROM audiences.membership_events WHERE change = 'entered'
        AND (qualifying->>'customer_id' <> customer_id OR (qualifying->>'x')::INTEGER <> substr(customer_id, 2)::INTEGER)
        """).fetchall()[0][0]
    assert bad == 0


def test_a_backfilled_day_is_compared_with_the_days_before_it_only():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA segments; CREATE TABLE segments.a (customer_id VARCHAR, x INTEGER)")
    con.execute("INSERT INTO segments.a VALUES ('c1', 1)")
    record_membership(con, AUD, "2026-06-01")
    con.execute("INSERT INTO segments.a VALUES ('c2', 2)")
    record_membership(con, AUD, "2026-06-03")
    # Day 2 run late with c2 only: c1 left on day 2 and c2 entered; day 3's rows are not read for it.
    con.execute("DELETE FROM segments.a WHERE customer_id = 'c1'")
    got = record_membership(con, AUD, "2026-06-02")
    assert (got["entered"], got["exited"]) == (1, 1)
    assert _replay(con, "2026-06-02") == {"c2"}
