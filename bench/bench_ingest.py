"""Ingest benchmark: prints JSON with events rows/s and the ratio to DuckDB's own read_json of the same files.

    flock /tmp/beacon-heavy.lock .venv/bin/python bench/bench_ingest.py --people 1000000 --world /tmp/beacon-1m-world
(the same as `beacon bench ingest --people 1000000 --world /tmp/beacon-1m-world --json`)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from beacon.ingest.bench import bench_ingest

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--world", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(json.dumps(bench_ingest(a.people, a.seed, Path(a.world) if a.world else None, a.repeat), indent=2))
