"""
### Activation

Runs only when the data-quality circuit breaker is closed (a failing critical expectation in
`quality.expectation_results` skips every delivery and records why). Discovers the (audience,
destination) pairs from the dbt manifest (segment models with `meta.audience`, one pair per channel),
records who entered and left each audience, then maps one sync task per destination, which syncs its
audiences highest priority first: governance (consent, suppression, priority, frequency cap, holdout), a
diff against the last delivered state, and delivery of only the changes. Destinations are configured from
Airflow connections `beacon_<channel>`; a channel without a connection gets no task, and the discovery
task's log says why (the file channel defaults to the exports folder). Scheduled on `beacon_scores`;
emits, through the alias `beacon_audience_delivered`, one Asset per delivered audience and destination,
and `beacon_exports` once at the end of the run. Last, `measure_campaigns` builds the measurement marts
(dbt `tag:measurement`: assignments incl. the control groups, outcomes), computes lift per audience and
arm, and writes the campaign report beside the model report (docs/measurement.md). Then it publishes the Beacon page's snapshot
(the marketers' page in the Airflow UI), whether or not the deliveries ran.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias, dag, task

from beacon.audiences import discover
from beacon.config import settings
from beacon.orchestration import DEFAULT_ARGS, EXPORTS, SCORES, START

DELIVERED = AssetAlias("beacon_audience_delivered")

# Check every segment's audience contract at parse time: a malformed one is an import error naming
# the file and field, instead of a failure in the middle of a delivery run.
discover(settings().manifest_path)


@dag(schedule=[SCORES], start_date=START, catchup=False, max_active_runs=1, tags=["beacon", "activation"],
     default_args=DEFAULT_ARGS, doc_md=__doc__)
def beacon_activation():
    # Downstream trigger rules respected: the deliveries (all_success) are skipped, the page (all_done) is not.
    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def check_quality_gate(run_id=None) -> bool:
        """False (skip every delivery) while a critical data-quality expectation fails."""
        import logging

        from beacon.activation.activate import quality_gate
        from beacon.warehouse import clock, connect

        with connect() as con:
            gate = quality_gate(con, f"dag:{run_id}", clock(con))
        log = logging.getLogger("beacon.activation")
        for w in gate["warnings"]:
            log.warning("data-quality warning (not blocking): %s", w)
        if gate["open"]:
            log.error("activation blocked, nothing will be sent: %s", "; ".join(gate["failures"]))
        return not gate["open"]

    # Not in the writer pool: it reads the manifest and asks Airflow which destinations have a connection.
    @task(pool="default_pool")
    def discover_deliveries() -> list[dict]:
        """One entry per configured destination with its audiences; a channel without a connection is left
        out here, with the reason in this task's log."""
        import logging

        from beacon.activation.activate import delivery_plan
        from beacon.config import settings

        plan, skipped = delivery_plan(settings().manifest_path)
        for x in skipped:
            logging.getLogger("beacon.activation").info("not delivered: %s -> %s: %s", x["audience"],
                                                        x["destination"], x["reason"])
        return plan

    @task
    def publish_offers_snapshot() -> int:
        # The marts `beacon serve` answers /v1/profiles/{id}/offers from (it swaps to the new file itself).
        from beacon.activation.offers import publish_offers, snapshot_path
        from beacon.warehouse import connect

        with connect() as con:
            return publish_offers(con, discover(settings().manifest_path), snapshot_path(settings()))

    @task
    def record_memberships(plan: list[dict]) -> list[dict]:
        from beacon.audiences import discover, record_membership
        from beacon.config import settings
        from beacon.warehouse import clock, connect

        names = {a for p in plan for a in p["audiences"]}
        with connect() as con:
            day = clock(con).date().isoformat()
            return [record_membership(con, a, day) for a in discover(settings().manifest_path) if a.name in names]

    @task(outlets=[DELIVERED], map_index_template="{{ destination }}")
    def sync_destination(plan: dict, run_id=None, outlet_events=None) -> list[dict]:
        """Every audience of one destination, highest priority first; one failing audience fails the task
        after the others are delivered (the retry sends only what is still pending)."""
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowSkipException

        from beacon.activation.activate import activate_destination
        from beacon.activation.destinations.registry import NotConfigured
        from beacon.config import settings
        from beacon.warehouse import clock, connect

        get_current_context()["destination"] = plan["destination"]
        s = settings()

        def delivered(summary) -> None:
            if summary.delivered:
                outlet_events[DELIVERED].add(
                    Asset(name=f"beacon_audience_{summary.audience}_{summary.destination}",
                          uri=f"beacon://audiences/{summary.audience}/{summary.destination}"),
                    extra={"run_id": summary.run_id, "delivered": summary.delivered, "adds": summary.adds,
                           "updates": summary.updates, "removes": summary.removes})

        try:
            with connect() as con:
                done, errors = activate_destination(con, s.manifest_path, plan["destination"], plan["audiences"],
                                                    str(s.exports_dir), clock(con), run_id=run_id, on_done=delivered)
        except NotConfigured as exc:  # the connection went away since discovery
            raise AirflowSkipException(str(exc)) from exc
        if errors:
            raise RuntimeError(f"{len(errors)} of {len(plan['audiences'])} audiences failed to reach "
                               f"{plan['destination']!r} (the others were delivered): {errors}")
        out = []
        for summary in done:
            d = summary.to_dict()
            d.pop("sample")
            out.append(d)
        return out

    @task(trigger_rule="all_done")  # measure what was sent even when a delivery failed or was not configured
    def measure_campaigns() -> dict:
        from beacon import dbt
        from beacon.config import settings
        from beacon.measure.report import write_report
        from beacon.warehouse import clock, connect

        s = settings()
        if s.engine == "spark":  # the marts on Spark, from the sync log handed over as Parquet (beacon.spark.chain)
            from beacon.spark.chain import build_measurement

            build_measurement(s)
        else:
            # Unit tests only when the project's code changed since they last passed (beacon.dbt.unit_tests_due).
            ok = dbt.run(["build", "--select", dbt.MEASUREMENT, *dbt.unit_test_args("measurement", s)], s, quiet=True)
            dbt.keep_target_results("measurement", s)  # every model and test of this build, kept for operators
            if not ok:
                raise RuntimeError("dbt build of the measurement models (tag:measurement) failed")
        with connect() as con:
            return write_report(con, s.registry_dir / "reports", clock(con))

    # all_done: the page shows the breaker and failed deliveries too, so it is published whatever happened.
    # Emits beacon_exports last, once per run: the journeys DAG follows a finished activation run instead of
    # starting mid-run and taking turns with it for the writer slot.
    @task(trigger_rule="all_done", outlets=[EXPORTS])
    def publish_beacon_page() -> str:
        """The Beacon page's snapshot (beacon.ui.snapshot): computed here, in the writer pool, so the page
        itself never opens the warehouse."""
        from beacon.ui.snapshot import publish
        from beacon.warehouse import connect

        with connect() as con:
            return str(publish(con))

    plan = discover_deliveries()
    gate = check_quality_gate()
    gate >> plan
    gate >> publish_offers_snapshot()
    # The page comes last so it shows this run's lift results too.
    record_memberships(plan) >> sync_destination.expand(plan=plan) >> measure_campaigns() >> publish_beacon_page()


beacon_activation()
