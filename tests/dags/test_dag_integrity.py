"""DAG integrity: the house rules of docs/conventions.md, checked on every DAG file."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
DAG_IDS = {"beacon_realtime", "beacon_ingest", "beacon_warehouse", "beacon_ml", "beacon_activation", "beacon_journeys",
           "beacon_privacy"}
HEAVY = ("pandas", "lightgbm", "duckdb", "sklearn", "great_expectations", "dbt", "splink", "numpy")


def test_all_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == DAG_IDS


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_dag_house_rules(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "beacon" in dag.tags
    assert dag.catchup is False
    assert dag.start_date is not None and dag.start_date.tzinfo is not None
    assert dag.doc_md and len(dag.doc_md) > 40
    for t in dag.tasks:
        assert t.owner == "beacon-data-eng", t.task_id
        assert t.retries >= 2, t.task_id
    # TaskFlow task ids are verb_object (Cosmos' dbt.* tasks are named by model).
    for t in dag.tasks:
        if not t.task_id.startswith("dbt."):
            assert "_" in t.task_id and t.task_id.islower(), t.task_id


def test_dag_files_are_thin_no_heavy_imports_at_module_level():
    for path in DAG_FILES:
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only; imports inside tasks are the rule
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for n in names:
                assert n.split(".")[0] not in HEAVY, f"{path.name} imports {n} at module level"


def test_parsing_all_dags_loads_no_heavy_module(manifest):
    # A fresh interpreter, as the DAG processor would have: which modules did parsing pull in?
    # (How long parsing takes is a timing, measured by `beacon bench dag-parse`, not asserted here.)
    code = f"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(ROOT / 'dags')!r})
print(json.dumps({{"dags": sorted(bag.dag_ids), "errors": list(bag.import_errors),
                  "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    # Nothing a user cannot act on: Cosmos' hint to install OpenLineage (deliberately absent) is filtered.
    assert "apache-airflow-providers-openlineage" not in out.stdout + out.stderr
    assert res["errors"] == [] and set(res["dags"]) == DAG_IDS, res
    assert res["heavy"] == [], f"parsing the DAGs imported {res['heavy']}"


def test_assets_chain_the_dags(dagbag):
    # ingest -> warehouse -> ml -> activation, each scheduled on the previous one's Asset.
    produced = {}
    for dag_id in dagbag.dag_ids:
        for t in dagbag.dags[dag_id].tasks:
            for o in getattr(t, "outlets", []) or []:
                if hasattr(o, "uri"):  # an AssetAlias names the Assets it emits only at run time
                    produced[o.uri] = dag_id
    chain = {"beacon_warehouse": "beacon_ingest", "beacon_ml": "beacon_warehouse", "beacon_activation": "beacon_ml"}
    for consumer, producer in chain.items():
        dag = dagbag.dags[consumer]
        condition = getattr(dag.timetable, "asset_condition", None)
        uris = [a.uri for a in getattr(condition, "objects", [])]
        assert uris, f"{consumer} is not scheduled on an Asset"
        assert all(produced.get(u) == producer for u in uris), (consumer, uris, produced)


def test_malformed_audience_contract_is_a_parse_error_naming_file_and_field(manifest, tmp_path):
    # A copy of the real manifest where one segment's holdout is out of range.
    doc = json.loads(Path(manifest).read_text())
    node = next(n for n in doc["nodes"].values() if n.get("name") == "win_back_lapsed" and n["resource_type"] == "model")
    node["config"]["meta"]["audience"]["holdout_pct"] = 140
    target = tmp_path / "target"
    target.mkdir()
    (target / "manifest.json").write_text(json.dumps(doc))
    code = f"""
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(ROOT / 'dags' / 'beacon_activation.py')!r})
print(json.dumps(list(bag.import_errors.values())))
"""
    import os

    env = {**os.environ, "BEACON_DBT_TARGET_DIR": str(target)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    errors = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(errors) == 1
    assert "models/segments/win_back_lapsed.sql" in errors[0] and "holdout_pct" in errors[0]


def _node_finished(uid: str, status: str = "success") -> str:
    """A dbt NodeFinished event as `dbt --log-format json` prints it (the fields Cosmos reads)."""
    return json.dumps({"info": {"name": "NodeFinished", "level": "debug", "msg": f"finished {uid}",
                                "ts": "2026-11-24T05:00:00.000000Z"},
                       "data": {"node_info": {"unique_id": uid, "node_status": status, "resource_type": uid.split(".")[0],
                                              "node_started_at": "2026-11-24T04:59:59", "node_finished_at": "2026-11-24T05:00:00"},
                                "run_result": {"status": status, "message": "OK"}}})


def test_warehouse_producer_reports_only_nodes_that_have_a_task(dagbag):
    from cosmos.operators.watcher import DbtProducerWatcherOperator

    dag = dagbag.dags["beacon_warehouse"]
    producer = next(t for t in dag.tasks if isinstance(t, DbtProducerWatcherOperator))
    sensed = {t.model_unique_id for t in dag.tasks if getattr(t, "model_unique_id", None)}
    assert "model.beacon.dim_customers" in sensed and "model.beacon.stg_crm__contacts" not in sensed

    class FakeTI:  # records what the producer would push to Airflow
        def __init__(self):
            self.pushed: dict[str, object] = {}

        def xcom_push(self, key, value):
            self.pushed[key] = value

    ti = FakeTI()
    parse = producer._make_parse_callable()
    extra = {"context": {"ti": ti}}
    for uid in ("model.beacon.stg_crm__contacts", "test.beacon.not_null_dim_customers_customer_id.abc",
                "unit_test.beacon.dim_customers.survivorship", "model.beacon.dim_customers"):
        parse(_node_finished(uid), extra)
    parse(_node_finished("model.beacon.cart_abandoners", "error"), extra)

    statuses = {k: v for k, v in ti.pushed.items() if k.endswith("_status")}
    assert statuses == {"model__beacon__dim_customers_status": {"status": "success", "outlet_uris": []},
                        "model__beacon__cart_abandoners_status": {"status": "error", "outlet_uris": []}}
    assert not any("stg_crm" in k or "not_null" in k or "survivorship" in k for k in ti.pushed)


def test_score_based_segments_build_after_scoring_in_the_ml_dag_only(dagbag):
    # The warehouse build leaves out what reads ml.scores; the ML DAG builds exactly that, after scoring and
    # before it emits beacon_scores, as a visible task group (no dbt call hidden inside a Python task).
    wh, ml = dagbag.dags["beacon_warehouse"], dagbag.dags["beacon_ml"]
    sensed = {d: {t.model_unique_id for t in dag.tasks if getattr(t, "model_unique_id", None)} for d, dag in
              (("wh", wh), ("ml", ml))}
    assert sensed["ml"] == {"model.beacon.hot_b2b_leads", "model.beacon.high_value_churn_risk"}
    assert not sensed["ml"] & sensed["wh"] and "model.beacon.rfm_champions" in sensed["wh"]
    producer = ml.get_task("dbt_scored.dbt_producer_watcher")
    assert "score_customers" in producer.upstream_task_ids
    assert ml.get_task("dbt_scored.hot_b2b_leads_run").task_id in ml.get_task("publish_scores").upstream_task_ids
    assert "source:ml.scores+" in wh.get_task("dbt.dbt_producer_watcher").exclude


def test_an_untested_cosmos_version_fails_loudly_naming_the_module():
    import cosmos

    from beacon.cosmos_render import UnsupportedCosmosVersion, check_cosmos_version

    assert check_cosmos_version() == cosmos.__version__
    with pytest.raises(UnsupportedCosmosVersion, match=r"2\.0\.1.*include/beacon/cosmos_render\.py.*TESTED_COSMOS"):
        check_cosmos_version("2.0.1")


# Tasks that never open the warehouse, with why; every other task counts as a writer (DuckDB connections are
# read-write inside a process, see beacon.warehouse.connect), so a new task is in the pool unless listed here.
NOT_WAREHOUSE_TASKS = {
    ("beacon_activation", "discover_deliveries"): "reads the dbt manifest only",
    ("beacon_journeys", "list_journeys"): "reads the journey files only",
}


def _is_cosmos_sensor(task) -> bool:
    """Cosmos watcher consumers poke the producer's XCom; the producer's `dbt build` is the writer."""
    from cosmos.operators.watcher import DbtProducerWatcherOperator

    return task.task_id.startswith("dbt.") and not isinstance(task, DbtProducerWatcherOperator)


def test_every_warehouse_writing_task_takes_the_duckdb_writer_pool(dagbag, airflow_home):
    # DuckDB allows one writer: every task that opens the warehouse must hold a slot of the one-slot pool.
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    writers = {(d.dag_id, t.task_id): t for d in dagbag.dags.values() for t in d.tasks
               if (d.dag_id, t.task_id) not in NOT_WAREHOUSE_TASKS and not _is_cosmos_sensor(t)}
    assert set(NOT_WAREHOUSE_TASKS) <= {(d.dag_id, t.task_id) for d in dagbag.dags.values() for t in d.tasks}
    assert DAG_IDS == {k[0] for k in writers}
    assert any(k[0] == "beacon_warehouse" and k[1].startswith("dbt.") for k in writers)  # the dbt build itself
    wrong = {k: t.pool for k, t in writers.items() if t.pool != "duckdb_writer" or t.pool_slots != 1}
    assert wrong == {}, f"warehouse-writing tasks outside the duckdb_writer pool: {wrong}"
    with create_session() as session:
        pool = session.query(Pool).filter(Pool.pool == "duckdb_writer").one()
    assert pool.slots == 1


def test_journeys_dag_runs_on_a_timer_and_after_activation_with_one_mapped_task_per_journey(dagbag):
    dag = dagbag.dags["beacon_journeys"]
    tt = dag.timetable
    assert type(tt).__name__ == "AssetOrTimeSchedule"
    assert type(tt.asset_condition).__name__ == "AssetAny"  # either asset, or the timer
    assert {a.uri for a in tt.asset_condition.objects} == {"beacon://exports/audiences", "beacon://events/realtime"}
    assert "*/15 * * * *" in repr(tt) and "timezone='UTC'" in repr(tt)
    adv = dag.get_task("advance_journey")
    assert adv.pool == "duckdb_writer" and adv.max_active_tis_per_dag is None
    assert [o.uri for o in adv.outlets] == ["beacon://journeys/transitions"]
    assert dag.get_task("list_journeys").downstream_task_ids == {"advance_journey"}


def test_an_invalid_journey_file_is_a_parse_error_naming_file_journey_and_node(tmp_path):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(ROOT / "journeys", home / "journeys")
    (home / "dbt_project").symlink_to(ROOT / "dbt_project")
    bad = (home / "journeys" / "birthday.yml").read_text().replace("type: send", "type: sned")
    (home / "journeys" / "birthday.yml").write_text(bad)
    code = f"""
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(ROOT / 'dags' / 'beacon_journeys.py')!r})
print(json.dumps(list(bag.import_errors.values())))
"""
    import os

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "BEACON_HOME": str(home)})
    errors = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(errors) == 1 and "birthday.yml: journey birthday: node greeting" in errors[0]
    assert "unknown node type 'sned'" in errors[0]
