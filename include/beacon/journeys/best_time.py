"""Best-time sends in a journey: people arriving at a `send` node with `best_time: true` wait (`deferred`, detail
`best_time`) until their learned local hour (`beacon.personalize.best_time.best_send_hours`: own opens and
clicks, the others' as prior, a bandit that keeps exploring), moved out of quiet hours to the first allowed hour;
already in that hour, or back from the wait: sent now."""

from __future__ import annotations

import zlib
from datetime import time

import pandas as pd

from beacon.journeys.sql import move_sql


def _engagement(run) -> pd.DataFrame:
    """The email events of the year before the warehouse clock of the people in `_bt_in`."""
    cols = {r[0] for r in run.con.execute("""SELECT column_name FROM information_schema.columns
        WHERE table_schema = 'marts' AND table_name = 'fct_email_events'""").fetchall()}
    if not cols:
        return pd.DataFrame(columns=["customer_id", "event_name", "event_at", "message_id"])
    msg = "e.message_id" if "message_id" in cols else "NULL::VARCHAR AS message_id"
    return run.con.execute(f"""SELECT e.customer_id, e.event_name, e.event_at, {msg}
        FROM marts.fct_email_events e WHERE e.customer_id IN (SELECT customer_id FROM _bt_in)
          AND e.event_name IN ('sent', 'open', 'click') AND e.event_at <= {run.Tl}
          AND e.event_at > {run.Tl} - INTERVAL 365 DAY""").df()


def _out_of_quiet_hours(hours, q) -> list[int]:
    """A quiet hour becomes the first allowed hour (quiet hours' end)."""
    first = (q.end.hour + (q.end.minute > 0)) % 24

    def quiet(h: int) -> bool:
        t = time(int(h))
        return (t >= q.start or t < q.end) if q.start > q.end else q.start <= t < q.end

    return [first if quiet(h) else int(h) for h in hours]


def defer_to_best_time(run, node) -> int:
    """Defer the people in `_at` whose best hour is not now; leaves in `_at` the people to send now."""
    from beacon.personalize.best_time import best_send_hours, local_hours, next_send_times

    con = run.con
    con.execute("""CREATE OR REPLACE TEMP TABLE _bt_in AS SELECT a.*, coalesce(p.time_zone, 'UTC') AS bt_tz FROM _at a
        LEFT JOIN _people p ON p.customer_id = a.customer_id
        WHERE NOT (a.transition = 'deferred' AND coalesce(a.detail, '') = 'best_time')""")
    people = con.execute("SELECT DISTINCT customer_id, bt_tz AS tz FROM _bt_in ORDER BY 1").df()
    if not len(people):
        return 0
    seed = zlib.crc32(f"{run.j.name}|{node.id}|{run.T}".encode())
    hours = best_send_hours(_engagement(run), people, seed=seed).local_hour.to_numpy()
    if node.quiet_hours:
        hours = _out_of_quiet_hours(hours, node.quiet_hours)
    now = pd.Series([pd.Timestamp(run.T)] * len(people))
    in_hour = local_hours(now, people.tz) == pd.Series(hours).to_numpy()
    due = next_send_times(now, people.tz, pd.Series(hours)).dt.tz_convert("UTC").dt.tz_localize(None)
    con.register("_bt_df", pd.DataFrame({"customer_id": people.customer_id, "bt_due": due.where(~in_hour)}))
    con.execute("CREATE OR REPLACE TEMP TABLE _bt AS SELECT customer_id, bt_due::TIMESTAMP AS bt_due FROM _bt_df")
    con.unregister("_bt_df")
    src = "_bt_in a JOIN _bt b ON b.customer_id = a.customer_id"
    moved = run.emit(move_sql("NULL", outcome="'deferred'", detail="'best_time'", due_override="b.bt_due",
                              src=src, where="b.bt_due IS NOT NULL"))
    run.res.deferred += moved
    con.execute("""CREATE OR REPLACE TEMP TABLE _at AS SELECT * FROM _at WHERE (customer_id, entry_no) NOT IN
        (SELECT a.customer_id, a.entry_no FROM _bt_in a JOIN _bt b ON b.customer_id = a.customer_id
         WHERE b.bt_due IS NOT NULL)""")
    return moved
