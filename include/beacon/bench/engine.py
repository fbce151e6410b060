"""`beacon bench engine --engine spark|duckdb --people N`: the daily pipeline's stages on DuckDB and on a local
Spark, the same world, the same run (issue 29, item 7; docs/scale.md).

One world is generated and ingested once (the ingest contract is one implementation: it loads DuckDB's raw schema
on both engines). Then the DuckDB stages: dbt builds the models Spark can build, then the rest (the Python
models, identity resolution and clustering, and what reads them), training (one node on both engines), and
scoring the lead score. With `--engine spark`, then the Spark stages, on `BEACON_SPARK_MASTER` (local[2]): the
session's start, the raw layer published as Parquet by load day (beacon.spark.raw), `dbt build --target spark` of
the same models and seeds (each model's status reported), the customer features (from Spark's own `customer_features` when
that built there, else DuckDB's written as Parquet: reported as DuckDB's), and scoring on Spark
(beacon.spark.score) with the champion DuckDB trained, published as Parquet. Every stage names the engine it ran
on; a stage not on Spark is reported as such, never timed as Spark's. Data and unit tests are not run (`dbt build
--resource-type model --resource-type seed`) on either engine. Per stage, CPU seconds of the process tree
(the driver, Spark's JVM, its Python workers) beside the elapsed ones; peak memory of that tree, per phase. With `repeat` > 1 each run is a fresh process and world, and each stage is reported at its median.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from beacon.bench.pipeline_days import PeakMemory
from beacon.config import override_env

ENGINES = ("duckdb", "spark")
# The models and the seeds they read; no data or unit tests (on either engine).
NO_TESTS = ["--resource-type", "model", "--resource-type", "seed"]


def tree_cpu_seconds() -> float:
    """CPU seconds of this process and its live descendants (Spark's JVM, its Python workers), with the children
    they reaped: on a shared machine the elapsed time says how busy the machine was, the CPU time what the work
    cost."""
    import psutil

    total = 0.0
    me = psutil.Process()
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:  # a worker that just ended
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


class _Run:
    """One run's stages: name, engine, seconds, rows, a note."""

    def __init__(self) -> None:
        self.stages: list[dict] = []

    def timed(self, name: str, engine: str, fn, rows=None, note: str | None = None, unit: str = "rows"):
        t0, c0 = time.perf_counter(), tree_cpu_seconds()
        out = fn()
        sec, cpu = time.perf_counter() - t0, tree_cpu_seconds() - c0
        n = rows(out) if callable(rows) else rows
        self.stages.append({"stage": name, "engine": engine, "seconds": round(sec, 3), "cpu_seconds": round(cpu, 2),
                            **({unit: int(n)} if n is not None else {}), **({"note": note} if note else {})})
        return out


def python_models(manifest: Path) -> list[str]:
    """The dbt Python models (dbt-spark runs them only on Databricks: they and what reads them are not on Spark)."""
    nodes = json.loads(manifest.read_text())["nodes"].values()
    return sorted(n["name"] for n in nodes if n["resource_type"] == "model" and n.get("language") == "python")


def _statuses(target: Path) -> dict[str, str]:
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[-1]: r["status"] for r in results}


def _dbt(args: list[str], s, what: str) -> dict[str, str]:
    from beacon import dbt

    ok = dbt.run(["build", *NO_TESTS, *args], s, quiet=True)
    statuses = _statuses(s.dbt_target_dir)
    if not ok and what == "duckdb":
        raise RuntimeError(f"dbt build {' '.join(args)} failed on DuckDB: "
                           f"{ {m: st for m, st in statuses.items() if st != 'success'} }")
    return statuses


def _duckdb_phase(run: _Run, s, spark_part: list[str], rest: list[str]) -> dict:
    """The DuckDB stages: the models Spark builds, the others, training, scoring."""
    from beacon.warehouse import connect
    from ml.score import score_customers
    from ml.train import train_lead_score

    built = run.timed("dbt: the models that run on Spark", "duckdb", lambda: _dbt(spark_part, s, "duckdb"), len,
                       unit="nodes")
    if rest:
        run.timed("dbt: the models not on Spark yet", "duckdb", lambda: _dbt(rest, s, "duckdb"), len,
                  unit="nodes")
    with connect() as con:
        trained = run.timed("train the lead score", "duckdb", lambda: train_lead_score(con, s.registry_dir),
                            lambda t: t.train_rows + t.valid_rows, "one node on both engines (issue 29)")
        scored = run.timed("score the lead score", "duckdb", lambda: score_customers(con, s.registry_dir),
                           lambda d: d["rows"], "features, scores, drift, written to ml.scores")
    return {"models": len(built), "auc": trained.auc, "scored": scored["rows"]}


def _features_for_spark(run: _Run, spark, spark_built: dict[str, str], s):
    """Spark's customer_features when that model built on Spark; else DuckDB's, written as Parquet (timed as
    DuckDB's)."""
    from beacon.warehouse import connect, sql_literal
    from ml.features import as_of, features_sql

    with connect(read_only=True) as con:
        cutoff = as_of(con)
        if spark_built.get("customer_features") == "success":
            return spark.table("marts.customer_features"), cutoff, "spark"
        out = s.data_dir / "spark" / "published" / "customer_features.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        run.timed("customer features to Parquet (not on Spark yet)", "duckdb",
                  lambda: con.execute(f"COPY ({features_sql(cutoff)}) TO {sql_literal(str(out))} "
                                      "(FORMAT parquet)").fetchall(),
                  note="customer_features reads identity resolution, which does not run on Spark yet")
    return spark.read.parquet(str(out)), cutoff, "duckdb"


def _spark_phase(run: _Run, s, spark_part: list[str]) -> dict:
    """The Spark stages on a local session: start, raw layer, dbt, features, scoring."""
    from beacon.spark.raw import publish_raw
    from beacon.spark.score import publish, score
    from beacon.spark.session import session

    spark = run.timed("start the Spark session", "spark", lambda: session(s), note=s.spark_master)
    try:
        run.timed("publish the raw layer as Parquet (by load day)", "duckdb+spark", lambda: publish_raw(spark, s),
                  lambda c: sum(c.values()), "DuckDB writes the Parquet files, Spark's catalog declares them")
        built = run.timed("dbt: the models that run on Spark", "spark", lambda: _dbt(spark_part, s, "spark"),
                          len, unit="nodes")
        features, cutoff, source = _features_for_spark(run, spark, built, s)

        def score_and_publish():
            scores, loads = score(spark, features, s.registry_dir, "lead_score", cutoff)
            path = publish(scores, s)
            return spark.read.parquet(str(path)).where("model = 'lead_score'").count(), loads.value

        rows, loads = run.timed("score the lead score", "spark", score_and_publish, lambda r: r[0],
                                "mapInPandas, published as Parquet")
        return {"models": {st: sum(v == st for v in built.values()) for st in sorted(set(built.values()))},
                "failed": sorted(m for m, st in built.items() if st != "success"), "features_from": source,
                "scored": rows, "model_loads": loads}
    finally:
        spark.stop()


def run_once(engine: str, people: int, seed: int, work: Path) -> dict:
    """One run in `work`: the shared stages, DuckDB's, and with engine spark Spark's (module docstring)."""
    from beacon import dbt
    from beacon.config import settings
    from beacon.generate import GenConfig, generate
    from beacon.ingest import load_landing

    run, out = _Run(), {}
    with override_env(BEACON_DATA_DIR=str(work), BEACON_DBT_TARGET_DIR=str(work / "duckdb_target"),
                      BEACON_ENGINE="duckdb"), PeakMemory() as peak:
        s = settings()
        g = run.timed("generate", "python", lambda: generate(GenConfig(people=people, seed=seed), work),
                      lambda g: sum(g.rows.values()))
        loaded = run.timed("ingest", "duckdb", lambda: load_landing(s.landing_dir),
                           lambda r: r.totals()["rows_read"], "the ingest contract, one implementation")
        shared_peak = peak.reset()
        pythons = python_models(dbt.ensure_manifest(s))
        spark_part = ["--exclude", *(f"{m}+" for m in pythons)] if pythons else []
        rest = ["--select", *(f"{m}+" for m in pythons), "--exclude", dbt.SCORE_BASED] if pythons else []
        out["duckdb"] = _duckdb_phase(run, s, spark_part, rest)
        memory = {"generate_and_ingest": shared_peak, "duckdb": peak.reset()}
        if engine == "spark":
            with override_env(BEACON_ENGINE="spark", BEACON_DBT_TARGET_DIR=str(work / "spark_target")):
                out["spark"] = _spark_phase(run, settings(), spark_part)
            memory["spark"] = peak.reset()
    return {"stages": run.stages, "events": g.rows["web_events"] + g.rows["email_events"],
            "rows_loaded": loaded.totals()["rows_loaded"], "not_on_spark_models": pythons, **out,
            "peak_memory_mb": {k: round(v / 2**20, 1) for k, v in memory.items()}}


def _child(engine: str, people: int, seed: int) -> dict:
    """One run in a fresh process (a fresh JVM and memory peak), its JSON read back."""
    cmd = [sys.executable, "-m", "beacon.bench.engine", engine, str(people), str(seed)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench engine run failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict]) -> dict:
    """Each stage at its median over the runs, DuckDB's and Spark's side by side."""
    stages = []
    for i, st in enumerate(runs[0]["stages"]):
        sec = median(r["stages"][i]["seconds"] for r in runs)
        cpu = [r["stages"][i]["cpu_seconds"] for r in runs if "cpu_seconds" in r["stages"][i]]
        stages.append({**st, "seconds": round(sec, 3), **({"cpu_seconds": round(median(cpu), 2)} if cpu else {})})
    side: dict[str, dict] = {}
    for st in stages:
        side.setdefault(st["stage"], {})[st["engine"]] = st["seconds"]
    peaks = {k: round(median(r["peak_memory_mb"][k] for r in runs), 1) for k in runs[0]["peak_memory_mb"]}
    return {"stages": stages, "side_by_side": [{"stage": k, **v} for k, v in side.items()],
            "peak_memory_mb": peaks}


def bench_engine(engine: str, people: int, seed: int = 42, repeat: int = 1, workdir: Path | None = None) -> dict:
    """The engine benchmark (module docstring): one run in this process, or `repeat` fresh processes."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (allowed: {', '.join(ENGINES)})")
    if repeat < 1:
        raise ValueError("--repeat must be at least 1")
    if repeat > 1 and workdir:
        raise ValueError("--repeat needs fresh work folders: leave out --workdir")
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
            "events": runs[0]["events"], **summarize(runs),
            "spark": runs[0].get("spark"), "duckdb": runs[0]["duckdb"],
            "not_on_spark_models": runs[0]["not_on_spark_models"], "runs": runs,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_average": [round(x, 1) for x in os.getloadavg()]}}


if __name__ == "__main__":  # one run for bench_engine's `repeat` (argv: engine people seed), JSON on stdout
    _engine, _people, _seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    _work = Path(tempfile.mkdtemp(prefix="beacon-bench-engine-"))
    try:
        print(json.dumps(run_once(_engine, _people, _seed, _work), default=str))
    finally:
        shutil.rmtree(_work, ignore_errors=True)
