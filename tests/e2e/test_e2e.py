"""End to end through Airflow (dag.test) on a ~2,000-person world: the exported audience is right."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from beacon.audiences import discover
from beacon.config import settings
from beacon.pipeline import DemoResult, collect, prepare_world, run_dags
from beacon.warehouse import connect

pytestmark = pytest.mark.e2e  # the whole pipeline through Airflow


@pytest.fixture(scope="module")
def demo(airflow_home):
    s = settings()
    day = prepare_world(s, people=2000, seed=11)
    seconds = run_dags(day)
    return s, day, collect(s, DemoResult(people=2000, seed=11, day=day, seconds=seconds))


def test_every_stage_produced_output(demo):
    s, day, r = demo
    assert r.raw["files"] == 9 and r.raw["rows_read"] == r.raw["rows_loaded"] + r.raw["rows_quarantined"]
    truth = pd.read_parquet(s.truth_dir / day / "bad_rows.parquet")
    assert r.raw["rows_quarantined"] == len(truth)
    assert r.warehouse["marts.dim_customers"] > 1000
    assert 0.6 < r.model["auc"] <= 1.0
    # The ML DAG trained, registered, scored and reported all three models.
    assert {m["model"] for m in r.models} == {"lead_score", "churn", "ltv"} and r.model_report
    with connect() as con:
        scored = dict(con.execute("SELECT model, count(*) FROM ml.scores GROUP BY 1").fetchall())
        buyers = con.execute("SELECT count(*) FROM marts.dim_customers WHERE order_count > 0").fetchall()[0][0]
    assert scored == {"lead_score": r.warehouse["marts.dim_customers"], "ltv": r.warehouse["marts.dim_customers"],
                      "churn": buyers}
    assert r.warehouse["ml.scores"] == sum(scored.values())


def test_models_read_the_features_the_mart_publishes(demo):
    # One definition: the ML features at the warehouse clock are the mart customer_features, value for value.
    from ml import features

    with connect() as con:
        ml = features.build(con, features.as_of(con)).set_index("customer_id")
        mart = con.execute("SELECT * FROM marts.customer_features ORDER BY customer_id").df().set_index("customer_id")
    assert len(ml) > 1000
    pd.testing.assert_frame_equal(ml, mart[features.FEATURES].astype("float64"))


def test_every_mart_and_segment_column_is_described(demo):
    # dbt as documentation: destinations receive these columns, so each one says what it is.
    s = settings()
    nodes = json.loads(s.manifest_path.read_text())["nodes"].values()
    described = {(n["schema"], n["name"]): {c for c, v in n["columns"].items() if v.get("description", "").strip()}
                 for n in nodes if n["resource_type"] == "model" and n["schema"] in ("marts", "segments")}
    with connect() as con:
        built = con.execute("""SELECT table_schema, table_name, column_name FROM information_schema.columns
                               WHERE table_schema IN ('marts', 'segments')""").fetchall()
    assert len(built) > 250
    undescribed = sorted(f"{t}.{c}" for sch, t, c in built if c not in described.get((sch, t), set()))
    assert undescribed == []
    assert all(n.get("description") for n in nodes if n["resource_type"] == "model" and n["schema"] in ("marts", "segments"))


def _exports(s, day: str) -> dict:
    """Every cart_abandoners file export of the day, by name, with its bytes."""
    folder = s.exports_dir / "cart_abandoners" / day
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_exported_members_are_exactly_the_sendable_segment_members(demo):
    s, day, r = demo
    folder = s.exports_dir / "cart_abandoners" / day
    [csv] = sorted(folder.glob("cart_abandoners-*.csv"))  # the first sync: one file of adds
    exported = pd.read_csv(csv)
    manifest = json.loads(csv.with_name(csv.stem + ".manifest.json").read_text())
    assert manifest["row_count"] == len(exported) > 0
    assert manifest["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert (exported.operation == "add").all()
    audiences = {a.name: a for a in discover(s.manifest_path)}
    me = audiences["cart_abandoners"]
    higher = [a for a in audiences.values() if "file" in a.channels and a.priority > me.priority]
    with connect() as con:
        segment = con.execute("SELECT customer_id FROM segments.cart_abandoners").df()
        log = con.execute("SELECT customer_id, operation, status, reason FROM activation.sync_log "
                          "WHERE audience = 'cart_abandoners' AND destination = 'file'").df()
        # Recompute the segment rule independently from the marts: cart add in the 72 h before the latest
        # event, and no order at or after that cart add.
        qualifies = con.execute("""
            WITH as_of AS (SELECT max(event_at) AS t FROM marts.fct_web_events)
            SELECT DISTINCT w.customer_id FROM marts.fct_web_events w, as_of
            WHERE w.event_name = 'product_added' AND w.event_at > as_of.t - INTERVAL 72 HOUR AND w.customer_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM marts.fct_orders o WHERE o.customer_id = w.customer_id
                              AND o.ordered_at >= (SELECT max(event_at) FROM marts.fct_web_events x
                                                   WHERE x.customer_id = w.customer_id AND x.event_name = 'product_added'))
              AND EXISTS (SELECT 1 FROM marts.dim_customers c WHERE c.customer_id = w.customer_id AND c.is_email_valid)
        """).df()
        # Who may receive a file export, restated from the marts: email opt-in, never complained or hard-bounced,
        # no unsubscribe since the opt-in, and not in a higher-priority audience delivered to files.
        may = set(con.execute(f"""
            SELECT s.customer_id FROM segments.cart_abandoners s
            JOIN marts.dim_consent c ON c.customer_id = s.customer_id AND c.channel = 'email' AND c.status = 'opt_in'
            WHERE NOT EXISTS (SELECT 1 FROM marts.fct_email_events e WHERE e.customer_id = s.customer_id
                              AND (e.event_name = 'complaint' OR (e.event_name = 'bounce' AND e.bounce_type = 'hard')
                                   OR (e.event_name = 'unsubscribe' AND e.event_at >= c.recorded_at)))
            {''.join(f" AND s.customer_id NOT IN (SELECT customer_id FROM {a.relation})" for a in higher)}
        """).df().customer_id)
        emails = con.execute("SELECT customer_id, email FROM marts.dim_customers").df().set_index("customer_id").email
    assert set(segment.customer_id) == set(qualifies.customer_id)
    held = {c for c in may if int(hashlib.md5(f"cart_abandoners:{c}".encode()).hexdigest()[:8], 16) % 10000 / 100
            < me.holdout_pct}
    sent = set(exported.customer_id)
    assert sent == may - held  # exactly the people the rules allow, minus the control group
    assert sent == set(log[log.status == "delivered"].customer_id)
    assert held == set(log[log.status == "held_out"].customer_id)
    # Every member is accounted for: delivered, held out, or not sent with a reason.
    assert sorted(log.customer_id) == sorted(segment.customer_id)
    assert log[log.status == "suppressed"].reason.notna().all()
    assert (exported.set_index("customer_id").email == emails.reindex(exported.customer_id)).all()


def test_rerun_is_idempotent(demo):
    s, day, r = demo
    before = _exports(s, day)
    with connect() as con:
        raw_before = con.execute("SELECT count(*) FROM raw.web_events").fetchall()[0][0]
    run_dags(day)
    with connect() as con:
        assert con.execute("SELECT count(*) FROM raw.web_events").fetchall()[0][0] == raw_before
        cart = con.execute("""SELECT adds + updates + removes FROM activation.sync_runs WHERE audience = 'cart_abandoners'
            AND destination = 'file' ORDER BY started_at DESC LIMIT 1""").fetchall()[0][0]
        sent_before = con.execute("SELECT count(*) FROM activation.sync_log WHERE operation <> 'skip'").fetchall()[0][0]
    assert cart == 0 and _exports(s, day) == before  # the same data: nothing sent, no file written
    # (Other audiences may change on a re-run of every DAG: e.g. segments built after the first scoring now carry
    # the lead score. Without new data, a second activation run sends nothing anywhere.)
    _run_activation()
    with connect() as con:
        assert con.execute("SELECT count(*) FROM activation.sync_log WHERE operation <> 'skip'").fetchall()[0][0] == \
            sent_before
        latest = con.execute("""SELECT adds + updates + removes FROM activation.sync_runs WHERE status <> 'blocked'
            QUALIFY row_number() OVER (PARTITION BY audience, destination ORDER BY started_at DESC) = 1""").fetchall()
    assert len(latest) == 12 and sum(n for (n,) in latest) == 0


def _run_activation():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(settings().home / "dags" / "beacon_activation.py"))
    dr = bag.get_dag("beacon_activation").test()
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances() if ti.task_id != "sync_audience"}, \
        [str(ti.state) for ti in dr.get_task_instances() if ti.task_id == "sync_audience"], str(dr.state)


def test_the_quality_breaker_blocks_activation_and_closing_it_delivers(demo):
    from datetime import datetime, timedelta

    from beacon.quality.breaker import ensure_results_table

    s, day, r = demo
    with connect() as con:
        # Forget the cart_abandoners file delivery, so the next run has something to deliver.
        pending = con.execute("SELECT count(*) FROM activation.sync_state WHERE audience = 'cart_abandoners' "
                              "AND destination = 'file' AND present").fetchall()[0][0]
        con.execute("DELETE FROM activation.sync_state WHERE audience = 'cart_abandoners' AND destination = 'file'")
        ensure_results_table(con)
        # After every checkpoint the DAGs ran (their rows carry the wall-clock run time), so these are the latest.
        latest = con.execute("SELECT max(run_at) FROM quality.expectation_results").fetchall()[0][0]
        t1 = (latest or datetime(2026, 11, 1)) + timedelta(days=1)
        t2 = t1 + timedelta(days=1)
        con.execute("""INSERT INTO quality.expectation_results VALUES ('gx-1', 'marts_dim_customers',
            'expect_column_values_to_be_unique(customer_id)', 'critical', false, '3 duplicates', '{}', ?)""",
                    [t1])
        sent_before = con.execute("SELECT count(*) FROM activation.sync_log WHERE operation <> 'skip'").fetchall()[0][0]
    assert pending > 0
    tasks, syncs, state = _run_activation()
    assert state.endswith("success") and tasks["check_quality_gate"].endswith("success")
    assert tasks["discover_deliveries"].endswith("skipped") and all(x.endswith("skipped") for x in syncs)
    with connect() as con:
        assert con.execute("SELECT count(*) FROM activation.sync_log WHERE operation <> 'skip'").fetchall()[0][0] == \
            sent_before  # nothing sent
        [(status, message)] = con.execute("SELECT status, message FROM activation.sync_runs WHERE status = 'blocked'"
                                          ).fetchall()
    assert "expect_column_values_to_be_unique(customer_id)" in message and "3 duplicates" in message  # and why
    # The next checkpoint of the suite passes: the breaker closes and the pending delivery goes out.
    with connect() as con:
        con.execute("""INSERT INTO quality.expectation_results VALUES ('gx-2', 'marts_dim_customers',
            'expect_column_values_to_be_unique(customer_id)', 'critical', true, '0 duplicates', '{}', ?)""",
                    [t2])
    tasks, syncs, state = _run_activation()
    assert state.endswith("success") and any(x.endswith("success") for x in syncs)
    with connect() as con:
        [(adds, delivered)] = con.execute("""SELECT adds, delivered FROM activation.sync_runs
            WHERE audience = 'cart_abandoners' AND destination = 'file' ORDER BY started_at DESC LIMIT 1""").fetchall()
    assert adds == delivered == pending
    # An Asset event for the delivered audience, through the alias.
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        uris = {u for (u,) in session.query(AssetModel.uri).join(AssetEvent, AssetEvent.asset_id == AssetModel.id)}
    assert "beacon://audiences/cart_abandoners/file" in uris
    with connect() as con:  # leave the checkpoint history as the DAGs wrote it, for the tests that follow
        con.execute("DELETE FROM quality.expectation_results WHERE run_id IN ('gx-1', 'gx-2')")


def test_a_real_checkpoint_failure_blocks_activation(demo):
    """End to end with Great Expectations itself: a duplicated customer in marts.dim_customers fails the
    marts checkpoint's critical uniqueness expectation, the breaker opens and the activation DAG sends
    nothing; once the data is fixed and the checkpoint passes again, the breaker closes."""
    from beacon.quality.breaker import breaker_state
    from beacon.quality.checkpoint import run_marts_checkpoint

    s, day, r = demo
    docs = s.data_dir / "quality" / "docs"
    with connect() as con:
        # Only real checkpoint runs count here (a test above dates hand-written results after them).
        con.execute("DELETE FROM quality.expectation_results WHERE run_id IN ('gx-1', 'gx-2')")
        con.execute("INSERT INTO marts.dim_customers SELECT * FROM marts.dim_customers LIMIT 1")
        report = run_marts_checkpoint(con, docs)
        state = breaker_state(con)
        sent_before = con.execute("SELECT count(*) FROM activation.sync_log WHERE operation <> 'skip'").fetchall()[0][0]
    assert state.open and any("customer_id" in f and "marts_dim_customers" in f for f in state.failures), state
    assert report.to_dict()  # the checkpoint reported (and wrote Data Docs)
    tasks, syncs, dag_state = _run_activation()
    assert dag_state.endswith("success") and all(x.endswith("skipped") for x in syncs)
    with connect() as con:
        assert con.execute("SELECT count(*) FROM activation.sync_log WHERE operation <> 'skip'").fetchall()[0][0] == \
            sent_before
        # Fix the data: drop the duplicate, check again; the breaker closes.
        con.execute("""CREATE OR REPLACE TABLE marts.dim_customers AS SELECT DISTINCT * FROM marts.dim_customers""")
        run_marts_checkpoint(con, docs)
        assert not breaker_state(con).open


def test_cli_dry_run_and_audiences_diff_agree_with_the_sync_engine(demo, capsys):
    from beacon.cli import main

    def run(*argv) -> dict:
        assert main([*argv, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    d = run("audiences", "diff", "cart_abandoners")
    assert (d["would_enter"], d["would_update"], d["would_leave"]) == (0, 0, 0) and d["unchanged"] == d["delivered_then"]
    with connect() as con:
        con.execute("""DELETE FROM activation.sync_state WHERE audience = 'cart_abandoners' AND destination = 'file'
            AND customer_id IN (SELECT customer_id FROM activation.sync_state WHERE audience = 'cart_abandoners'
                                AND destination = 'file' ORDER BY customer_id LIMIT 3)""")
        sent_before = con.execute("SELECT count(*) FROM activation.sync_log WHERE operation <> 'skip'").fetchall()[0][0]
    d = run("audiences", "diff", "cart_abandoners")
    dry = run("activate", "--audience", "cart_abandoners", "--destination", "file", "--dry-run")
    assert d["would_enter"] == dry["adds"] == 3 and dry["status"] == "dry_run"
    assert [r["customer_id"] for r in dry["sample"]] == d["enter_sample"]
    with connect() as con:
        assert con.execute("SELECT count(*) FROM activation.sync_log WHERE operation <> 'skip'").fetchall()[0][0] == \
            sent_before  # the dry run sent nothing
    real = run("activate", "--audience", "cart_abandoners", "--destination", "file")
    assert (real["adds"], real["delivered"], real["status"]) == (3, 3, "succeeded")
    assert run("audiences", "diff", "cart_abandoners")["would_enter"] == 0
    assert main(["activate", "--audience", "cart_abandoners", "--destination", "ads"]) == 2  # not one of its channels
    assert "not delivered to 'ads'" in capsys.readouterr().err


def test_dbt_docs_generate_works(demo):
    """`dbt docs generate` builds the catalog of the warehouse the DAGs just built."""
    from beacon import dbt

    s, _, _ = demo
    assert dbt.run(["docs", "generate"], s, quiet=True)
    catalog = json.loads((s.dbt_target_dir / "catalog.json").read_text())
    names = {n.split(".")[-1] for n in catalog["nodes"]}
    assert {"dim_customers", "dim_companies", "fct_web_sessions", "customer_features", "identity_merge_log"} <= names
