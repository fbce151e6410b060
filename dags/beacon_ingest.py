"""
### Ingest

Loads every new landing-zone file (CRM, shop, web events, email events, consent) of the days up to
the run's data interval into the append-only `raw` schema. Rows that fail validation go to
`raw._quarantine` with a reason; a load ledger makes re-runs load nothing twice.
Emits the `beacon_raw` Asset, which schedules the warehouse DAG.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from beacon.orchestration import DEFAULT_ARGS, RAW, START


@dag(schedule="@daily", start_date=START, catchup=False, max_active_runs=1, tags=["beacon", "ingest"],
     default_args=DEFAULT_ARGS, doc_md=__doc__)
def beacon_ingest():
    @task(outlets=[RAW])
    def load_landing_files() -> dict:
        from beacon.config import settings
        from beacon.ingest import load_landing

        ctx = get_current_context()
        until = (ctx.get("data_interval_end") or ctx["dag_run"].run_after).date()
        summary = load_landing(settings().landing_dir, until=until)
        failed = [f"{f.file}: {f.error}" for f in summary.files if f.status == "failed"]
        for line in failed:  # a bad file is reported; the other files still loaded
            print(f"FAILED {line}")
        return {**summary.totals(), "reasons": summary.reasons(), "failed": failed}

    load_landing_files()


beacon_ingest()
