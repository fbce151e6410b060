"""Collected events keep the whole message: `payload` (JSON) beside the typed contract columns."""

from __future__ import annotations

import json

from beacon.ingest.core import load_specs
from beacon.ingest.landing import load_landing
from beacon.warehouse import connect


def _write(landing, name: str, lines: list) -> None:
    day = landing / "2026-06-01"
    day.mkdir(parents=True, exist_ok=True)
    (day / name).write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))


def test_payload_keeps_every_field_and_the_typed_columns_stay(tmp_path):
    order = {"type": "track", "event": "Order Completed", "userId": "C-1", "messageId": "m1",
             "timestamp": "2026-06-01T10:00:00Z", "receivedAt": "2026-06-01T10:00:01Z", "source": "website",
             "properties": {"order_id": "O-1", "revenue": 59.9, "currency": "EUR", "coupon": "X",
                            "products": [{"product_id": "p1", "price": 59.9, "quantity": 1}]},
             "context": {"library": {"name": "analytics-python", "version": "2.4.0"}, "ip": "203.0.113.9",
                         "campaign": {"source": "news"}}, "integrations": {"All": True}}
    alias = {"type": "alias", "previousId": "anon-1", "userId": "C-1", "messageId": "m2",
             "timestamp": "2026-06-01T10:00:00Z", "originalTimestamp": "2026-06-01T12:00:00+02:00"}
    _write(tmp_path / "landing", "collected_events-20260601T100000000000-1-000001.jsonl",
           [order, alias, order, "{not json"])
    wh = tmp_path / "wh.duckdb"
    summary = load_landing(tmp_path / "landing", warehouse=wh)
    assert summary.totals()["rows_read"] == 4
    assert summary.totals()["rows_loaded"] == 2 and summary.reasons() == {"duplicate": 1, "malformed": 1}
    with connect(wh) as con:
        rows = con.execute("SELECT message_id, user_id, event_at, typeof(payload), payload::VARCHAR "
                           "FROM raw.collected_events ORDER BY message_id").fetchall()
        coupon = con.execute("SELECT payload->>'$.properties.coupon' FROM raw.collected_events "
                             "WHERE message_id = 'm1'").fetchone()[0]
        cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                          "WHERE table_schema = 'raw' AND table_name = 'collected_events'").fetchall()}
    assert [r[:2] for r in rows] == [("m1", "C-1"), ("m2", "C-1")]
    assert rows[0][3] == "JSON"
    assert json.loads(rows[0][4]) == order and json.loads(rows[1][4]) == alias  # the message, whole
    assert coupon == "X"  # a property no column declares, modelled from the payload
    # The spec fields staging reads from the payload are not drifted into columns of their own.
    assert not {"previousid", "originaltimestamp", "properties", "context"} & cols


def test_the_contract_declares_payload_as_the_whole_line():
    spec = load_specs()["collected_events"]
    payload = next(c for c in spec.columns if c.name == "payload")
    assert (payload.type, payload.path) == ("json", "$")
