"""Campaign outcomes have one definition (the dbt macro the mart calls, rendered by Python too) and one window
setting (BEACON_MEASUREMENT_WINDOW_DAYS, handed to dbt by beacon): the mart and the report cannot disagree."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from beacon.config import override_env, settings
from beacon.dbt import dbt_env
from beacon.measure.outcomes import exposure_outcomes, in_window_sql, warehouse_outcomes

ROOT = Path(__file__).resolve().parents[2]
T0 = pd.Timestamp("2026-06-10 00:00")


def _events(*rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "event_type", "occurred_at", "revenue"])


def test_the_mart_is_the_macro_with_the_setting():
    mart = (ROOT / "dbt_project/models/measurement/campaign_exposure_outcomes.sql").read_text()
    # The macro over the exposures (all of them, or the rebuilt days' on an incremental run: the CTE `exposures`,
    # a filter of campaign_exposures and nothing else).
    assert re.search(r"exposure_outcomes\('exposures', ref\('campaign_outcome_events'\),\s*"
                     r"var\('measurement_window_days'\)\)", mart)
    cte = re.search(r"\bexposures as \((.*?)\n\),", mart, re.S).group(1)
    assert re.sub(r"\{%-? (?:if is_incremental\(\)|endif) -?%\}|where exposed_date in \(select day from "
                  r"rebuilt_days\)|\s+", " ", cte).split() == ["select", "*", "from", "{{", "ref('campaign_exposures')", "}}"]
    assert "interval" not in mart.lower() and "occurred_at" not in mart  # no second copy of the window rule
    project = yaml.safe_load((ROOT / "dbt_project/dbt_project.yml").read_text())
    assert project["vars"]["measurement_window_days"] == "{{ env_var('BEACON_MEASUREMENT_WINDOW_DAYS', '7') }}"
    assert settings().measurement_window_days == 7.0  # the same default on both sides
    with override_env(BEACON_MEASUREMENT_WINDOW_DAYS="14"):
        assert dbt_env()["BEACON_MEASUREMENT_WINDOW_DAYS"] == "14.0"  # what dbt builds the mart with


def test_a_fractional_window_counts_to_the_microsecond():
    # 1.5 days: an order 1 d 11:59 after exposure counts, one at 1 d 12:00:01 does not (the old mart's
    # `interval 1.5 day` silently meant 1 day). The window is (exposed_at, exposed_at + 1.5 d].
    exp = pd.DataFrame({"campaign": ["a", "a"], "customer_id": ["c1", "c2"], "arm": ["treatment", "control"],
                        "exposed_at": [T0, T0]})
    ev = _events(("c1", "order", T0 + pd.Timedelta("1 days 11:59:00"), 10.0),
                 ("c2", "order", T0 + pd.Timedelta("1 days 12:00:01"), 20.0),
                 ("c1", "order", T0, 99.0))  # at the exposure instant: not after it
    out = exposure_outcomes(exp, ev, 1.5)
    assert out.converted.tolist() == [1, 0] and out.revenue.tolist() == [10.0, 0.0]
    assert list(out.columns[:4]) == ["campaign", "customer_id", "arm", "exposed_at"]  # every exposure column kept
    edge = duckdb.connect().execute(
        f"SELECT {in_window_sql('TIMESTAMP ' + repr(str(T0 + pd.Timedelta('1.5D'))), 'TIMESTAMP ' + repr(str(T0)), 1.5)}"
    ).fetchone()[0]
    assert edge is True  # the end of the window is inside it


def test_clicks_count_for_their_own_campaign_orders_for_every_campaign():
    exp = pd.DataFrame({"campaign": ["a", "b"], "customer_id": ["c1", "c1"], "exposed_at": [T0, T0]})
    ev = _events(("c1", "click", T0 + pd.Timedelta("1h"), 0.0), ("c1", "order", T0 + pd.Timedelta("2h"), 5.0))
    ev["campaign"] = ["a", None]
    out = exposure_outcomes(exp, ev, 7)
    assert out.clicks.tolist() == [1, 0] and out.orders.tolist() == [1, 1]


def test_the_warehouse_path_and_the_frame_path_agree():
    con = duckdb.connect()
    exp = pd.DataFrame({"campaign": ["a", "a", "b"], "customer_id": ["c1", "c2", "c1"],
                        "arm": ["treatment", "control", "treatment"], "exposed_at": [T0, T0, T0 + pd.Timedelta("3D")]})
    ev = _events(("c1", "order", T0 + pd.Timedelta("4D"), 7.0), ("c2", "form_submitted", T0 + pd.Timedelta("1D"), 0.0),
                 ("c1", "order", T0 + pd.Timedelta("9D"), 3.0))
    con.execute("CREATE SCHEMA measurement")
    con.register("_e", exp)
    con.register("_v", ev)
    con.execute("CREATE TABLE measurement.campaign_exposures AS SELECT * FROM _e")
    con.execute("CREATE TABLE measurement.campaign_outcome_events AS SELECT * FROM _v")
    cols = ["campaign", "customer_id", "converted", "orders", "revenue", "form_submits"]
    wh = warehouse_outcomes(con, 7.0)[cols]
    frame = exposure_outcomes(exp, ev, 7.0)[cols].sort_values(["campaign", "customer_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(wh, frame, check_dtype=False)
    assert wh.orders.tolist() == [1, 0, 2] and wh.form_submits.tolist() == [0, 1, 0]
    assert warehouse_outcomes(con, 7.0, "b").customer_id.tolist() == ["c1"]


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_a_window_that_is_not_a_positive_number_is_refused(bad):
    with pytest.raises(ValueError, match="positive number of days"):
        exposure_outcomes(pd.DataFrame({"campaign": [], "customer_id": [], "exposed_at": []}), _events(), bad)
