"""`beacon journeys simulate`: run a journey over N simulated days on a copy of the demo warehouse.

The engine runs unchanged (same governance, same sync engine) against a destination that accepts every
message; what people do in response comes from the generator's engagement model
(`beacon.generate.engagement.respond`: opens, clicks and orders with a known true effect per journey and arm).
Baseline behaviour (cart adds, orders) is drawn once for the whole period. The copy is thrown away: the real
warehouse is only read.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from beacon.activation.destinations import Batch, RowResult
from beacon.journeys.engine import Env, advance, ensure_tables
from beacon.journeys.model import Journey


@dataclass
class Accepting:
    """A destination that accepts every message (the simulation's channel); counts what it got."""

    name: str
    channel: str
    fields: tuple[str, ...] | None = None
    required_any: tuple[str, ...] = ()
    default_mode: str = "upsert"
    delivered: int = 0

    def plan(self, rows: pd.DataFrame, name: str, meta: dict) -> list[Batch]:
        return [Batch(name=name, rows=rows, meta=meta)]

    def send(self, batch: Batch) -> list[RowResult]:
        self.delivered += len(batch.rows)
        return [RowResult(c, "delivered") for c in batch.rows.customer_id]


def _people(con: duckdb.DuckDBPyConnection, seed: int) -> pd.DataFrame:
    """Latent propensities per person (seeded, same latent model as the engagement model's people)."""
    ids = [r[0] for r in con.execute("SELECT customer_id FROM marts.dim_customers ORDER BY 1").fetchall()]
    rng = np.random.default_rng([seed, 16])
    n = len(ids)
    engagement = rng.normal(0, 1, n)
    intent = 0.5 * engagement + rng.normal(0, 0.87, n)
    value = rng.normal(0, 1, n)
    return pd.DataFrame({
        "customer_id": ids, "engagement": engagement, "intent": intent,
        "order_rate": np.exp(-4.2 + 0.9 * intent + 0.3 * value), "aov": np.exp(3.9 + 0.45 * value),
        "cart_rate": np.exp(-3.5 + 0.8 * intent),
        "p_open": 1 / (1 + np.exp(-(-0.9 + 1.0 * engagement))),
        "p_click": 1 / (1 + np.exp(-(-2.0 + 0.8 * engagement + 0.4 * intent))),
    })


def _baseline(people: pd.DataFrame, start: datetime, days: int, seed: int) -> pd.DataFrame:
    """Cart adds and orders that happen anyway during the simulated period."""
    rng = np.random.default_rng([seed, 161])
    out = []
    for kind, rate in (("product_added", "cart_rate"), ("order_completed", "order_rate")):
        k = rng.poisson(people[rate].to_numpy() * days)
        who = np.repeat(people.customer_id.to_numpy(), k)
        at = pd.Timestamp(start) + pd.to_timedelta(rng.random(len(who)) * days * 86400, unit="s")
        out.append(pd.DataFrame({"customer_id": who, "event_name": kind, "event_at": at,
                                 "event_key": [f"sim-{kind}-{i}" for i in range(len(who))]}))
    return pd.concat(out, ignore_index=True)


def _responses(con, journey: str, people: pd.DataFrame, since, until, seed: int) -> pd.DataFrame:
    """Opens, clicks and nudged orders that follow the sends and arm assignments of (since, until]."""
    from beacon.generate.engagement import DEFAULT_BOOK, respond

    exp = con.execute("""SELECT customer_id, 'journey:' || journey AS campaign,
            CASE WHEN arm = 'control' THEN 'control' ELSE 'treatment' END AS arm, transition = 'sent' AS sent,
            'email' AS channel, occurred_at AS exposed_at
        FROM journeys.transitions WHERE journey = ? AND occurred_at > ? AND occurred_at <= ?
          AND (transition = 'sent' OR (transition = 'assigned' AND arm = 'control'))""",
                      [journey, since, until]).df()
    if exp.empty:
        return pd.DataFrame(columns=["customer_id", "event_name", "event_at", "event_key"])
    exp["exposed_at"] = pd.to_datetime(exp.exposed_at, utc=True)
    # Baseline orders are drawn once for the period (_baseline): here only what the message causes.
    ev = respond(exp, people.assign(order_rate=0.0), seed=seed, effects=DEFAULT_BOOK)
    name = ev.event_type.map({"open": "email_open", "click": "email_click", "order": "order_completed"})
    return pd.DataFrame({"customer_id": ev.customer_id, "event_name": name,
                         "event_at": ev.occurred_at.dt.tz_convert(None), "event_key": ev.campaign})


def simulate(warehouse: Path, j: Journey, days: int, step_minutes: int = 60, seed: int = 16,
             env: Env | None = None) -> dict:
    """Advance `j` every `step_minutes` for `days` simulated days from the warehouse clock; a per-day, per-node
    table of what happened (entered, sent, skipped, deferred, exited by reason) and who is where at the end."""
    from beacon.warehouse import clock, close_warehouse, open_warehouse, table_exists, warehouse_key

    with tempfile.TemporaryDirectory(prefix="beacon-journeys-sim-") as tmp:
        copy = Path(tmp) / "sim.duckdb"
        shutil.copyfile(warehouse, copy)
        key = warehouse_key()  # the copy is encrypted with the warehouse's key, when it is
        con = open_warehouse(copy, key=key)
        try:
            start = clock(con)
            con.execute("DROP VIEW IF EXISTS journeys.events")
            con.execute("DROP TABLE IF EXISTS journeys.transitions")
            con.execute("DROP TABLE IF EXISTS journeys.finished")
            ensure_tables(con)
            # Events become a table the simulation appends to (a snapshot of the marts' events, then simulated ones).
            con.execute("DROP VIEW IF EXISTS journeys.events")
            if not table_exists(con, "journeys", "events"):
                con.execute("""CREATE TABLE journeys.events AS SELECT * FROM (
                    SELECT customer_id, event_name, event_at, coalesce(product_id, webinar_id, message_id) AS event_key
                    FROM marts.fct_web_events WHERE customer_id IS NOT NULL
                    UNION ALL SELECT customer_id, 'email_' || event_name, event_at, campaign_id
                    FROM marts.fct_email_events WHERE customer_id IS NOT NULL)""")
            people = _people(con, seed)
            base = _baseline(people, start, days, seed)
            con.register("_base", base)
            con.execute("INSERT INTO journeys.events SELECT customer_id, event_name, event_at::TIMESTAMP, event_key "
                        "FROM _base")
            con.unregister("_base")
            dests: dict[str, Accepting] = {}
            sim_env = env or Env(destination=lambda ch: dests.setdefault(ch, Accepting(ch, ch)))
            t, end, prev, runs = start, start + timedelta(days=days), start - timedelta(seconds=1), 0
            while t <= end:
                advance(con, j, t, sim_env, run_id=f"sim:{j.name}:{t.isoformat()}",
                        lock_path=Path(tmp) / "journeys.lock", compact_after=None)
                resp = _responses(con, j.name, people, prev, t, seed + runs)
                if len(resp):
                    con.register("_resp", resp)
                    con.execute("INSERT INTO journeys.events SELECT customer_id, event_name, event_at::TIMESTAMP, "
                                "event_key FROM _resp")
                    con.unregister("_resp")
                prev, t, runs = t, t + timedelta(minutes=step_minutes), runs + 1
            table = con.execute("""SELECT (date_diff('day', ?::TIMESTAMP, occurred_at) + 1)::INTEGER AS day, node_id,
                    count(*) FILTER (WHERE transition IN ('entered', 'arrived')) AS arrived,
                    count(*) FILTER (WHERE transition = 'sent') AS sent,
                    count(*) FILTER (WHERE transition = 'skipped') AS skipped,
                    count(*) FILTER (WHERE transition = 'deferred') AS deferred,
                    count(*) FILTER (WHERE transition = 'exited' AND detail = 'goal') AS goals,
                    count(*) FILTER (WHERE transition = 'exited' AND detail IS DISTINCT FROM 'goal') AS exits
                FROM journeys.transitions WHERE journey = ? GROUP BY 1, 2 ORDER BY 1, 2""", [start, j.name]).df()
            where = con.execute("""SELECT node_id, count(*) AS people FROM journeys.current WHERE journey = ?
                AND transition <> 'exited' GROUP BY 1 ORDER BY 1""", [j.name]).df()
            arms = con.execute("""SELECT arm, count(DISTINCT (customer_id, entry_no)) AS entries,
                    count(*) FILTER (WHERE transition = 'exited' AND detail = 'goal') AS goals
                FROM journeys.transitions WHERE journey = ? AND arm IS NOT NULL GROUP BY 1 ORDER BY 1""",
                               [j.name]).df()
        finally:
            close_warehouse(copy, con, key=key)
    return {"journey": j.name, "start": str(start), "days": days, "step_minutes": step_minutes, "runs": runs,
            "per_day": table.to_dict("records"), "in_flight": where.to_dict("records"),
            "arms": arms.to_dict("records")}
