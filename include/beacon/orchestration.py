"""What the DAG files share: Assets that chain the DAGs, default arguments, the start date.

Imports nothing heavy, so DAG files stay fast to parse.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset

from beacon.config import settings

START = pendulum.datetime(2026, 1, 1, tz="UTC")

RAW = Asset(name="beacon_raw", uri="beacon://warehouse/raw")
MARTS = Asset(name="beacon_marts", uri="beacon://warehouse/marts")
SCORES = Asset(name="beacon_scores", uri="beacon://warehouse/ml/scores")
EXPORTS = Asset(name="beacon_exports", uri="beacon://exports/audiences")
EVENTS_REALTIME = Asset(name="beacon_events_realtime", uri="beacon://events/realtime")

# DuckDB allows one writer at a time: every warehouse task takes a slot of this one-slot pool.
WAREHOUSE_POOL = "duckdb_writer"

RETRY_DELAY_SECONDS = 120  # between task retries, unless BEACON_RETRY_DELAY_SECONDS says otherwise
_retry = settings().retry_delay_seconds

DEFAULT_ARGS = {
    "owner": "beacon-data-eng",
    "retries": 2,
    # The embedded demo shortens this (BEACON_RETRY_DELAY_SECONDS) so a failure is reported quickly.
    "retry_delay": timedelta(seconds=RETRY_DELAY_SECONDS if _retry is None else _retry),
    "pool": WAREHOUSE_POOL,
}
