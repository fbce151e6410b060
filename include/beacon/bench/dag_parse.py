"""DAG parse benchmark: the seconds a fresh interpreter takes to parse every DAG (median of N runs).

The target is under 2 s (Airflow's DAG processor re-parses every file often). This is a timing, so it lives
here and not in the unit tests, which check only what parsing imports (tests/dags/test_dag_integrity.py).
Builds the dbt manifest first if it is missing or stale (the DAG files read it at parse time).
"""

from __future__ import annotations

import json
import subprocess
import sys

from beacon.config import settings

CODE = """
import json, time
from airflow.dag_processing.dagbag import DagBag
t = time.perf_counter()
bag = DagBag(dag_folder={dags!r})
print(json.dumps({{"parse_seconds": time.perf_counter() - t, "errors": list(bag.import_errors),
                  "files": {{s.file: s.duration.total_seconds() for s in bag.dagbag_stats}}}}))
"""


def bench_dag_parse(repeat: int = 5) -> dict:
    """Parse the DAG folder in `repeat` fresh interpreters; median, min and max seconds, and any import errors."""
    from beacon.dbt import ensure_manifest

    ensure_manifest()
    code = CODE.format(dags=str(settings().home / "dags"))
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                       .stdout.strip().splitlines()[-1]) for _ in range(repeat)]
    seconds = sorted(r["parse_seconds"] for r in runs)
    return {"median_seconds": round(seconds[len(seconds) // 2], 3), "min_seconds": round(seconds[0], 3),
            "max_seconds": round(seconds[-1], 3), "target_seconds": 2.0,
            "errors": sorted({e for r in runs for e in r["errors"]}), "runs": runs}
