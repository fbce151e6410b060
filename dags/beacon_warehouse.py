"""
### Warehouse

Builds the dbt project (staging, identity resolution, marts, segments) with Cosmos, rendered from
the dbt manifest (no dbt call at parse time). Cosmos' watcher mode runs a single `dbt build` of the
models; each mart and segment shows as its own task (staging and intermediate models build inside
that one run), and the unit and data tests run inside it too, as in a plain `dbt build`.
Scheduled on `beacon_raw`; emits `beacon_marts`.
"""

from __future__ import annotations

from airflow.sdk import dag, task
from cosmos import (
    DbtTaskGroup,
    ExecutionConfig,
    ExecutionMode,
    InvocationMode,
    LoadMode,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
    TestBehavior,
)

from beacon.config import settings
from beacon.cosmos_render import producer_reports_rendered_only, published_only, skip_unemitted_lineage
from beacon.dbt import dbt_env, executable
from beacon.orchestration import DEFAULT_ARGS, MARTS, RAW, START

_S = settings()


_PROJECT = ProjectConfig(dbt_project_path=_S.dbt_project_dir, manifest_path=_S.manifest_path, project_name="beacon",
                         install_dbt_deps=False, env_vars=dbt_env(_S))
# The manifest is a local file: read it as a plain Path. Cosmos wraps it in ObjectStoragePath, whose
# first use loads every Airflow plugin (about 0.6 s of each parse) for lineage we do not need here.
_PROJECT.manifest_path = _S.manifest_path


# One `dbt build` (watcher mode) runs every model, unit test and data test; only marts and segments get a
# task each (see beacon.cosmos_render for why). No separate test tasks: the producer's build runs the tests
# (setup_operator_args below), so a failing test fails the build, as with a plain `dbt build`.
_RENDER = RenderConfig(load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.NONE,
                       exclude=["resource_type:exposure"], emit_datasets=False)
_RENDER.node_converters = published_only(_RENDER)


@dag(schedule=[RAW], start_date=START, catchup=False, max_active_runs=1, tags=["beacon", "warehouse", "dbt"],
     default_args=DEFAULT_ARGS, doc_md=__doc__)
def beacon_warehouse():
    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=_PROJECT,
        profile_config=ProfileConfig(profile_name="beacon", target_name="local",
                                     profiles_yml_filepath=_S.dbt_project_dir / "profiles.yml"),
        render_config=_RENDER,
        execution_config=ExecutionConfig(
            # The producer runs `dbt build` as a child process: in-process (DBT_RUNNER) every dbt node ran slower
            # inside the Airflow task (most likely its threads competing for the GIL), and a child process
            # hands its memory back when the build ends.
            execution_mode=ExecutionMode.WATCHER, invocation_mode=InvocationMode.SUBPROCESS,
            dbt_executable_path=executable(),
            # Cosmos limits the producer to --resource-type model/seed/snapshot when tests are not rendered;
            # adding the test types makes it the same `dbt build` as a plain one.
            # The callback keeps the build's run_results.json (Cosmos deletes its temporary project copy).
            setup_operator_args={"dbt_cmd_flags": ["--resource-type", "test", "--resource-type", "unit_test"],
                                 "callback": "beacon.dbt.keep_run_results"}),
        # Sensors reschedule instead of deferring, so `dag.test()` (one task at a time) never waits on them.
        operator_args={"install_deps": False, "deferrable": False, "mode": "reschedule", "poke_interval": 1},
    )
    producer_reports_rendered_only(dbt)
    skip_unemitted_lineage(dbt)

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
