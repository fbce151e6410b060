"""
### Real-time events

Every `BEACON_REALTIME_INTERVAL_SECONDS` (20 s by default): loads what `beacon serve` landed since the last
cycle (collected events, email-service webhook posts, preference-centre consent records) from the newest day
folders, then, when anything new was loaded, rebuilds the event facts (`fct_web_events`, `fct_email_events`;
identities stay as the daily run resolved them) and the warehouse clock the journeys run on (`warehouse_as_of`),
and emits the `beacon_events_realtime` Asset, which schedules the journeys. Unsubscribes need no cycle: governance reads them before every send.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, get_current_context, task

from beacon.config import settings
from beacon.orchestration import DEFAULT_ARGS, EVENTS_REALTIME, START


@dag(schedule=timedelta(seconds=settings().realtime_interval_seconds), start_date=START, catchup=False,
     max_active_runs=1, tags=["beacon", "realtime"], default_args=DEFAULT_ARGS, doc_md=__doc__)
def beacon_realtime():
    @task
    def load_new_events() -> dict:
        from beacon.ingest.realtime import load_realtime

        ctx = get_current_context()
        today = (ctx.get("data_interval_end") or ctx["dag_run"].run_after).date()
        summary = load_realtime(settings().landing_dir, today)
        return {**summary.totals(), "reasons": summary.reasons()}

    @task(outlets=[EVENTS_REALTIME])
    def refresh_event_facts(loaded: dict) -> dict:
        from airflow.exceptions import AirflowSkipException

        from beacon.ingest.realtime import refresh_event_facts as refresh

        if not loaded["rows_loaded"]:
            raise AirflowSkipException("nothing new was collected: no asset event, no journey run")
        if not refresh():
            raise RuntimeError("dbt run of the event facts failed (see the task log)")
        return loaded

    refresh_event_facts(load_new_events())


beacon_realtime()
