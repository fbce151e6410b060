"""Identity resolution as one task both engines share (issue 29; docs/scale.md, "Identity and clustering").

`resolve_identities` is the step behind `int_identity_events`: it takes the records dbt built
(`int_customer_records_unioned`) and the event log so far, resolves them (beacon.identity.resolve: deterministic
links, Splink, stable ids), records every guard in quality.expectation_results (critical rules the data-quality
breaker reads) and returns the new events. On DuckDB the dbt Python model `int_identity_events` calls it inside
the dbt build, as before; on Spark (whose dbt adapter runs no Python models) `beacon.spark.tasks` calls it between
two dbt selections, with the records collected from Spark and the control plane's DuckDB file for the guards and
the stored linkage model.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import duckdb
import pandas as pd

from beacon.identity.guards import SUITE, GuardConfig, GuardReport, IdentityGuardError
from beacon.identity.resolve import ResolutionConfig, ResolutionStats, resolve
from beacon.quality.breaker import record_results

# The trained Splink model is kept beside the log, so increments are scored with the same model.
MODEL_STORE = "intermediate.identity_linker_models"
# The config keys of int_identity_events (its YAML, from the `identity_*` vars of dbt_project.yml).
CONFIG_KEYS = ("match_threshold", "max_email_group", "max_phone_group", "require_name_agreement", "probabilistic",
               "shared_email_needs_more", "guard_max_matches_per_record", "guard_max_links_over_expected",
               "guard_max_cluster_size", "guard_max_large_cluster_share", "guard_max_merge_share")


def identity_config(values: Mapping[str, Any]) -> ResolutionConfig:
    """The resolution rules from the model's config (flags as the words 'yes' / 'no': dbt drops boolean values
    from a Python model's config); a missing key is refused, named."""
    missing = [k for k in CONFIG_KEYS if values.get(k) is None]
    if missing:
        raise ValueError(f"int_identity_events: config key(s) missing: {', '.join(missing)}")
    guards = GuardConfig(
        max_matches_per_record=float(values["guard_max_matches_per_record"]),
        max_links_over_expected=float(values["guard_max_links_over_expected"]),
        max_cluster_size=int(values["guard_max_cluster_size"]),
        max_large_cluster_share=float(values["guard_max_large_cluster_share"]),
        max_merge_share=float(values["guard_max_merge_share"]),
    )
    return ResolutionConfig(
        match_threshold=float(values["match_threshold"]),
        max_email_group=int(values["max_email_group"]),
        max_phone_group=int(values["max_phone_group"]),
        require_name_agreement=values["require_name_agreement"] == "yes",
        probabilistic=values["probabilistic"] == "yes",
        shared_email_needs_more=values["shared_email_needs_more"] == "yes",
        guards=guards,
    )


def resolve_identities(con: duckdb.DuckDBPyConnection, records: duckdb.DuckDBPyRelation | pd.DataFrame,
                       previous: duckdb.DuckDBPyRelation | pd.DataFrame | None, cfg: ResolutionConfig,
                       model_store: str = MODEL_STORE) -> pd.DataFrame:
    """The run's new identity events (beacon.identity.resolve.EVENT_COLUMNS); every guard is recorded on `con`.

    When a guard trips, its results are recorded and IdentityGuardError is raised: nothing is returned, the stored
    model stays as it was, and the caller publishes nothing."""
    stats = ResolutionStats()
    run_id = uuid.uuid4().hex[:12]
    try:
        events = resolve(con, records, previous, cfg, stats, model_store=model_store)
    except IdentityGuardError as exc:
        record_results(con, SUITE, run_id, GuardReport(exc.results).rows())
        raise
    record_results(con, SUITE, run_id, GuardReport(stats.guards).rows())
    return events
