"""`beacon bench engine --engine spark|duckdb --people N`: the pipeline's stages on DuckDB and on Spark, same run."""

from __future__ import annotations

import argparse
from pathlib import Path

from beacon.cli.render import console, emit, kv_table, table


def cmd_engine(args) -> int:
    from beacon.bench.engine import bench_engine

    d = bench_engine(args.engine, people=args.people, seed=args.seed, repeat=args.repeat,
                     workdir=Path(args.workdir) if args.workdir else None)

    def render(d):
        cols = ("stage", "duckdb s", "spark s", "other s")
        t = table(f"Engine benchmark, {d['people']:,} people ({d['engine']}; median of {d['repeat']})", cols,
                  right=cols[1:])
        for row in d["side_by_side"]:
            other = ", ".join(f"{v:.2f} ({k})" for k, v in row.items() if k not in ("stage", "duckdb", "spark"))
            t.add_row(row["stage"], *(f"{row[k]:.2f}" if k in row else "-" for k in ("duckdb", "spark")), other)
        console.print(t)
        console.print(kv_table("Peak memory (MB, process tree)", d["peak_memory_mb"]))
        if d.get("spark"):
            console.print(kv_table("On Spark", {k: v for k, v in d["spark"].items()}))
    emit(d, args.json, render)
    return 0


def engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=("duckdb", "spark"), default="spark",
                   help="spark: DuckDB's stages and then Spark's on the same world; duckdb: DuckDB's alone")
    p.add_argument("--people", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--repeat", type=int, default=1,
                   help="runs, each a fresh process and world; each stage is reported at its median")
    p.add_argument("--workdir", default=None, help="where to write the world (default: a temporary folder)")
