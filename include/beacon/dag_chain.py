"""The one definition of Beacon's DAGs: their order, how each is started, and which chain each belongs to.

Read by the in-process demo (`beacon.pipeline`), the local stack (`beacon.stack`) and the DAG tests, which
check that the DAG files agree with it (tests/dags). Imports nothing (not Airflow: `beacon.pipeline` must set
Airflow's environment before Airflow is first imported); the Assets themselves are in `beacon.orchestration`.

    beacon_ingest      daily timetable                 -> beacon_raw
    beacon_warehouse   on beacon_raw                   -> beacon_marts
    beacon_ml          on beacon_marts                 -> beacon_scores
    beacon_activation  on beacon_scores                -> beacon_exports
    beacon_journeys    on beacon_exports | beacon_events_realtime, or every N minutes -> beacon_journeys
    beacon_realtime    every N seconds                 -> beacon_events_realtime
    beacon_privacy     hourly                          (privacy requests; docs/privacy.md)
"""

from __future__ import annotations

from dataclasses import dataclass

TIMETABLE = "timetable"  # started by its own schedule
ASSETS = "assets"  # started by an event of one of its Assets
ASSETS_OR_TIMETABLE = "assets_or_timetable"  # either


@dataclass(frozen=True)
class DagStep:
    """One DAG: how it starts (TIMETABLE, ASSETS, ASSETS_OR_TIMETABLE), on which Assets (by name), which it emits."""

    dag_id: str
    started_by: str
    on: tuple[str, ...] = ()
    emits: tuple[str, ...] = ()
    # A project may leave this DAG out: the stack waits for it only where its DAG file exists.
    optional: bool = False


DAGS: tuple[DagStep, ...] = (
    DagStep("beacon_ingest", TIMETABLE, emits=("beacon_raw",)),
    DagStep("beacon_warehouse", ASSETS, on=("beacon_raw",), emits=("beacon_marts",)),
    DagStep("beacon_ml", ASSETS, on=("beacon_marts",), emits=("beacon_scores",)),
    DagStep("beacon_activation", ASSETS, on=("beacon_scores",), emits=("beacon_exports",)),
    DagStep("beacon_journeys", ASSETS_OR_TIMETABLE, on=("beacon_exports", "beacon_events_realtime"),
            emits=("beacon_journeys",), optional=True),
    DagStep("beacon_realtime", TIMETABLE, emits=("beacon_events_realtime",)),
    DagStep("beacon_privacy", TIMETABLE),
)
BY_ID = {d.dag_id: d for d in DAGS}
DAG_IDS = tuple(BY_ID)
FIRST = "beacon_ingest"


def chain_from(first: str = FIRST) -> tuple[str, ...]:
    """`first`, then the DAGs one run of it leads to through Asset events, in the order of DAGS."""
    reached, emitted = {first}, set(BY_ID[first].emits)
    changed = True
    while changed:
        changed = False
        for d in DAGS:
            if d.dag_id not in reached and d.started_by != TIMETABLE and emitted & set(d.on):
                reached.add(d.dag_id)
                emitted |= set(d.emits)
                changed = True
    return (first, *(d.dag_id for d in DAGS if d.dag_id in reached and d.dag_id != first))


# What one ingest run leads to: ingest, warehouse, ml, activation, journeys (beacon_realtime runs on its own clock).
CHAIN = chain_from(FIRST)
# The part of the chain every project has (journeys is optional: see DagStep.optional).
CORE_CHAIN = tuple(d for d in CHAIN if not BY_ID[d].optional)
# The core chain in-process (`dag.test()` one DAG after another): what `beacon.pipeline.run_dags` runs by default
# (the end-to-end test). `make demo` runs the whole CHAIN, journeys included (`beacon.pipeline.DEMO_CHAIN`);
# real-time loads by its own DAG on `make up`.
DEMO_DAGS = CORE_CHAIN
