"""How Cosmos renders the dbt project: one task per published model (marts and segments) only.

In watcher mode one `dbt build` runs every node; each rendered model is a sensor task that reports its
model's result (and can retry just that model). Staging and intermediate models still build inside that
one `dbt build` and show in its log, but get no task of their own: every task costs about half a second
of scheduling however little it does, and analysts act on marts and segments, not on staging views.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


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
