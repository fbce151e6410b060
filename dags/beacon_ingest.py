"""
### Ingest

Loads every new landing-zone file (CRM, shop, web events, email events, consent, email-service webhook
batches) of the days up to the run's data interval into the append-only `raw` schema, and the CRM REST
API's changed contacts and companies when the `beacon_crm_api` connection is defined. Rows that fail
validation go to `raw._quarantine` with a reason; a load ledger makes re-runs load nothing twice.
Then the raw Great Expectations checkpoint validates the new loads: a critical failure opens the
circuit breaker the activation DAG checks; warnings are reported.
Emits the `beacon_raw` Asset, which schedules the warehouse DAG.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from beacon.orchestration import DEFAULT_ARGS, RAW, START


def _until():
    ctx = get_current_context()
    return (ctx.get("data_interval_end") or ctx["dag_run"].run_after).date()


@dag(schedule="@daily", start_date=START, catchup=False, max_active_runs=1, tags=["beacon", "ingest"],
     default_args=DEFAULT_ARGS, doc_md=__doc__)
def beacon_ingest():
    @task
    def load_landing_files() -> dict:
        from beacon.config import settings
        from beacon.ingest import load_landing
        from beacon.ingest.landing import landing_from_connection

        # The landing zone: connection beacon_landing (e.g. S3) when defined, else the local folder.
        root, options = landing_from_connection() or (settings().landing_dir, {})
        summary = load_landing(root, until=_until(), storage_options=options)
        failed = [f"{f.file}: {f.error_text()}" for f in summary.files if f.status == "failed"]
        for line in failed:  # a bad file is reported; the other files still loaded
            print(f"FAILED {line}")
        return {**summary.totals(), "reasons": summary.reasons(), "schema_changes": summary.schema_changes(),
                "failed": failed}

    @task
    def load_crm_api() -> dict:
        from beacon.ingest.crm_api import load_crm_api_if_configured

        return load_crm_api_if_configured(_until())

    # all_done: a CRM API outage (a failed task, retried) must not hold back the landing files' checks.
    @task(outlets=[RAW], trigger_rule="all_done")
    def check_raw_quality() -> dict:
        from beacon.config import settings
        from beacon.quality.checkpoint import run_raw_checkpoint
        from beacon.warehouse import connect

        ctx = get_current_context()
        with connect() as con:
            report = run_raw_checkpoint(con, _until(), settings().data_dir / "quality" / "docs",
                                        run_id=ctx["run_id"])
        for s in report.suites:
            for f in s.failed_critical:
                print(f"CRITICAL {s.suite}: {f}")
            for w in s.failed_warning:
                print(f"WARNING {s.suite}: {w}")
        return report.to_dict()

    [load_landing_files(), load_crm_api()] >> check_raw_quality()


beacon_ingest()
