"""The daily builds run the dbt unit tests when the project's code changed since they last all passed (beacon.dbt)."""

import json
import shutil
from pathlib import Path

import pytest

from beacon import dbt
from beacon.config import settings

PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the dbt project (without its target folder) and a target folder of its own."""
    copy = tmp_path / "dbt_project"
    shutil.copytree(PROJECT, copy, ignore=shutil.ignore_patterns("target", "logs"))
    monkeypatch.setenv("BEACON_DBT_PROJECT_DIR", str(copy))
    monkeypatch.setenv("BEACON_DBT_TARGET_DIR", str(tmp_path / "target"))
    return copy


def _build(group: str, statuses: dict[str, str], resource_types=(), exclude_resource_types=()) -> None:
    """Write a build's run_results.json where the Cosmos callback and keep_target_results keep it."""
    path = dbt.last_build_results(settings(), group)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "metadata": {"generated_at": "2026-12-06T00:00:00Z"},
        "args": {"which": "build", "resource_types": list(resource_types),
                 "exclude_resource_types": list(exclude_resource_types)},
        "results": [{"unique_id": u, "status": st} for u, st in statuses.items()]}))


GREEN = {"unit_test.beacon.dim_customers.survivorship": "pass", "model.beacon.dim_customers": "success",
         "test.beacon.not_null_dim_customers_customer_id.abc": "pass"}


def test_a_fresh_deployment_runs_them_and_a_green_build_of_the_same_code_lets_the_next_one_leave_them_out(project):
    assert dbt.unit_tests_due("dbt")
    _build("dbt", GREEN, resource_types=["test", "unit_test", "model", "seed"])
    assert dbt.record_unit_tests("dbt")
    assert not dbt.unit_tests_due("dbt")
    assert dbt.unit_tests_due("measurement")  # each task group keeps its own record
    assert dbt.unit_test_args("measurement") == []
    _build("measurement", GREEN)  # a plain `dbt build` (no --resource-type): every type, unit tests included
    assert dbt.record_unit_tests("measurement")
    assert dbt.unit_test_args("measurement") == ["--exclude-resource-type", "unit_test"]


@pytest.mark.parametrize("change", ["model", "new_file", "version"])
def test_a_code_change_or_an_upgrade_makes_them_due_again(project, monkeypatch, change):
    _build("dbt", GREEN, resource_types=["test", "unit_test", "model"])
    dbt.record_unit_tests("dbt")
    assert not dbt.unit_tests_due("dbt")
    if change == "model":
        sql = next((project / "models").rglob("dim_customers.sql"))
        sql.write_text(sql.read_text() + "\n-- changed\n")
    elif change == "new_file":
        (project / "macros" / "extra.sql").write_text("{% macro extra() %}1{% endmacro %}")
    else:
        import importlib.metadata as md

        real = md.version
        monkeypatch.setattr(md, "version", lambda pkg: "9.9.9" if pkg == "duckdb" else real(pkg))
    assert dbt.unit_tests_due("dbt")


def test_a_red_build_forgets_the_pass_and_a_build_without_unit_tests_proves_nothing(project):
    _build("dbt", GREEN, resource_types=["test", "unit_test", "model"])
    dbt.record_unit_tests("dbt")
    # A later build that left them out (not due) changes nothing, even when a data test fails.
    _build("dbt", {**GREEN, "test.beacon.x": "fail"}, resource_types=["test", "model"])
    assert not dbt.record_unit_tests("dbt") and not dbt.unit_tests_due("dbt")
    _build("dbt", {"model.beacon.a": "success"}, exclude_resource_types=["unit_test"])
    assert not dbt.record_unit_tests("dbt") and not dbt.unit_tests_due("dbt")
    # A build that ran them with anything not green: they run again next time.
    for bad in ("fail", "error", "skipped"):
        _build("dbt", GREEN, resource_types=["test", "unit_test", "model"])
        dbt.record_unit_tests("dbt")
        _build("dbt", {**GREEN, "unit_test.beacon.other.case": bad}, resource_types=["test", "unit_test", "model"])
        assert not dbt.record_unit_tests("dbt")
        assert dbt.unit_tests_due("dbt"), bad


def test_an_exposure_with_nothing_to_run_does_not_make_a_green_build_red(project):
    # dbt 1.11's build lists each exposure with status "no-op" (the warehouse build's ad_audiences, for one)
    _build("dbt", {**GREEN, "exposure.beacon.ad_audiences": "no-op"}, resource_types=["test", "unit_test", "model"])
    assert dbt.record_unit_tests("dbt")
    assert not dbt.unit_tests_due("dbt")


def test_the_warehouse_producer_builds_models_and_data_tests_always_and_unit_tests_when_due(project, dagbag):
    # The pre-execute hook edits the producer's own flags when the task runs: only the unit_test resource type.
    from cosmos.operators.watcher import DbtProducerWatcherOperator

    producer = next(t for t in dagbag.dags["beacon_warehouse"].tasks if isinstance(t, DbtProducerWatcherOperator))
    hook = producer._pre_execute_hook
    assert hook is not None

    def kinds(flags):
        return sorted(flags[i + 1] for i, f in enumerate(flags) if f == "--resource-type")

    rendered = list(producer.dbt_cmd_flags)
    assert kinds(rendered) == ["model", "seed", "snapshot", "test", "unit_test"]
    hook({"task": producer})  # a fresh deployment: due
    assert kinds(producer.dbt_cmd_flags) == ["model", "seed", "snapshot", "test", "unit_test"]
    _build("dbt", GREEN, resource_types=kinds(rendered))
    dbt.record_unit_tests("dbt")
    hook({"task": producer})
    assert kinds(producer.dbt_cmd_flags) == ["model", "seed", "snapshot", "test"]
    assert [f for f in producer.dbt_cmd_flags if f != "--resource-type" and f not in kinds(rendered)] == \
        [f for f in rendered if f != "--resource-type" and f not in kinds(rendered)]  # nothing else changed
    (project / "models" / "new_model.sql").write_text("select 1 as x")
    hook({"task": producer})
    assert kinds(producer.dbt_cmd_flags) == ["model", "seed", "snapshot", "test", "unit_test"]


def test_a_new_world_is_a_fresh_deployment_whose_first_builds_run_them(project, tmp_path, monkeypatch):
    # prepare_world starts a different world on a new warehouse: the unit-test records of the old one go with it
    # (the end-to-end tests share a session's target folder and each checks its own first build's unit tests).
    import beacon.generate
    from beacon.pipeline import prepare_world

    monkeypatch.setenv("BEACON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(beacon.generate, "generate", lambda cfg, out: (Path(out) / "landing" /
                                                                        cfg.day_date().isoformat()).mkdir(parents=True))
    for group in ("dbt", "measurement"):
        _build(group, GREEN)
        dbt.record_unit_tests(group)
    assert not dbt.unit_tests_due("dbt") and not dbt.unit_tests_due("measurement")
    prepare_world(settings(), people=50, seed=1)
    assert dbt.unit_tests_due("dbt") and dbt.unit_tests_due("measurement")
    for group in ("dbt", "measurement"):
        _build(group, GREEN)
        dbt.record_unit_tests(group)
    prepare_world(settings(), people=50, seed=1)  # the same world again: kept, and so are the records
    assert not dbt.unit_tests_due("dbt")
