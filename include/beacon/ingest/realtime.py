"""The real-time path: what `beacon serve` landed in the last day or two, loaded without waiting for the daily run.

Collected events (`collected_events-*`), email-service webhook posts and preference-centre consent records are
small, closed files (the collector renames a file into the day folder only when it is complete), so a cycle
loads only the newest day folders and the ledger skips what an earlier cycle loaded. The `beacon_realtime`
DAG runs this every `BEACON_REALTIME_INTERVAL_SECONDS`, refreshes the event facts and emits
`beacon_events_realtime`, which schedules the journeys.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from beacon.ingest.core import LoadSummary, load_specs
from beacon.ingest.landing import load_landing

REALTIME_SOURCES = ("collected_events", "email_events", "consent")


def load_realtime(landing_dir: str | Path, today: date, warehouse: Path | None = None,
                  lock_wait: float | None = None, days: int = 2) -> LoadSummary:
    """Load the real-time sources of the last `days` day folders up to `today` (the caller's clock: the run's
    logical date in the DAG); the daily ingest still loads every source of every day."""
    specs = {k: v for k, v in load_specs().items() if k in REALTIME_SOURCES}
    return load_landing(landing_dir, until=today, since=today - timedelta(days=days - 1), warehouse=warehouse,
                        specs=specs, lock_wait=lock_wait)


# The event facts the journeys read (`journeys.events`) and the warehouse clock they run on: without the
# clock, an event newer than the daily run's last event would sit after the journeys' clock and enter nothing.
# The event staging models are incremental tables (not views): a realtime refresh must rebuild their new days too.
REALTIME_MODELS = ("stg_web__events", "stg_esp__email_events", "fct_web_events", "fct_email_events", "warehouse_as_of")


def refresh_event_facts() -> bool:
    """`dbt run` of REALTIME_MODELS (identities stay as the daily run resolved them); True on success."""
    from beacon.dbt import run

    return run(["run", "--select", *REALTIME_MODELS], quiet=True)
