"""
### Activation

Discovers audiences from the dbt manifest (segment models with `meta.audience`), records who
entered and left each one, applies consent and the holdout, and exports each audience as CSV with
a manifest to the exports folder.
Scheduled on `beacon_scores`; emits `beacon_exports`.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from beacon.audiences import discover
from beacon.config import settings
from beacon.orchestration import DEFAULT_ARGS, EXPORTS, SCORES, START

# Check every segment's audience contract at parse time: a malformed one is an import error naming
# the file and field, instead of a failure in the middle of a delivery run.
discover(settings().manifest_path)


@dag(schedule=[SCORES], start_date=START, catchup=False, max_active_runs=1, tags=["beacon", "activation"],
     default_args=DEFAULT_ARGS, doc_md=__doc__)
def beacon_activation():
    @task
    def discover_audiences() -> list[str]:
        from beacon.audiences import discover
        from beacon.config import settings

        return [a.name for a in discover(settings().manifest_path)]

    @task
    def record_memberships(names: list[str]) -> list[dict]:
        from beacon.audiences import discover, record_membership
        from beacon.config import settings
        from beacon.warehouse import clock, connect

        s = settings()
        with connect() as con:
            day = clock(con).date().isoformat()
            return [record_membership(con, a, day) for a in discover(s.manifest_path) if a.name in names]

    @task(outlets=[EXPORTS])
    def export_audience(name: str) -> dict:
        from beacon.activation.export import export_audience as export
        from beacon.audiences import discover
        from beacon.config import settings
        from beacon.warehouse import clock, connect

        s = settings()
        audience = next(a for a in discover(s.manifest_path) if a.name == name)
        if "file" not in audience.channels:
            return {"audience": name, "skipped": "no file channel"}
        with connect() as con:
            day = clock(con).date().isoformat()
            return export(con, audience, str(s.exports_dir), day).to_dict()

    names = discover_audiences()
    record_memberships(names) >> export_audience.expand(name=names)


beacon_activation()
