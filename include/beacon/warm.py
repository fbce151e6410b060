"""Warm imports for the task processes of the real scheduler (`make up`, LocalExecutor).

Under the scheduler every task runs in a new process, forked from a LocalExecutor worker that the scheduler
forked when it started. That process then imports what its DAG file and its task body import: pandas,
DuckDB, LightGBM, Great Expectations, statsmodels. On this 2-core machine that is 2-9 s before each of a
chain's ~60 tasks does anything; `dag.test()` pays it once. Imported once in the scheduler, before it forks
its workers, the modules are already in every task process (copy-on-write), as in `dag.test()`.

Which modules: every module the DAG files import (at the top and inside task bodies, read from their syntax
tree, so a new task's imports are warmed without a list to keep), plus the heavy libraries those import only
inside functions. Nothing here runs a query or starts a thread: fork-safe (tests/stack/test_warm.py forks
after warming and trains LightGBM and queries DuckDB in the child).

`deploy/local_settings/airflow_local_settings.py` calls `warm()` in the scheduler of `make up` only.
"""

from __future__ import annotations

import ast
import importlib
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)

# Imported inside functions of the modules the DAG files name, so the DAG files' syntax does not show them.
HEAVY = ("numpy", "pandas", "pyarrow", "duckdb", "scipy.stats", "sklearn.metrics", "lightgbm", "statsmodels.api",
         "great_expectations", "jinja2", "cosmos.operators.watcher", "cosmos.operators.local")
# Packages whose modules are worth warming when a DAG file imports them (not the DAG files' own siblings).
PREFIXES = ("beacon", "ml", "airflow", "cosmos")


def dag_imports(dags_folder: Path) -> list[str]:
    """Every module the DAG files import, top level and inside functions, in first-seen order."""
    seen: dict[str, None] = {}
    for f in sorted(Path(dags_folder).glob("*.py")):
        try:
            tree = ast.parse(f.read_text(), str(f))
        except (OSError, SyntaxError, ValueError):
            continue  # the DAG processor reports it; warming is best effort
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for n in names:
                if n.split(".")[0] in PREFIXES:
                    seen.setdefault(n, None)
    return list(seen)


def warm(dags_folder: Path, extra: tuple[str, ...] = HEAVY) -> dict[str, float]:
    """Import `extra` and the DAG files' modules; return seconds per module. A module that fails to import
    is logged and skipped: warming must never stop the scheduler (the task that needs it will say why)."""
    took: dict[str, float] = {}
    try:  # before Cosmos' operators are imported: their OpenLineage hint is noise here (see cosmos_render)
        from beacon.cosmos_render import quiet_openlineage_hint

        quiet_openlineage_hint()
    except ImportError:
        pass
    for name in (*extra, *dag_imports(dags_folder)):
        t0 = time.perf_counter()
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any import error: log it, the task will raise it properly
            log.warning("warm import of %s failed: %s", name, exc)
            continue
        took[name] = round(time.perf_counter() - t0, 3)
    return took
