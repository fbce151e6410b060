"""Everything Beacon does with Cosmos, in one module: the dbt task groups of the DAGs and every
workaround that reaches into Cosmos internals, behind a version guard.

How the project renders: one task per published model (marts and segments) only. In watcher mode one
`dbt build` runs every selected node; each rendered model is a sensor task that reports its model's
result (and can retry just that model). Staging and intermediate models still build inside that one
`dbt build` and show in its log, but get no task of their own: every task costs about half a second
of scheduling however little it does, and analysts act on marts and segments, not on staging views.

The workarounds (`published_only`, `producer_reports_rendered_only`, `skip_unemitted_lineage`, the plain
manifest path, the OpenLineage hint filter) use names Cosmos does not promise to keep. `check_cosmos_version`
refuses a Cosmos release they were not checked against, so an upgrade fails at DAG parse time with a
message naming this module, not halfway through a build.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from beacon.config import Settings, settings

# Cosmos minor versions whose internals the functions below were read against (and tests run on).
TESTED_COSMOS = ("1.15",)


class UnsupportedCosmosVersion(RuntimeError):
    """Cosmos is a version Beacon's workarounds of its internals were not checked against."""


def check_cosmos_version(version: str | None = None) -> str:
    """The installed Cosmos version; raise UnsupportedCosmosVersion unless its minor version is tested."""
    if version is None:
        import cosmos

        version = cosmos.__version__
    minor = ".".join(version.split(".")[:2])
    if minor not in TESTED_COSMOS:
        raise UnsupportedCosmosVersion(
            f"astronomer-cosmos {version} is installed, but beacon.cosmos_render patches Cosmos internals checked "
            f"only against {', '.join(v + '.x' for v in TESTED_COSMOS)} (the watcher producer's event parser, "
            f"its OpenLineage hook, node converters). Re-check each function of include/beacon/cosmos_render.py "
            f"against the new release and add {minor!r} to TESTED_COSMOS, or pin the tested version.")
    return version


class _DropOpenLineageHint(logging.Filter):
    """Drop Cosmos' import-time hint to install the OpenLineage provider.

    Beacon deliberately runs without it (see skip_unemitted_lineage); the hint, printed on every DAG parse
    and demo run, is advice a user of this project cannot act on. Other Cosmos warnings pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apache-airflow-providers-openlineage" not in str(record.msg)


def quiet_openlineage_hint() -> None:
    """Install the filter on the logger Cosmos writes the hint to (before Cosmos' operators are imported)."""
    log = logging.getLogger("cosmos.operators.local")
    if not any(isinstance(f, _DropOpenLineageHint) for f in log.filters):
        log.addFilter(_DropOpenLineageHint())


def dbt_task_group(group_id: str, *, select: Sequence[str] = (), exclude: Sequence[str] = (),
                   s: Settings | None = None, in_process: bool = False) -> Any:
    """A Cosmos DbtTaskGroup (watcher mode) of the selected part of the project, inside the current DAG.

    One `dbt build` of `select` minus `exclude` (models, seeds, unit tests and data tests) runs in a producer
    task; each selected mart and segment is a sensor task. Called inside a `@dag` function.

    `in_process`: the producer runs dbt in its own process (dbtRunner) instead of a child process. For a small
    build (a few models) starting a child, which imports dbt and its adapter again, costs more than the build;
    a large build keeps the child (see ExecutionConfig below)."""
    check_cosmos_version()
    quiet_openlineage_hint()
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

    from beacon.dbt import PROFILE, choose_unit_tests, dbt_env, dbt_target, executable

    s = s or settings()
    project = ProjectConfig(dbt_project_path=s.dbt_project_dir, manifest_path=s.manifest_path, project_name="beacon",
                            install_dbt_deps=False, env_vars=dbt_env(s))
    # The manifest is a local file: read it as a plain Path. Cosmos wraps it in ObjectStoragePath, whose
    # first use loads every Airflow plugin (about 0.6 s of each parse) for lineage we do not need here.
    project.manifest_path = s.manifest_path
    # No separate test tasks: the producer's build runs the tests (setup_operator_args below), so a failing
    # test fails the build, as with a plain `dbt build`.
    render = RenderConfig(load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.NONE,
                          select=list(select), exclude=["resource_type:exposure", *exclude], emit_datasets=False)
    render.node_converters = published_only(render)
    group = DbtTaskGroup(
        group_id=group_id,
        project_config=project,
        profile_config=ProfileConfig(profile_name=PROFILE, target_name=dbt_target(s),
                                     profiles_yml_filepath=s.dbt_project_dir / "profiles.yml"),
        render_config=render,
        execution_config=ExecutionConfig(
            # The producer runs `dbt build` as a child process: in-process (DBT_RUNNER) every dbt node ran slower
            # inside the Airflow task (most likely its threads competing for the GIL), and a child process
            # hands its memory back when the build ends.
            execution_mode=ExecutionMode.WATCHER,
            invocation_mode=InvocationMode.DBT_RUNNER if in_process else InvocationMode.SUBPROCESS,
            dbt_executable_path=executable(),
            # Cosmos limits the producer to --resource-type model/seed/snapshot when tests are not rendered;
            # adding the test types makes it the same `dbt build` as a plain one: the data tests always, the unit
            # tests when the project's code changed since they last all passed in this group's build (decided when
            # the task runs: beacon.dbt.unit_tests_due).
            # The callback keeps the build's run_results.json (Cosmos deletes its temporary project copy); in-process,
            # it also closes the warehouse dbt-duckdb keeps open (beacon.dbt.release_warehouse).
            setup_operator_args={"dbt_cmd_flags": ["--resource-type", "test", "--resource-type", "unit_test"],
                                 "pre_execute": choose_unit_tests(group_id),
                                 "callback": "beacon.dbt.keep_run_results",
                                 "callback_args": {"group": group_id, "release": in_process}}),
        # Sensors reschedule instead of deferring, so `dag.test()` (one task at a time) never waits on them.
        operator_args={"install_deps": False, "deferrable": False, "mode": "reschedule", "poke_interval": 1},
    )
    producer_reports_rendered_only(group)
    skip_unemitted_lineage(group)
    return group


def published_only(render_config: Any, folders: Iterable[str] = ("marts", "segments")) -> dict[Any, Callable]:
    """Cosmos node converters that render models under models/<folder>/ as usual and skip all others."""
    from cosmos.airflow.graph import create_airflow_task, create_task_metadata
    from cosmos.constants import DbtResourceType

    wanted = tuple(f"{f}/" for f in folders)

    def convert(dag, task_group, node, execution_mode, task_args, test_indirect_selection=None,
                on_warning_callback=None, detached_from_parent=None, **_: Any):
        under_models = str(node.file_path).replace("\\", "/").split("/models/", 1)[-1]  # e.g. marts/dim_customers.sql
        if not under_models.startswith(wanted):
            return None  # built by the producer's `dbt build`; no task of its own
        ident = "__".join(x for x in (dag.dag_id, task_group.group_id if task_group else None) if x)
        meta = create_task_metadata(node=node, execution_mode=execution_mode, args=task_args,
                                    dbt_dag_task_group_identifier=ident, render_config=render_config,
                                    test_indirect_selection=test_indirect_selection,
                                    on_warning_callback=on_warning_callback, detached_from_parent=detached_from_parent)
        return create_airflow_task(meta, dag, task_group=task_group) if meta else None

    return {DbtResourceType.MODEL: convert, DbtResourceType.SEED: convert}


def producer_reports_rendered_only(group: Any) -> None:
    """Make the watcher producer of a DbtTaskGroup report to Airflow only the nodes that have a task.

    The producer's dbt callback pushes several XComs for every node event (start, finish, status), each a
    locked round trip to the Airflow API that blocks the dbt thread emitting it. With about 190 nodes
    (models, unit tests, data tests) and 27 sensor tasks, those pushes more than doubled the build's time,
    for nodes nobody reads. Events of nodes without a task are still written to the task log; a failure
    anywhere still fails the producer, as in a plain `dbt build`.
    """
    import json

    from cosmos.operators._watcher.base import _log_dbt_msg

    producer = _producer(group)
    rendered = {uid for t in group.children.values() if (uid := getattr(t, "model_unique_id", None))}
    make_parse = producer._make_parse_callable  # Cosmos' own parser: event line -> XComs and log

    def make_filtered_parse() -> Callable[[str, Any], None]:
        parse = make_parse()

        def parse_line(line: str, extra_kwargs: Any) -> None:
            try:
                event = json.loads(line)
            except ValueError:
                return parse(line, extra_kwargs)  # not a dbt event: Cosmos surfaces it as stdout
            uid = ((event.get("data") or {}).get("node_info") or {}).get("unique_id")
            if uid and uid not in rendered:
                _log_dbt_msg(event)
                return None
            return parse(line, extra_kwargs)

        return parse_line

    producer._make_parse_callable = make_filtered_parse


def skip_unemitted_lineage(group: Any) -> None:
    """Skip Cosmos' OpenLineage parsing of the dbt artifacts when nothing would emit the events.

    After each build Cosmos parses manifest.json and run_results.json into OpenLineage events (about 0.9 s
    here); under Airflow 3 only the OpenLineage provider emits them, and Beacon does not install it.
    """
    import importlib.util

    if importlib.util.find_spec("airflow.providers.openlineage") is None:
        _producer(group).calculate_openlineage_events_completes = lambda *args, **kwargs: False


def _producer(group: Any) -> Any:
    """The watcher producer task of a Cosmos DbtTaskGroup."""
    from cosmos.operators.watcher import DbtProducerWatcherOperator

    return next(t for t in group.children.values() if isinstance(t, DbtProducerWatcherOperator))
