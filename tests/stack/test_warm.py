"""beacon.warm: which modules the scheduler of `make up` imports for its task processes, and that a task
process forked after warming still trains LightGBM, queries DuckDB and multiplies matrices (fork safety)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from beacon.config import settings
from beacon.warm import dag_imports, warm

LOCAL_SETTINGS = settings().home / "deploy" / "local_settings"


def test_the_dag_files_task_body_imports_are_found():
    mods = dag_imports(settings().home / "dags")
    # Imported inside task bodies only: invisible to a plain import of the DAG file.
    for m in ("ml.train", "ml.score", "beacon.quality.checkpoint", "beacon.activation.activate", "beacon.measure.report"):
        assert m in mods
    assert all(m.split(".")[0] in ("beacon", "ml", "airflow", "cosmos") for m in mods)


def test_nested_imports_of_any_dag_file_and_bad_files_are_handled(tmp_path):
    (tmp_path / "a.py").write_text(textwrap.dedent("""
        import json
        from beacon.config import settings
        def dag():
            def task():
                import ml.score, pandas
                from beacon.warehouse import connect as c
                from . import sibling
    """))
    (tmp_path / "broken.py").write_text("def (:\n")
    assert dag_imports(tmp_path) == ["beacon.config", "ml.score", "beacon.warehouse"]


def test_a_module_that_cannot_be_imported_is_skipped_not_raised(tmp_path, caplog):
    took = warm(tmp_path, extra=("json", "beacon_no_such_module"))
    assert "json" in took and "beacon_no_such_module" not in took
    assert "warm import of beacon_no_such_module failed" in caplog.text


def _run(code: str, argv1: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(LOCAL_SETTINGS), os.environ.get("PYTHONPATH", "")]),
           "AIRFLOW__CORE__DAGS_FOLDER": str(settings().home / "dags")}
    # From a file, as Airflow's components run (console scripts): under `python -c` the main module has no file,
    # and pyspark (which great_expectations imports when it is installed) takes that for its doctests and exits.
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "component.py"
        script.write_text(code)
        return subprocess.run([sys.executable, str(script), argv1], env=env, capture_output=True, text=True,
                              timeout=600)


FORK_CHILD = """
import os, sys, time
import airflow_local_settings  # warms only when argv[1] is 'scheduler'
print("pandas" in sys.modules, "lightgbm" in sys.modules, "great_expectations" in sys.modules)
pid = os.fork()
if pid == 0:  # a task process: forked after warming, as the LocalExecutor does
    import duckdb
    import lightgbm as lgb
    import numpy as np
    X = np.random.default_rng(1).random((5000, 8)); y = (X[:, 0] > 0.5).astype(int)
    p = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, y).predict_proba(X[:200])[:, 1]
    assert ((p > 0.5) == (X[:200, 0] > 0.5)).mean() > 0.9
    assert duckdb.connect().execute("SELECT sum(range) FROM range(1000000)").fetchone()[0] == 499999500000
    assert (X @ X.T).shape == (5000, 5000)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
"""


def test_the_scheduler_warms_and_a_forked_task_process_still_works():
    res = _run(FORK_CHILD, "scheduler")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split()[-5:] == ["True", "True", "True", "child", "0"], res.stdout + res.stderr[-2000:]
    assert "beacon: warmed" in res.stderr


def test_other_components_import_nothing_extra():
    res = _run("import sys, airflow_local_settings; print('pandas' in sys.modules)", "api-server")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "False" and "warmed" not in res.stderr


def test_beacon_warm_imports_0_turns_warming_off_in_the_scheduler(monkeypatch):
    monkeypatch.setenv("BEACON_WARM_IMPORTS", "0")
    res = _run("import sys, airflow_local_settings; print('pandas' in sys.modules)", "scheduler")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "False" and "warmed" not in res.stderr


def test_make_up_puts_the_local_settings_on_the_path():
    from beacon.stack.env import component_env

    assert str(LOCAL_SETTINGS) in component_env(settings())["PYTHONPATH"].split(os.pathsep)
    assert (Path(LOCAL_SETTINGS) / "airflow_local_settings.py").exists()
