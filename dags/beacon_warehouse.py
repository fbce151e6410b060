"""
### Warehouse

Builds the dbt project (staging, identity resolution, marts, segments) with Cosmos, rendered from
the dbt manifest (no dbt call at parse time). Cosmos' watcher mode runs a single `dbt build` of the
models; each mart and segment shows as its own task (staging and intermediate models build inside
that one run), and the unit and data tests run inside it too, as in a plain `dbt build`.
The segments that read the ML scores are left to the ML DAG, which builds them after scoring, and the
measurement marts to the activation DAG, which builds them after the sends they measure.
With `BEACON_ENGINE=spark` one task builds the same models on Spark instead (`beacon.spark.chain`), and the
checks read them through the control plane's views over Spark's Parquet.
Scheduled on `beacon_raw`; emits `beacon_marts`.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from beacon.config import settings
from beacon.cosmos_render import dbt_task_group
from beacon.dbt import MEASUREMENT, SCORE_BASED
from beacon.orchestration import DEFAULT_ARGS, MARTS, RAW, START

_S = settings()


@dag(schedule=[RAW], start_date=START, catchup=False, max_active_runs=1, tags=["beacon", "warehouse", "dbt"],
     default_args=DEFAULT_ARGS, doc_md=__doc__)
def beacon_warehouse():
    if _S.engine == "spark":  # BEACON_ENGINE=spark: the same models on Spark, one task (beacon.spark.chain)
        @task
        def build_on_spark() -> dict:
            from beacon.spark.chain import build_warehouse

            return build_warehouse(exclude=(SCORE_BASED, MEASUREMENT))

        dbt = build_on_spark()
    else:
        # One `dbt build` (watcher mode) of everything but the score-based segments; marts and segments get a
        # task each (see beacon.cosmos_render for how and why).
        dbt = dbt_task_group("dbt", exclude=[SCORE_BASED, MEASUREMENT], s=_S)

    @task(outlets=[MARTS])
    def publish_marts() -> dict:
        from beacon.warehouse import connect, table_sizes

        with connect() as con:
            return table_sizes(con, ("marts", "segments"))

    @task
    def check_marts_quality() -> dict:
        # GX checkpoint on the marts activation reads; critical failures open the breaker activation checks.
        from beacon.quality.checkpoint import run_marts_checkpoint
        from beacon.warehouse import connect

        with connect() as con:
            return run_marts_checkpoint(con, _S.data_dir / "quality" / "docs").to_dict()

    dbt >> check_marts_quality() >> publish_marts()


beacon_warehouse()
