"""Pipeline benchmark: prints JSON with per-stage wall seconds and rows/s.

    .venv/bin/python bench/bench_pipeline.py --people 20000
(the same as `beacon bench pipeline --people 20000 --json`)
"""

from __future__ import annotations

import argparse
import json

from beacon.bench import bench_pipeline

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeat", type=int, default=1, help="runs; the JSON lists each and the median per stage")
    a = ap.parse_args()
    runs = [bench_pipeline(a.people, a.seed) for _ in range(a.repeat)]
    stages = [st["stage"] for st in runs[0]["stages"]]
    median = {s: sorted(r["stages"][i]["seconds"] for r in runs)[len(runs) // 2] for i, s in enumerate(stages)}
    print(json.dumps({"runs": runs, "median_seconds": median}, indent=2))
