"""The daily run's incremental measurement marts and scores equal a full rebuild (issue 28; docs/scale.md).

A small world runs three whole days through the bench's stage functions (ingest, dbt, training when due,
scoring, activation, journeys, measurement: `beacon.bench.pipeline_days.run_day`); day 3 also brings late web and
email events of day 1, a re-delivered message, re-sent orders now refunded and a changed CRM record that merges two
customers. Then the measurement marts, rebuilt day by day, equal a `--full-refresh` build of them on the same
warehouse, so do the web sessions (split by device, incremental by day), the events counted per day (incremental by
day) and the customer features read from them, the scores, computed only for the customers whose features changed,
equal scoring everyone, and the recommendations, computed only for the customers whose purchases changed, equal
recomputing everyone against the same stored model. The customer features, read per day, also equal counting the
events one by one at cutoffs inside a day. The lifecycle holds every date a full refresh gives, never later, and
earlier ones only where today's data no longer shows them (a stage never goes backwards).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import jinja2
import pandas as pd
import pytest
from support.incremental_world import content, plant_late_rows, plant_merge

from beacon.config import override_env

PEOPLE = 1200
SEED = 11
MARTS = ("measurement.campaign_exposures", "measurement.campaign_exposure_outcomes")
# The sessions, split by device and day (their customer read through the mappings in the fct_web_sessions view).
SESSIONS = ("intermediate.int_web_sessions_split", "marts.fct_web_sessions")
# Lead points (a view and a table rebuilt each run from the facts) and the behaviour clusters (assigned to the day-1 centroids on days 2
# and 3, var cluster_retrain_days): a full refresh gives the same rows.
REBUILT = ("intermediate.int_lead_point_events_scored", "marts.fct_lead_points", "intermediate.int_customers_clustered")
BOOKKEEPING = ["_facts_seq"]  # which build wrote a day: differs between the paths by design
# The events counted per day (incremental by day) and the features read from them: equal to a full refresh.
FEATURES = ("intermediate.int_web_event_days", "intermediate.int_email_event_days", "marts.customer_features")
# The lifecycle keeps the earliest date a stage was reached: a full refresh sees only today's data (a refunded order,
# a CRM record updated since it said SQL), so the daily path may hold earlier dates, never later or missing ones.
LIFECYCLE = "marts.customer_lifecycle"
STAGE_DATES = ["subscriber_at", "lead_at", "mql_at", "sql_at", "customer_at"]
BY_EVENT = Path(__file__).parents[1] / "support" / "customer_features_by_event.sql"


def _marts(path) -> dict[str, pd.DataFrame]:
    return {t: df.drop(columns=BOOKKEEPING).sort_values(["campaign", "customer_id"], ignore_index=True)
            for t, df in content(path, MARTS).items()}


def _features(path) -> dict[str, pd.DataFrame]:
    return content(path, (*FEATURES, LIFECYCLE))


def _lifecycle_never_later(daily: pd.DataFrame, full: pd.DataFrame, merged_away: set[str]) -> int:
    """The daily lifecycle against a full refresh: every customer there (and besides them only customers merged away,
    whose rows the incremental model keeps), every date the full refresh has also there and not later, rows equal
    where the daily path kept no earlier date. Returns how many rows kept an earlier date."""
    d, f = daily.set_index("customer_id"), full.set_index("customer_id")
    assert set(d.index.difference(f.index)) <= merged_away
    d = d.loc[f.index]
    kept_earlier = pd.Series(False, index=d.index)
    for col in STAGE_DATES:
        has = f[col].notna()
        assert d.loc[has, col].notna().all(), col
        assert (d.loc[has, col] <= f.loc[has, col]).all(), col
        kept_earlier |= d[col].notna() & (f[col].isna() | (d[col] < f[col]))
    same = ~kept_earlier
    columns = ["lifecycle_stage", *STAGE_DATES]
    pd.testing.assert_frame_equal(d.loc[same, columns], f.loc[same, columns], obj="lifecycle rows with nothing kept")
    return int(kept_earlier.sum())


def _features_by_event_equal(path) -> int:
    """The features at the warehouse clock and at cutoffs inside earlier days, read per day (the macro behind the
    mart) and counted event by event (the definition before issue 28), are equal; returns the rows compared."""
    from beacon.dbt import customer_features_sql

    by_event = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(BY_EVENT.read_text()).module
    rows = 0
    with duckdb.connect(str(path), read_only=True) as con:
        clock = con.execute("SELECT as_of_at FROM marts.warehouse_as_of").fetchone()[0]
        for cutoff in (clock, clock - timedelta(days=1, hours=7, minutes=13, seconds=5),
                       clock.replace(hour=0, minute=0, second=0), clock - timedelta(days=61, hours=15, seconds=1)):
            literal = f"TIMESTAMP '{cutoff:%Y-%m-%d %H:%M:%S}'"
            per_day = con.execute(f"SELECT * FROM ({customer_features_sql(cutoff)}) ORDER BY customer_id").df()
            events = con.execute(
                f"SELECT * FROM ({by_event.customer_features_by_event(literal)}) ORDER BY customer_id").df()
            assert (per_day.web_30d > 0).any() and (per_day.email_sends_90d > 0).any(), cutoff
            pd.testing.assert_frame_equal(per_day, events, check_dtype=True, obj=f"features at {cutoff}")
            rows += len(per_day)
    return rows


def _recommendations(path) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT * FROM ml.recommendations ORDER BY customer_id, rank").df()


def _scores(path) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT * FROM ml.scores ORDER BY model, customer_id").df()


@pytest.mark.e2e
def test_daily_measurement_and_scores_equal_a_full_rebuild(tmp_path):
    from beacon import dbt
    from beacon.bench.pipeline_days import run_day
    from beacon.config import settings
    from beacon.dbt import ensure_manifest
    from beacon.generate import GenConfig, generate
    from beacon.personalize.recommend import write_recommendations
    from beacon.progress import Progress
    from beacon.warehouse import connect
    from ml.score import score_all

    with override_env(BEACON_DATA_DIR=str(tmp_path), BEACON_DBT_TARGET_DIR=str(tmp_path / "dbt_target")):
        s = settings()
        ensure_manifest(s)
        with Progress(enabled=False) as shown:
            for day in (1, 2, 3):
                cfg = GenConfig(people=PEOPLE, seed=SEED, day=day)
                generate(cfg, tmp_path)
                if day == 3:
                    day_dir = s.landing_dir / cfg.day_date().isoformat()
                    plant_late_rows(day_dir, s.landing_dir / GenConfig(people=PEOPLE, seed=SEED).day_date().isoformat())
                    plant_merge(s.warehouse_path, s.landing_dir, day_dir)
                run_day(day, s, shown)
            compiled = next((s.dbt_target_dir / "compiled").rglob("campaign_exposures.sql")).read_text()
            assert "rebuilt_days" in compiled  # day 3's measurement build took the incremental path
        with duckdb.connect(str(s.warehouse_path), read_only=True) as con:
            exposure_days = con.execute("SELECT count(DISTINCT exposed_date) FROM measurement.campaign_exposures").fetchone()[0]
            merges = con.execute("SELECT count(*) FROM marts.identity_merge_log").fetchone()[0]
            merged_away = {r[0] for r in con.execute("SELECT merged_customer_id FROM marts.identity_merge_log").fetchall()}
            # Day 3's build logged changed inputs on earlier days (the late events, the refunded orders, the merge).
            old_changes = con.execute("""SELECT count(*) FROM measurement.measurement_input_days
                WHERE _seq = (SELECT max(_seq) FROM measurement.measurement_input_days)
                  AND day < (SELECT max(exposed_date) - 1 FROM measurement.campaign_exposures)""").fetchone()[0]
            covariates = con.execute("""SELECT count(*) FROM measurement.campaign_exposures
                WHERE prior_orders_90d > 0 OR prior_visits_90d > 0""").fetchone()[0]
        assert exposure_days >= 2 and merges > 0 and old_changes > 0 and covariates > 0
        daily, daily_scores = _marts(s.warehouse_path), _scores(s.warehouse_path)
        daily_recs = _recommendations(s.warehouse_path)
        daily_sessions = content(s.warehouse_path, SESSIONS)
        daily_rebuilt = content(s.warehouse_path, REBUILT)
        with duckdb.connect(str(s.warehouse_path), read_only=True) as con:  # day 1 fitted; days 2 and 3 assigned
            fitted = con.execute("SELECT trained_as_of FROM intermediate.customer_cluster_models").fetchall()
        assert len(fitted) == 1 and fitted[0][0] <= GenConfig(people=PEOPLE, seed=SEED).day_date().isoformat()
        daily_features = _features(s.warehouse_path)
        compiled = (s.dbt_target_dir / "compiled" / "beacon" / "models" / "intermediate" / "int_web_event_days.sql")
        assert "changed_days" in compiled.read_text()  # day 3 counted the web events per day incrementally
        assert _features_by_event_equal(s.warehouse_path) > 0

        assert dbt.run(["run", "--full-refresh", "--select", dbt.MEASUREMENT, "int_web_sessions_split",
                        "int_lead_point_events_scored", "fct_lead_points", "int_customers_clustered",
                        "int_web_event_days", "int_email_event_days", "customer_features", "customer_lifecycle"],
                       s, quiet=True)
        full = _marts(s.warehouse_path)
        full_sessions = content(s.warehouse_path, SESSIONS)
        full_rebuilt = content(s.warehouse_path, REBUILT)
        full_features = _features(s.warehouse_path)
        with connect() as con:  # scoring everyone: no fingerprints kept
            con.execute("DELETE FROM ml.score_fingerprints")
            scored = score_all(con, s.registry_dir)
        assert all(m["rescored"] == m["rows"] for m in scored["models"].values())
        full_scores = _scores(s.warehouse_path)
        with connect() as con:  # every customer's recommendations again, against the same stored model
            recs = write_recommendations(con, full_refresh=True)
        assert recs["retrained"] is None
        full_recs = _recommendations(s.warehouse_path)

    for table in MARTS:
        assert len(daily[table]) > 0, table
        pd.testing.assert_frame_equal(daily[table], full[table], check_dtype=True, obj=table)
    for table in SESSIONS:
        assert len(daily_sessions[table]) > 0, table
        pd.testing.assert_frame_equal(daily_sessions[table], full_sessions[table], check_dtype=True, obj=table)
    for table in REBUILT:
        assert len(daily_rebuilt[table]) > 0, table
        pd.testing.assert_frame_equal(daily_rebuilt[table], full_rebuilt[table], check_dtype=True, obj=table)
    for table in FEATURES:
        assert len(daily_features[table]) > 0, table
        pd.testing.assert_frame_equal(daily_features[table], full_features[table], check_dtype=True, obj=table)
    assert len(daily_features[LIFECYCLE]) > 0
    # Some stage dates were reached earlier than today's data shows (the refunded orders, updated CRM records).
    assert _lifecycle_never_later(daily_features[LIFECYCLE], full_features[LIFECYCLE], merged_away) > 0
    assert len(daily_scores) > 0
    pd.testing.assert_frame_equal(daily_scores, full_scores, obj="ml.scores")
    assert len(daily_recs) > 0
    pd.testing.assert_frame_equal(daily_recs, full_recs, check_exact=True, obj="ml.recommendations")
