"""End to end through Airflow (dag.test) on a ~2,000-person world: the exported audience is right, every channel
(file, email over a local SMTP server, webhook to a local receiver, ads upload files) is delivered, and the
pipeline never reads the generator's ground truth."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from beacon.audiences import discover
from beacon.config import settings
from beacon.pipeline import DemoResult, collect, prepare_world, run_dags
from beacon.warehouse import connect

pytestmark = pytest.mark.e2e  # the whole pipeline through Airflow


PEOPLE, SEED = 2000, 11
_TRUTH_OPENED: list[str] = []  # paths under the truth folder opened while the guard is on
_GUARD: dict = {"root": None}


def _audit(event: str, args: tuple) -> None:
    root = _GUARD["root"]
    if root and event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], str | bytes) \
            and str(args[0] if isinstance(args[0], str) else args[0].decode()).startswith(root):
        _TRUTH_OPENED.append(str(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; it records only while _GUARD["root"] is set


@contextmanager
def truth_hidden(s):
    """Ground truth is never read by the pipeline (DESIGN.md): move it away for the run, and record any attempt
    to open a path under it in this process (DuckDB and dbt subprocesses would fail on the missing folder)."""
    hidden = s.data_dir.parent / f"{s.data_dir.name}-truth-hidden"
    shutil.rmtree(hidden, ignore_errors=True)
    shutil.move(str(s.truth_dir), str(hidden))
    _GUARD["root"] = str(s.truth_dir)
    try:
        yield
    finally:
        _GUARD["root"] = None
        shutil.move(str(hidden), str(s.truth_dir))


@pytest.fixture(scope="module")
def channels(tmp_path_factory):
    """The three configured channels besides files: a local SMTP server, a local webhook receiver, an ads folder,
    each given to the DAGs as an Airflow connection through AIRFLOW_CONN_BEACON_<CHANNEL>."""
    from support.smtp import email_connection, smtp_server

    from beacon.testing.receiver import FaultyReceiver

    ads = tmp_path_factory.mktemp("ads")
    with smtp_server() as (sink, port), FaultyReceiver(token="e2e-token") as hook, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_BEACON_EMAIL", email_connection(port, unsubscribe_secret="e2e-not-real"))
        mp.setenv("AIRFLOW_CONN_BEACON_WEBHOOK", json.dumps({"conn_type": "http", "host": hook.url,
                                                             "password": "e2e-token"}))
        mp.setenv("AIRFLOW_CONN_BEACON_ADS", json.dumps({"conn_type": "ads", "extra": {"url": str(ads)}}))
        yield {"smtp": sink, "webhook": hook, "ads": ads}


@pytest.fixture(scope="module")
def demo(airflow_home, channels):
    s = settings()
    day = prepare_world(s, people=PEOPLE, seed=SEED)
    started = time.time()
    with truth_hidden(s):
        seconds = run_dags(day)
    r = collect(s, DemoResult(people=PEOPLE, seed=SEED, day=day, seconds=seconds))
    r.seconds["started_at_epoch"] = started
    return s, day, r


def test_the_pipeline_never_reads_the_ground_truth(demo):
    s, day, r = demo
    assert r.raw["files"] == 9  # the DAGs ran (with the truth folder moved away) ...
    assert _TRUTH_OPENED == []  # ... and nothing in this process tried to open a path under it
    assert (s.truth_dir / day / "bad_rows.parquet").is_file()  # restored for the evaluations below


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


def test_campaign_report_shows_every_audience_with_its_interval_in_chromium(demo, browser_page):
    # The activation DAG's last task built the measurement marts and wrote the campaign report beside the model
    # report; a real browser shows a section with a conversion interval for every audience with a control group.
    s, day, r = demo
    assert r.campaign_report and Path(r.campaign_report).parent == Path(r.model_report).parent
    with connect() as con:
        # Audiences with at least 2 people in each group (a lift needs that; the others say so instead).
        arms = dict(con.execute("""SELECT campaign, min(n) FROM (SELECT campaign, arm, count(*) AS n
            FROM measurement.campaign_exposures GROUP BY 1, 2) GROUP BY 1 HAVING count(*) = 2""").fetchall())
    with_control = sorted(c for c, n in arms.items() if n >= 2)
    assert len(with_control) >= 5
    page = browser_page.page
    page.goto(Path(r.campaign_report).resolve().as_uri())
    for c in with_control:
        text = page.locator(f"section[data-campaign='{c}']").inner_text()
        assert "95% interval" in text and "converted" in text, c
    sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    # The lift chart and one cumulative chart per audience with a control group (revenue and ROI charts appear
    # once some revenue fell in a window, which a one-day demo may not have yet).
    assert len(sizes) >= 1 + len(with_control) and all(ok and w > 0 for ok, w in sizes)
    assert browser_page.console_errors == []


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


def test_every_dbt_unit_test_and_data_test_ran_and_passed_in_the_build(demo):
    # From the run_results.json of the DAGs' own `dbt build`s (kept by beacon.dbt.keep_run_results): the marts in
    # the warehouse DAG, the score-based segments in the ML DAG, the measurement marts in the activation DAG. A change in Cosmos' flags that dropped the tests
    # would leave them out of these files.
    from datetime import UTC, datetime

    from beacon.dbt import last_build_results

    s, day, r = demo
    results = {"results": []}
    for group in ("dbt", "dbt_scored", "measurement"):
        part = json.loads(last_build_results(s, group).read_text())
        assert datetime.fromisoformat(part["metadata"]["generated_at"].replace("Z", "+00:00")) >= \
            datetime.fromtimestamp(r.seconds["started_at_epoch"], UTC)  # written by this run's build
        results["results"] += part["results"]
    manifest = json.loads(s.manifest_path.read_text())
    data_tests = {u for u, n in manifest["nodes"].items() if n["resource_type"] == "test"}
    unit_tests = set(manifest["unit_tests"])
    models = {u for u, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    assert len(unit_tests) >= 10 and len(data_tests) >= 50, (len(unit_tests), len(data_tests))
    status = {x["unique_id"]: x["status"] for x in results["results"]}
    assert {u: status.get(u) for u in unit_tests} == dict.fromkeys(unit_tests, "pass")
    assert {u: status.get(u) for u in data_tests} == dict.fromkeys(data_tests, "pass")
    assert {u: status.get(u) for u in models} == dict.fromkeys(models, "success")


def test_every_channel_is_delivered_to_its_real_local_counterpart(demo, channels):
    from beacon.activation.activate import delivery_pairs

    s, day, r = demo
    pairs = {(p["audience"], p["destination"]) for p in delivery_pairs(s.manifest_path)}
    assert {d for _, d in pairs} == {"file", "email", "webhook", "ads"}
    with connect() as con:
        first = con.execute("""SELECT audience, destination, status, delivered, failed FROM activation.sync_runs
            QUALIFY row_number() OVER (PARTITION BY audience, destination ORDER BY started_at) = 1""").df()
        log = con.execute("""SELECT l.destination, l.customer_id, c.email FROM activation.sync_log l
            JOIN marts.dim_customers c USING (customer_id) WHERE l.status = 'delivered'""").df()
    assert set(zip(first.audience, first.destination, strict=True)) == pairs  # no pair skipped as not configured
    assert (first.status == "succeeded").all() and (first.failed == 0).all(), first
    per = first.groupby("destination").delivered.sum().to_dict()
    assert all(per[d] > 0 for d in ("file", "email", "webhook", "ads")), per
    # Email: the SMTP server received exactly one message per delivered email row, to that member's address.
    received = sorted(rcpt[0] for rcpt, _ in channels["smtp"].messages)
    assert received == sorted(log[log.destination == "email"].email) and len(received) == per["email"]
    # Webhook: the receiver applied exactly the delivered rows, each once.
    hook = channels["webhook"]
    assert sorted(x["customer_id"] for x in hook.applied.values()) == sorted(log[log.destination == "webhook"]
                                                                              .customer_id)
    assert hook.duplicates_applied == 0 and hook.unauthorized == 0
    # Ads: upload files (with manifests) whose rows are the delivered members, as SHA-256 hashes only.
    uploads = sorted(channels["ads"].rglob("*-add-*.csv"))
    rows = pd.concat([pd.read_csv(f, dtype=str) for f in uploads])
    assert len(rows) == per["ads"] and all(f.with_name(f.stem + ".manifest.json").is_file() for f in uploads)
    assert rows.Email.dropna().str.fullmatch("[0-9a-f]{64}").all() and not rows.Email.isin(log.email).any()


def test_windows_count_from_the_warehouse_clock_not_the_wall_clock(demo):
    """Rebuild the marts and segments, and plan a delivery, with the wall clock 1,000 days ahead (libfaketime, so
    DuckDB's and dbt's clocks move too): every window counts from the warehouse clock, so nothing changes."""
    import subprocess
    from datetime import datetime

    from beacon import dbt

    s, day, r = demo
    assert shutil.which("faketime"), "faketime is required (apt-get install faketime; .ci/run installs it)"
    shifted = ["faketime", "-f", "+1000d"]
    probe = subprocess.run([*shifted, sys.executable, "-c", "import duckdb; print(duckdb.connect().execute("
                            "'SELECT now()::DATE').fetchall()[0][0])"], capture_output=True, text=True, check=True)
    assert (datetime.fromisoformat(probe.stdout.strip()) - datetime.now()).days >= 990  # the shift is real

    def state() -> dict:
        with connect() as con:
            return {a.relation: con.execute(f"SELECT * FROM {a.relation} ORDER BY ALL").df()
                    for a in discover(s.manifest_path)} | \
                {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").df() for t in
                 ("marts.customer_features", "marts.warehouse_as_of")}

    def diff(prefix: list[str]) -> dict:
        out = subprocess.run([*prefix, sys.executable, "-m", "beacon.cli", "audiences", "diff", "cart_abandoners",
                              "--json"], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    before, plan_before = state(), diff([])
    dbt.release_warehouse()
    subprocess.run([*shifted, dbt.executable(), "run", "--select", "path:models/marts", "path:models/segments",
                    *dbt.project_flags(s)], check=True, capture_output=True, env={**os.environ, **dbt.dbt_env(s)})
    after, plan_after = state(), diff(shifted)
    assert set(after) == set(before) and len(before["segments.cart_abandoners"]) > 0
    for name in before:
        pd.testing.assert_frame_equal(after[name], before[name], obj=name)
    assert plan_after == plan_before


def generated_per_source(truth_day) -> dict[str, int]:
    """Lines of data each landing file holds, from the generator's own record (not from the loader): its
    summary's row count per file plus the malformed lines it appended (truth/bad_rows.parquet)."""
    from beacon.ingest import load_specs

    summary = json.loads((truth_day / "summary.json").read_text())
    bad = pd.read_parquet(truth_day / "bad_rows.parquet")
    malformed = bad[bad.kind == "malformed"].groupby("file").size().to_dict()
    specs = load_specs()
    return {src: n + int(malformed.get(specs[src].file, 0)) for src, n in summary["rows"].items()}


def test_nothing_lost_against_the_generators_own_counts(demo):
    # "rows read = loaded + quarantined" is checked inside the loader; here the reference is the generator.
    s, day, r = demo
    generated = generated_per_source(s.truth_dir / day)
    assert len(generated) == 9 and all(n > 0 for n in generated.values())
    with connect() as con:
        read = dict(con.execute("SELECT source, sum(rows_read) FROM raw._load_ledger WHERE status = 'loaded' "
                                "AND file LIKE '%' || ? || '%' GROUP BY 1", [day]).fetchall())
        quarantined = dict(con.execute("SELECT source, count(*) FROM raw._quarantine GROUP BY 1").fetchall())
        in_raw = {src: con.execute(f"SELECT count(*) FROM raw.{src} WHERE _source = 'landing'").fetchall()[0][0]
                  for src in generated}
    assert read == generated  # every line of every file was read
    # ... and every one of them is in the warehouse or in quarantine.
    assert {src: in_raw[src] + quarantined.get(src, 0) for src in generated} == generated


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
    from beacon.activation.activate import delivery_pairs

    assert len(latest) == len(delivery_pairs(s.manifest_path)) > 12 and sum(n for (n,) in latest) == 0


def _run_activation():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(settings().home / "dags" / "beacon_activation.py"))
    dr = bag.get_dag("beacon_activation").test()
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances() if ti.task_id != "sync_destination"}, \
        [str(ti.state) for ti in dr.get_task_instances() if ti.task_id == "sync_destination"], str(dr.state)


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
        n_customers = con.execute("SELECT count(*) FROM marts.dim_customers").fetchall()[0][0]
        report = run_marts_checkpoint(con, docs)
        state = breaker_state(con)
        sent_before = con.execute("SELECT count(*) FROM activation.sync_log WHERE operation <> 'skip'").fetchall()[0][0]
    assert state.open and any("customer_id" in f and "marts_dim_customers" in f for f in state.failures), state
    # The checkpoint's own report says why, and it wrote Data Docs.
    d = report.to_dict()
    marts = next(x for x in d["suites"] if x["suite"] == "marts_dim_customers")
    assert d["blocking"] is True and marts["success"] is False and marts["rows"] == n_customers
    assert any("unique" in f and "customer_id" in f for f in marts["failed_critical"]), marts
    assert not any(x["failed_critical"] for x in d["suites"] if x["suite"] != "marts_dim_customers"), d
    assert Path(d["docs"]).is_file() and "marts_dim_customers" in Path(d["docs"]).read_text()
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
