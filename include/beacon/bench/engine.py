"""`beacon bench engine --engine spark|duckdb --people N`: the daily pipeline on DuckDB and on a local Spark, the
same world, the same run (issue 29, item 7; docs/scale.md, "Scale: measured").

One world is generated once; each engine's pipeline then runs in a data folder of its own, from the same landing
files, with the functions its DAGs run under `BEACON_ENGINE` (beacon.bench.engine_stages: ingest, the whole dbt
project with identity resolution and clustering, training, scoring every champion, the score-based segments, the
measurement marts); with `--engine spark` Spark's after DuckDB's, on `BEACON_SPARK_MASTER` (local[2]). Every stage
names the pipeline it belongs to and the engine it ran on; per stage the seconds, the CPU seconds of the process
tree (the driver, Spark's JVM, its Python workers), its peak memory and rows where known; peak memory per phase.
`side_by_side` pairs each stage of the two pipelines and gives each pipeline's total. With `repeat` > 1 each run is
a fresh process and world, and each stage is reported at its median.

Memory: the bench sets the Spark JVM's heap (BEACON_SPARK_DRIVER_MEMORY; spark_driver_memory) from the world's size
unless told, and caps DuckDB (BEACON_DUCKDB_MEMORY_LIMIT, default 4GB here) for both pipelines.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

from beacon.bench.engine_stages import NOT_TIMED, STEPS, Run, duckdb_pipeline, spark_pipeline
from beacon.bench.engine_stages import tree_cpu_seconds as tree_cpu_seconds  # the bench's CPU clock
from beacon.bench.pipeline_days import PeakMemory
from beacon.config import override_env

ENGINES = ("duckdb", "spark")
DUCKDB_MEMORY_LIMIT = "4GB"  # the bench's DuckDB cap (both pipelines' DuckDB), unless told


def spark_driver_memory(people: int) -> str:
    """The local Spark JVM's heap for a world of `people`: 1 GB plus 5 GB a million people, between 2 and 8 GB
    (docs/scale.md, "Scale: measured": what the 2k and 20k runs used, extrapolated)."""
    return f"{min(8, max(2, math.ceil(1 + 5 * people / 1_000_000)))}g"


def _pipeline_env(work: Path, engine: str) -> dict[str, str]:
    """The environment of one engine's pipeline: its own data folder, warehouse, registry and dbt target; the
    world's landing files and truth."""
    data, world = work / engine, work / "world"
    return {"BEACON_ENGINE": engine, "BEACON_DATA_DIR": str(data), "BEACON_WAREHOUSE": str(data / "warehouse" /
            "beacon.duckdb"), "BEACON_REGISTRY_DIR": str(data / "registry"), "BEACON_EXPORTS_DIR":
            str(data / "exports"), "BEACON_DBT_TARGET_DIR": str(data / "target"),
            "BEACON_LANDING_DIR": str(world / "landing"), "BEACON_TRUTH_DIR": str(world / "truth")}


def _warm_imports() -> None:
    """The libraries both pipelines load (dbt, LightGBM through ml), imported before the first timed stage: the
    pipeline that runs first would otherwise carry the process's first imports."""
    import dbt.cli.main  # noqa: F401

    import ml.score  # noqa: F401
    import ml.train  # noqa: F401


def run_once(engine: str, people: int, seed: int, work: Path) -> dict:
    """One run in `work`: the world, DuckDB's pipeline, and with engine spark Spark's (module docstring)."""
    from beacon.config import settings
    from beacon.generate import GenConfig, generate

    out: dict = {}
    with PeakMemory() as peak:
        run = Run(peak)
        g = run.timed("generate", "shared", "python", lambda: generate(GenConfig(people=people, seed=seed),
                                                                        work / "world"),
                      lambda g: sum(g.rows.values()))
        memory = {"generate": peak.reset()}
        _warm_imports()
        for name, pipeline in (("duckdb", duckdb_pipeline), ("spark", spark_pipeline)):
            if name == "spark" and engine != "spark":
                break
            with override_env(**_pipeline_env(work, name)):
                out[name] = pipeline(run, settings())
            memory[name] = peak.reset()
    return {"stages": run.stages, "events": g.rows["web_events"] + g.rows["email_events"], **out,
            "peak_memory_mb": {k: round(v / 2**20, 1) for k, v in memory.items()}}


def summarize(runs: list[dict]) -> dict:
    """Each stage at its median over the runs (seconds, CPU seconds, peak memory); the two pipelines' stages paired
    by name (STEPS order) with the engine each ran on; each pipeline's total (the sum of its stages' medians)."""
    stages = []
    for i, st in enumerate(runs[0]["stages"]):
        med = {k: round(median(r["stages"][i][k] for r in runs), 3 if k == "seconds" else 2)
               for k in ("seconds", "cpu_seconds", "peak_memory_mb") if all(k in r["stages"][i] for r in runs)}
        stages.append({**st, **med})
    pipelines = [p for p in ENGINES if any(st.get("pipeline") == p for st in stages)]
    order = [*STEPS, *dict.fromkeys(st["stage"] for st in stages if st["stage"] not in STEPS)]
    side = []
    for name in order:
        mine = {st["pipeline"]: st for st in stages if st["stage"] == name and st.get("pipeline") in pipelines}
        if not mine:
            continue
        row: dict = {"stage": name}
        for p, st in mine.items():
            row[p] = st["seconds"]
            row[f"{p}_cpu_seconds"] = st.get("cpu_seconds")
        row["ran_on"] = {p: st["engine"] for p, st in mine.items()}
        side.append(row)
    total = {p: {k: round(sum(st.get(k) or 0.0 for st in stages if st.get("pipeline") == p), 2)
                 for k in ("seconds", "cpu_seconds")} for p in pipelines}
    peaks = {k: round(median(r["peak_memory_mb"][k] for r in runs), 1) for k in runs[0]["peak_memory_mb"]}
    return {"stages": stages, "side_by_side": side, "total": total, "peak_memory_mb": peaks}


def _child(engine: str, people: int, seed: int) -> dict:
    """One run in a fresh process (a fresh JVM and memory peak), its JSON read back."""
    cmd = [sys.executable, "-m", "beacon.bench.engine", engine, str(people), str(seed)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench engine run failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_engine(engine: str, people: int, seed: int = 42, repeat: int = 1, workdir: Path | None = None,
                 driver_memory: str | None = None, duckdb_memory_limit: str | None = None) -> dict:
    """The engine benchmark (module docstring): one run in this process, or `repeat` fresh processes.
    `driver_memory`: the Spark JVM's heap (default: spark_driver_memory(people)); `duckdb_memory_limit`: DuckDB's
    cap (default DUCKDB_MEMORY_LIMIT); both set for the run (and its child processes) through the environment."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (allowed: {', '.join(ENGINES)})")
    if repeat < 1:
        raise ValueError("--repeat must be at least 1")
    if repeat > 1 and workdir:
        raise ValueError("--repeat needs fresh work folders: leave out --workdir")
    memory = {"BEACON_SPARK_DRIVER_MEMORY": driver_memory or spark_driver_memory(people),
              "BEACON_DUCKDB_MEMORY_LIMIT": duckdb_memory_limit or DUCKDB_MEMORY_LIMIT}
    with override_env(**memory):
        if repeat == 1:
            work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="beacon-bench-engine-"))
            try:
                runs = [run_once(engine, people, seed, work)]
            finally:
                if not workdir:
                    shutil.rmtree(work, ignore_errors=True)
        else:
            runs = [_child(engine, people, seed) for _ in range(repeat)]
    return {"benchmark": "engine", "engine": engine, "people": people, "seed": seed, "repeat": repeat,
            "events": runs[0]["events"], **summarize(runs), "not_timed": NOT_TIMED,
            **{p: runs[0][p] for p in ENGINES if p in runs[0]}, "runs": runs,
            "memory_settings": {"spark_driver_memory": memory["BEACON_SPARK_DRIVER_MEMORY"],
                                "duckdb_memory_limit": memory["BEACON_DUCKDB_MEMORY_LIMIT"]},
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_average": [round(x, 1) for x in os.getloadavg()]}}


if __name__ == "__main__":  # one run for bench_engine's `repeat` (argv: engine people seed), JSON on stdout
    _engine, _people, _seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    _work = Path(tempfile.mkdtemp(prefix="beacon-bench-engine-"))
    try:
        print(json.dumps(run_once(_engine, _people, _seed, _work), default=str))
    finally:
        shutil.rmtree(_work, ignore_errors=True)
