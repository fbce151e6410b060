"""
### Privacy requests

Every hour: loads the erasure, access and suppression requests that `beacon serve` (POST /v1/privacy/requests) and
`beacon privacy ... --queue-only` queued, records them in `privacy.requests` and suppresses each person at once
(tombstones: governance refuses every send, the ingest quarantines their rows as `erased`, the offers routes answer
as for a stranger), then processes them one by one: resolve the person through identity resolution, remove them
from the destinations that support it, erase them from every store (or write the access document), and append the
request's complete record to the audit trail `privacy.audit`. A failed request stays queued and is retried on the
next run. The logic is in `beacon.privacy.requests` (docs/privacy.md).

Then retention: everything older than its window (`include/beacon/privacy/retention.yml`, counted back from the
warehouse clock) is deleted or cleared, by `beacon.privacy.retention.run_retention`.
"""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, dag, task

from beacon.orchestration import DEFAULT_ARGS, START


@dag(schedule=CronTriggerTimetable("5 * * * *", timezone="UTC"), start_date=START, catchup=False, max_active_runs=1,
     tags=["beacon", "privacy"], default_args=DEFAULT_ARGS, doc_md=__doc__)
def beacon_privacy():
    @task
    def load_requests() -> int:
        from beacon.config import settings
        from beacon.privacy.requests import load_queued

        return len(load_queued(settings()))

    @task
    def process_requests(loaded: int) -> dict:
        from beacon.activation.erasure import remove_subject
        from beacon.config import settings
        from beacon.privacy.requests import process_queued

        docs = process_queued(settings(), remove_subject)
        failed = [d["request_id"] for d in docs if d["status"] != "completed"]
        if failed:  # recorded in privacy.requests and the audit trail; the task fails so someone looks
            raise RuntimeError(f"privacy requests failed (kept queued, retried next run): {failed}")
        return {"loaded": loaded, "completed": len(docs)}

    @task
    def apply_retention(processed: dict) -> dict:
        from beacon.config import settings
        from beacon.privacy.retention import run_retention

        return run_retention(settings())

    apply_retention(process_requests(load_requests()))


beacon_privacy()
