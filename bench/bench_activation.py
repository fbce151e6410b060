"""Activation benchmark: prints JSON with the diff time of a large audience and webhook throughput under faults.

    flock /tmp/beacon-heavy.lock .venv/bin/python bench/bench_activation.py
(the same as `beacon bench activation --json`)
"""

from __future__ import annotations

import argparse
import json

from beacon.activation.bench import bench_activation

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--changed", type=float, default=0.01)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--fault-rate", type=float, default=0.2)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement; medians are reported")
    a = ap.parse_args()
    print(json.dumps(bench_activation(a.members, a.changed, a.rows, a.fault_rate, a.repeat), indent=2))
