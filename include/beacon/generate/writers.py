"""Writing the landing files with DuckDB: CSV, Parquet and JSON lines (with their bad lines)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from beacon.generate.behaviour import _EMAIL_EVENTS, _WEB_EVENTS


def _write_csv(con: duckdb.DuckDBPyConnection, df: pd.DataFrame, path: Path) -> None:
    con.register("_df", df)
    con.execute(f"COPY (SELECT * FROM _df) TO '{path}' (FORMAT CSV, HEADER true)")
    con.unregister("_df")


def _write_parquet(con, df: pd.DataFrame, path: Path) -> None:
    con.register("_df", df)
    con.execute(f"COPY (SELECT * FROM _df) TO '{path}' (FORMAT PARQUET, COMPRESSION zstd)")
    con.unregister("_df")


def _write_web_jsonl(con, ev: pd.DataFrame, path: Path, bad: pd.DataFrame) -> None:
    """Segment-style track/page/identify calls, one JSON object per line."""
    con.register("_ev", ev)
    con.register("_names", pd.DataFrame({"kind": np.arange(len(_WEB_EVENTS), dtype=np.int8), "name": _WEB_EVENTS}))
    con.register("_bad", bad)
    con.execute(f"""
    COPY (
      SELECT
        printf('%014x', e.seq) AS messageId,
        CASE WHEN e.kind = 0 THEN 'page' WHEN e.kind = 7 THEN 'identify' ELSE 'track' END AS type,
        CASE WHEN e.kind BETWEEN 1 AND 6 THEN n.name END AS event,
        printf('anon-%012x', e.anon) AS anonymousId,
        e.user_id AS userId,
        CASE WHEN b.kind = 'future_timestamp'
             THEN strftime(make_timestamp((e.ts + 400 * 86400) * 1000000), '%Y-%m-%dT%H:%M:%S.000Z')
             WHEN b.kind = 'wrong_type' THEN 'yesterday'
             ELSE strftime(make_timestamp(e.ts * 1000000), '%Y-%m-%dT%H:%M:%S.000Z') END AS timestamp,
        CASE WHEN e.kind = 7 THEN {{'email': e.email}} END AS traits,
        CASE WHEN e.kind = 0 THEN {{'path': '/' || ['home','shop','blog','pricing','about'][1 + e.product % 5],
                                    'product_id': NULL::VARCHAR, 'price': NULL::DOUBLE, 'email': NULL::VARCHAR,
                                    'webinar_id': NULL::VARCHAR}}
             WHEN e.kind IN (5, 6) THEN {{'path': '/webinars', 'product_id': NULL, 'price': NULL, 'email': e.email,
                                    'webinar_id': 'WB-' || (e.product % 12)}}
             WHEN e.kind = 7 THEN NULL
             ELSE {{'path': '/p/SKU-' || lpad(e.product::VARCHAR, 5, '0'), 'product_id': 'SKU-' || lpad(e.product::VARCHAR, 5, '0'),
                    'price': NULL, 'email': NULL, 'webinar_id': NULL}} END AS properties,
        {{'library': {{'name': 'analytics.js', 'version': '4.1.0'}}, 'ip': '203.0.113.' || (e.anon % 250)}} AS context
      FROM _ev e JOIN _names n USING (kind) LEFT JOIN _bad b ON b.row = e.row
      ORDER BY e.row
    ) TO '{path}' (FORMAT JSON)""")
    for t in ("_ev", "_names", "_bad"):
        con.unregister(t)


def _write_email_jsonl(con, ev: pd.DataFrame, path: Path, bad: pd.DataFrame) -> None:
    """Email-service webhook events (sent, delivered, open, click, bounce, complaint, unsubscribe)."""
    con.register("_ev", ev)
    con.register("_names", pd.DataFrame({"kind": np.arange(len(_EMAIL_EVENTS), dtype=np.int8), "name": _EMAIL_EVENTS}))
    con.register("_bad", bad)
    con.execute(f"""
    COPY (
      SELECT printf('evt_%014x', e.seq) AS event_id, n.name AS event,
        CASE WHEN b.kind = 'missing_key' THEN NULL ELSE lower(e.email) END AS email,
        CASE WHEN b.kind = 'future_timestamp' THEN e.ts + 400 * 86400 ELSE e.ts END AS timestamp,
        printf('msg_%012x', e.msg) AS message_id, 'cmp_' || e.campaign AS campaign_id,
        CASE WHEN e.kind = 4 THEN CASE WHEN e.hard THEN 'hard' ELSE 'soft' END END AS bounce_type,
        CASE WHEN e.kind = 3 THEN 'https://shop.example.com/?utm_campaign=cmp_' || e.campaign END AS url
      FROM _ev e JOIN _names n USING (kind) LEFT JOIN _bad b ON b.row = e.row
      ORDER BY e.row
    ) TO '{path}' (FORMAT JSON)""")
    for t in ("_ev", "_names", "_bad"):
        con.unregister(t)

