"""The daily run's incremental measurement marts and scores equal a full rebuild (issue 28; docs/scale.md).

A small world runs three whole days through the bench's stage functions (ingest, dbt, training when due,
scoring, activation, journeys, measurement: `beacon.bench.pipeline_days.run_day`); day 3 also brings late web and
email events of day 1, a re-delivered message, re-sent orders now refunded and a changed CRM record that merges two
customers. Then the measurement marts, rebuilt day by day, equal a `--full-refresh` build of them on the same
warehouse, so do the web sessions (split by device, incremental by day), the scores, computed only for the
customers whose features changed, equal scoring everyone, and the recommendations, computed only for the customers
whose purchases changed, equal recomputing everyone against the same stored model.
"""

from __future__ import annotations

import duckdb
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


def _marts(path) -> dict[str, pd.DataFrame]:
    return {t: df.drop(columns=BOOKKEEPING).sort_values(["campaign", "customer_id"], ignore_index=True)
            for t, df in content(path, MARTS).items()}


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

        assert dbt.run(["run", "--full-refresh", "--select", dbt.MEASUREMENT, "int_web_sessions_split",
                        "int_lead_point_events_scored", "fct_lead_points", "int_customers_clustered"], s, quiet=True)
        full = _marts(s.warehouse_path)
        full_sessions = content(s.warehouse_path, SESSIONS)
        full_rebuilt = content(s.warehouse_path, REBUILT)
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
    assert len(daily_scores) > 0
    pd.testing.assert_frame_equal(daily_scores, full_scores, obj="ml.scores")
    assert len(daily_recs) > 0
    pd.testing.assert_frame_equal(daily_recs, full_recs, check_exact=True, obj="ml.recommendations")
