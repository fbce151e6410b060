"""
### Journeys

Advances every journey in `journeys/*.yml` (one mapped task per journey): exits and goals first, then new
entries, then everyone due moves on, with set-based SQL; every send goes through governance and the
exactly-once sync engine. Runs every 15 minutes (`BEACON_JOURNEYS_INTERVAL_MINUTES`), after each activation
run (`beacon_exports`) and when real-time events land (`beacon_events_realtime`). The clock is the warehouse
clock, so a re-run of an interval decides the same way. Journey files are validated when this file is parsed:
a bad file is an import error naming the file, the journey and the node. Emits `beacon_journeys`.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from beacon.config import settings
from beacon.journeys.validate import project_report
from beacon.orchestration import DEFAULT_ARGS, EVENTS_REALTIME, EXPORTS, JOURNEYS, START

project_report(strict=True)

SCHEDULE = AssetOrTimeSchedule(
    timetable=CronTriggerTimetable(f"*/{settings().journeys_interval_minutes} * * * *", timezone="UTC"),
    assets=(EXPORTS | EVENTS_REALTIME))


@dag(schedule=SCHEDULE, start_date=START, catchup=False, max_active_runs=1, tags=["beacon", "journeys"],
     default_args=DEFAULT_ARGS, doc_md=__doc__)
def beacon_journeys():
    @task
    def list_journeys() -> list[str]:
        from beacon.journeys.validate import project_report

        return [x.journey.name for x in project_report(strict=True).journeys if x.journey.enabled]

    @task(outlets=[JOURNEYS], map_index_template="{{ journey }}")
    def advance_journey(name: str, run_id=None) -> dict:
        from airflow.sdk import get_current_context

        from beacon.journeys.api import run
        from beacon.warehouse import clock, connect

        get_current_context()["journey"] = name
        with connect() as con:
            return run(con, name, clock(con), run_id=f"{run_id}:{name}").to_dict()

    advance_journey.expand(name=list_journeys())


beacon_journeys()
