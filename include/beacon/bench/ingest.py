"""Ingest benchmark: events ingest rows/s against DuckDB's own read_json of the same files, in the same run."""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from pathlib import Path


def bench_ingest(people: int, seed: int = 42, world: Path | None = None, repeat: int = 1) -> dict:
    """Events ingest (web + email JSON lines) against DuckDB's own `read_json` of the same files, same run.

    Each repeat loads both files into a fresh warehouse with `load_file` (hash, ledger, typing, validation,
    quarantine) and reads them with `read_json` into a fresh DuckDB file with the same settings; the ratio
    is ours / DuckDB's wall-clock time per repeat, and the median is reported. `cpu_ratio` is the same for
    the process CPU time (all threads), which other jobs on a shared machine disturb less."""
    from datetime import datetime, timedelta

    from beacon.generate import GenConfig, generate
    from beacon.ingest import ensure_raw_schema, load_file, load_specs
    from beacon.warehouse import connect

    tmp = Path(tempfile.mkdtemp(prefix="beacon-bench-ingest-"))
    try:
        if world is None or not (Path(world) / "landing").exists():
            world = Path(world) if world else tmp / "world"
            generate(GenConfig(people=people, seed=seed), world)
        day = sorted(p for p in (Path(world) / "landing").iterdir() if p.is_dir())[0]
        files = {"web_events": day / "web_events.jsonl", "email_events": day / "email_events.jsonl"}
        specs = load_specs()
        max_ts = datetime.combine(datetime.fromisoformat(day.name).date(), datetime.min.time()) + timedelta(days=2)
        runs = []
        for r in range(repeat):
            for suffix in ("", ".wal"):
                for name in ("duck.duckdb", "ours.duckdb"):
                    (tmp / (name + suffix)).unlink(missing_ok=True)
            with connect(tmp / "duck.duckdb") as con:
                t0, c0 = time.perf_counter(), time.process_time()
                for name, p in files.items():
                    con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_json('{p}', format = 'newline_delimited', "
                                "ignore_errors = true)")
                duck_s, duck_cpu = time.perf_counter() - t0, time.process_time() - c0
                duck_rows = sum(con.execute(f"SELECT count(*) FROM {n}").fetchall()[0][0] for n in files)
            with connect(tmp / "ours.duckdb") as con:
                ensure_raw_schema(con, specs)
                t0, c0 = time.perf_counter(), time.process_time()
                loads = [load_file(con, specs[name], p, max_ts) for name, p in files.items()]
                ours_s, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
            read = sum(f.rows_read for f in loads)
            assert all(f.status == "loaded" and f.rows_read == f.rows_loaded + f.rows_quarantined for f in loads), loads
            runs.append({"repeat": r + 1, "rows_read": read, "rows_loaded": sum(f.rows_loaded for f in loads),
                         "rows_quarantined": sum(f.rows_quarantined for f in loads), "seconds": round(ours_s, 2),
                         "rows_per_s": round(read / ours_s), "duckdb_read_json_seconds": round(duck_s, 2),
                         "duckdb_rows": duck_rows, "duckdb_rows_per_s": round(duck_rows / duck_s),
                         "ratio": round(ours_s / duck_s, 2), "cpu_seconds": round(ours_cpu, 2),
                         "duckdb_cpu_seconds": round(duck_cpu, 2), "cpu_ratio": round(ours_cpu / duck_cpu, 2),
                         "load_average": round(os.getloadavg()[0], 2)})
        med = sorted(runs, key=lambda x: x["ratio"])[len(runs) // 2]
        return {"benchmark": "ingest", "people": people, "world": str(world),
                "files": {k: {"path": str(p), "bytes": p.stat().st_size} for k, p in files.items()},
                "runs": runs, "median_ratio": med["ratio"],
                "median_cpu_ratio": sorted(x["cpu_ratio"] for x in runs)[len(runs) // 2], "median_rows_per_s": sorted(x["rows_per_s"] for x in runs)[len(runs) // 2],
                "target_ratio": 2.0, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
