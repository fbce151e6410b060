"""DAG parse benchmark: prints JSON with the seconds a fresh interpreter takes to parse every DAG (median of N).

    flock /tmp/beacon-heavy.lock .venv/bin/python bench/bench_dag_parse.py --repeat 5

The target is under 2 s (Airflow's DAG processor re-parses every file often). This is a timing, so it lives
here and not in the unit tests, which check only what parsing imports (tests/test_dag_integrity.py).
Builds the dbt manifest first if it is missing or stale.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = f"""
import json, time
from airflow.dag_processing.dagbag import DagBag
t = time.perf_counter()
bag = DagBag(dag_folder={str(ROOT / 'dags')!r})
print(json.dumps({{"parse_seconds": time.perf_counter() - t, "errors": list(bag.import_errors),
                  "files": {{s.file: s.duration.total_seconds() for s in bag.dagbag_stats}}}}))
"""

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    from beacon.dbt import ensure_manifest

    ensure_manifest()  # the DAG files read the dbt manifest at parse time
    runs = [json.loads(subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
                       .stdout.strip().splitlines()[-1]) for _ in range(a.repeat)]
    seconds = sorted(r["parse_seconds"] for r in runs)
    print(json.dumps({"median_seconds": round(seconds[len(seconds) // 2], 3), "min_seconds": round(seconds[0], 3),
                      "max_seconds": round(seconds[-1], 3), "target_seconds": 2.0,
                      "errors": sorted({e for r in runs for e in r["errors"]}), "runs": runs}, indent=2))
