"""`beacon bench engine --engine spark|duckdb --people N`: the daily pipeline on DuckDB and on Spark, same run."""

from __future__ import annotations

import argparse
from pathlib import Path

from beacon.cli.render import console, emit, kv_table, table


def cmd_engine(args) -> int:
    from beacon.bench.engine import bench_engine

    d = bench_engine(args.engine, people=args.people, seed=args.seed, repeat=args.repeat,
                     workdir=Path(args.workdir) if args.workdir else None, driver_memory=args.spark_driver_memory,
                     duckdb_memory_limit=args.duckdb_memory_limit)

    def cell(row: dict, p: str) -> str:
        if p not in row:
            return "-"
        cpu = row.get(f"{p}_cpu_seconds")
        return f"{row[p]:.1f} ({cpu:.1f} CPU; {row['ran_on'][p]})" if cpu is not None else f"{row[p]:.1f}"

    def render(d):
        cols = ("stage", "duckdb pipeline s", "spark pipeline s")
        t = table(f"Engine benchmark, {d['people']:,} people ({d['engine']}; median of {d['repeat']})", cols,
                  right=cols[1:])
        for row in d["side_by_side"]:
            t.add_row(row["stage"], cell(row, "duckdb"), cell(row, "spark"))
        total = d["total"]
        t.add_row("total", *(f"{total[p]['seconds']:.1f} ({total[p]['cpu_seconds']:.1f} CPU)" if p in total else "-"
                             for p in ("duckdb", "spark")))
        console.print(t)
        console.print(kv_table("Peak memory (MB, process tree)", d["peak_memory_mb"]))
        console.print(kv_table("Memory settings", d["memory_settings"]))
        console.print(f"Not timed: {d['not_timed']}")
    emit(d, args.json, render)
    return 0


def engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=("duckdb", "spark"), default="spark",
                   help="spark: DuckDB's pipeline and then Spark's on the same world; duckdb: DuckDB's alone")
    p.add_argument("--people", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--repeat", type=int, default=1,
                   help="runs, each a fresh process and world; each stage is reported at its median")
    p.add_argument("--workdir", default=None, help="where to write the world (default: a temporary folder)")
    p.add_argument("--spark-driver-memory", default=None,
                   help="the Spark JVM's heap, e.g. 7g (default: 1 GB + 5 GB a million people, 2g to 8g)")
    p.add_argument("--duckdb-memory-limit", default=None, help="DuckDB's memory cap for the bench (default 4GB)")
