"""
### Activation

Runs only when the data-quality circuit breaker is closed (a failing critical expectation in
`quality.expectation_results` skips every delivery and records why). Discovers the (audience,
destination) pairs from the dbt manifest (segment models with `meta.audience`, one pair per channel),
records who entered and left each audience, then maps one sync per pair: governance (consent,
suppression, priority, frequency cap, holdout), a diff against the last delivered state, and delivery
of only the changes. Destinations are configured from Airflow connections `beacon_<channel>`; a
channel without a connection is skipped with the reason (the file channel defaults to the exports folder).
Scheduled on `beacon_scores`; emits `beacon_exports` and, through the alias `beacon_audience_delivered`,
one Asset per delivered audience and destination. Last, `measure_campaigns` builds the measurement marts
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

    @task
    def discover_deliveries() -> list[dict]:
        from beacon.activation.activate import delivery_pairs
        from beacon.config import settings

        return delivery_pairs(settings().manifest_path)

    @task
    def publish_offers_snapshot() -> int:
        # The marts `beacon serve` answers /v1/profiles/{id}/offers from (it swaps to the new file itself).
        from beacon.activation.offers import publish_offers, snapshot_path
        from beacon.warehouse import connect

        with connect() as con:
            return publish_offers(con, discover(settings().manifest_path), snapshot_path(settings()))

    @task
    def record_memberships(pairs: list[dict]) -> list[dict]:
        from beacon.audiences import discover, record_membership
        from beacon.config import settings
        from beacon.warehouse import clock, connect

        names = {p["audience"] for p in pairs}
        with connect() as con:
            day = clock(con).date().isoformat()
            return [record_membership(con, a, day) for a in discover(settings().manifest_path) if a.name in names]

    @task(outlets=[EXPORTS, DELIVERED], map_index_template="{{ delivery }}")
    def sync_audience(pair: dict, run_id=None, outlet_events=None) -> dict:
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowSkipException

        from beacon.activation.activate import activate
        from beacon.activation.destinations.registry import NotConfigured
        from beacon.config import settings
        from beacon.warehouse import clock, connect

        get_current_context()["delivery"] = f"{pair['audience']} -> {pair['destination']}"
        s = settings()
        try:
            with connect() as con:
                summary = activate(con, s.manifest_path, pair["audience"], pair["destination"], str(s.exports_dir),
                                   clock(con), run_id=f"{run_id}:{pair['audience']}:{pair['destination']}")
        except NotConfigured as exc:
            raise AirflowSkipException(str(exc)) from exc
        if summary.delivered:
            outlet_events[DELIVERED].add(
                Asset(name=f"beacon_audience_{summary.audience}_{summary.destination}",
                      uri=f"beacon://audiences/{summary.audience}/{summary.destination}"),
                extra={"run_id": summary.run_id, "delivered": summary.delivered, "adds": summary.adds,
                       "updates": summary.updates, "removes": summary.removes})
        if summary.failed:  # delivered rows are committed; the failed ones are retried by the next run
            import logging

            logging.getLogger("beacon.activation").warning("%s", summary.message)
        d = summary.to_dict()
        d.pop("sample")
        return d

    @task(trigger_rule="all_done")  # measure what was sent even when a delivery failed or was not configured
    def measure_campaigns() -> dict:
        from beacon import dbt
        from beacon.config import settings
        from beacon.measure.report import write_report
        from beacon.warehouse import clock, connect

        s = settings()
        ok = dbt.run(["build", "--select", dbt.MEASUREMENT], s, quiet=True)
        dbt.keep_target_results("measurement", s)  # every model and test of this build, kept for operators
        if not ok:
            raise RuntimeError("dbt build of the measurement models (tag:measurement) failed")
        with connect() as con:
            return write_report(con, s.registry_dir / "reports", clock(con))

    # all_done: the page shows the breaker and failed deliveries too, so it is published whatever happened.
    @task(trigger_rule="all_done")
    def publish_beacon_page() -> str:
        """The Beacon page's snapshot (beacon.ui.snapshot): computed here, in the writer pool, so the page
        itself never opens the warehouse."""
        from beacon.ui.snapshot import publish
        from beacon.warehouse import connect

        with connect() as con:
            return str(publish(con))

    pairs = discover_deliveries()
    gate = check_quality_gate()
    gate >> pairs
    gate >> publish_offers_snapshot()
    # The page comes last so it shows this run's lift results too.
    record_memberships(pairs) >> sync_audience.expand(pair=pairs) >> measure_campaigns() >> publish_beacon_page()


beacon_activation()
