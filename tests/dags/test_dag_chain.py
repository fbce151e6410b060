"""The DAG files agree with `beacon.dag_chain`, the one definition of the DAGs' order and triggers that the
demo (`beacon.pipeline`) and the stack (`beacon.stack`) read."""

from __future__ import annotations

from beacon import dag_chain
from beacon.dag_chain import ASSETS, ASSETS_OR_TIMETABLE, TIMETABLE


def _trigger(dag) -> tuple[str, set[str]]:
    """How a parsed DAG is started, and on which Assets (by name)."""
    tt = dag.timetable
    condition = getattr(tt, "asset_condition", None)
    names = {a.name for a in getattr(condition, "objects", [])} if condition is not None else set()
    if type(tt).__name__ == "AssetOrTimeSchedule":
        return ASSETS_OR_TIMETABLE, names
    return (ASSETS, names) if names else (TIMETABLE, names)


def test_every_dag_file_is_in_the_definition_and_starts_as_it_says(dagbag):
    assert set(dagbag.dag_ids) == set(dag_chain.DAG_IDS)
    for step in dag_chain.DAGS:
        assert _trigger(dagbag.dags[step.dag_id]) == (step.started_by, set(step.on)), step.dag_id


def test_every_dag_emits_the_assets_the_definition_names(dagbag):
    for step in dag_chain.DAGS:
        emitted = {o.name for t in dagbag.dags[step.dag_id].tasks for o in (getattr(t, "outlets", None) or [])
                   if hasattr(o, "uri")}  # an AssetAlias names its Assets only at run time
        assert emitted == set(step.emits), (step.dag_id, emitted)


def test_the_chain_is_what_one_ingest_run_leads_to_and_the_demo_runs_a_prefix_of_it():
    assert dag_chain.CHAIN == ("beacon_ingest", "beacon_warehouse", "beacon_ml", "beacon_activation",
                               "beacon_journeys")
    assert "beacon_realtime" in dag_chain.DAG_IDS and "beacon_realtime" not in dag_chain.CHAIN  # its own clock
    assert dag_chain.chain_from("beacon_realtime") == ("beacon_realtime", "beacon_journeys")
    assert "beacon_privacy" in dag_chain.DAG_IDS and "beacon_privacy" not in dag_chain.CHAIN  # its own clock
    assert dag_chain.DEMO_DAGS == dag_chain.CHAIN[: len(dag_chain.DEMO_DAGS)]


def test_pipeline_and_stack_read_the_one_definition():
    from beacon import pipeline, stack

    assert pipeline.DAG_ORDER == dag_chain.DEMO_DAGS
    assert stack.CHAIN + stack.OPTIONAL == dag_chain.CHAIN
