"""The daily pipeline's stages as `beacon bench engine` times them, once per engine (beacon.bench.engine).

Each pipeline runs the functions its DAGs run with `BEACON_ENGINE` set to that engine, in its own data folder,
on the same landing files:

    stage (STEPS)                                   duckdb pipeline              spark pipeline
    ingest (landing -> raw, the ingest contract)    beacon.ingest.load_landing   the same (the control plane's raw)
    start the Spark session                         -                            beacon.spark.session
    dbt build (whole project, identity, clustering) dbt, all but the score-based beacon.spark.chain.build_warehouse
                                                    and measurement models       (raw -> Parquet, seeds, the project
                                                                                 with identity and clustering as
                                                                                 tasks, the control plane's views)
    train the champions                             ml.train.train_scheduled     the same, on the node, from the
                                                                                 features Spark published (the DAG's)
    score every champion                            ml.score.score_all           beacon.spark.chain.score_all
    score-based segments                            dbt --select SCORE_BASED     beacon.spark.chain.build_score_based
    measurement marts                               dbt --select MEASUREMENT     beacon.spark.chain.build_measurement

dbt runs models and seeds without data or unit tests on both engines (the spark chain runs `dbt run`), so the two
builds do the same work. Recommendations, activation and journeys are the control plane's work, identical on both
engines (they read DuckDB or the Parquet Spark published): not timed here; so the measurement marts read an empty
sync log and empty journey logs (their staging views are empty until activation has run) on both engines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

STEPS = ("ingest (landing → raw, the ingest contract)", "start the Spark session",
         "dbt build (whole project, identity, clustering)", "train the champions", "score every champion",
         "score-based segments", "measurement marts")
INGEST, SESSION, BUILD, TRAIN, SCORE, SEGMENTS, MEASURE = STEPS
NOT_TIMED = ("recommendations, activation and journeys: the control plane's work, the same code on both engines "
             "(it reads DuckDB or Spark's Parquet), not engine work: not timed here")
# The models and the seeds they read; no data or unit tests (on either engine).
NO_TESTS = ["--resource-type", "model", "--resource-type", "seed"]
# The Python models (identity resolution and clustering): their seconds inside DuckDB's dbt build.
IDENTITY_MODELS = ("model.beacon.int_identity_events", "model.beacon.int_customers_clustered")


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


class Run:
    """One run's stages: name, pipeline (the BEACON_ENGINE it belongs to), engine it ran on, seconds, CPU seconds
    of the process tree, its peak memory (with `mem`, a PeakMemory), rows, a note."""

    def __init__(self, mem=None) -> None:
        self.stages: list[dict] = []
        self.mem = mem

    def timed(self, name: str, pipeline: str, engine: str, fn: Callable[[], Any], rows=None,
              note: str | None = None, unit: str = "rows") -> Any:
        if self.mem:
            self.mem.mark()
        t0, c0 = time.perf_counter(), tree_cpu_seconds()
        out = fn()
        sec, cpu = time.perf_counter() - t0, tree_cpu_seconds() - c0
        n = rows(out) if callable(rows) else rows
        self.stages.append({"stage": name, "pipeline": pipeline, "engine": engine, "seconds": round(sec, 3),
                            "cpu_seconds": round(cpu, 2),
                            **({"peak_memory_mb": round(self.mem.mark() / 2**20, 1)} if self.mem else {}),
                            **({unit: int(n)} if n is not None else {}), **({"note": note} if note else {})})
        return out


def dbt_build(args: list[str], s) -> dict:
    """`dbt build` of models and seeds (no tests) on DuckDB, in this process; its run results. Raises naming the
    nodes that failed."""
    from beacon import dbt

    ok = dbt.run(["build", *NO_TESTS, *args], s, quiet=True)
    results = json.loads((s.dbt_target_dir / "run_results.json").read_text())
    if not ok:
        failed = {r["unique_id"]: r["status"] for r in results["results"] if r["status"] != "success"}
        raise RuntimeError(f"dbt build {' '.join(args)} failed on DuckDB: {failed}")
    return results


def _ingest(run: Run, pipeline: str, s):
    from beacon.ingest import load_landing

    engine = "duckdb" if pipeline == "duckdb" else "duckdb (control plane)"
    return run.timed(INGEST, pipeline, engine, lambda: load_landing(s.landing_dir),
                     lambda r: r.totals()["rows_read"], "beacon.ingest.load_landing: one implementation")


def _train(run: Run, pipeline: str, engine: str, s, note: str) -> dict:
    from beacon.warehouse import connect
    from ml.train import train_scheduled

    def train():
        with connect(s.warehouse_path) as con:
            return train_scheduled(con, s.registry_dir, s.retrain_every_days)

    trained = run.timed(TRAIN, pipeline, engine, train,
                        lambda t: sum(int(m.get("train_rows") or 0) for m in t["models"].values()), note)
    return {"trained": sorted(trained["models"]), "failed": trained.get("failed") or {}}


def _score_rows(scored: dict) -> int:
    return sum(int(m["rows"]) for m in scored["models"].values())


def duckdb_pipeline(run: Run, s) -> dict:
    """The daily pipeline on DuckDB (module docstring), settings `s` pointing at its own data folder."""
    from beacon import dbt
    from beacon.warehouse import connect
    from ml.score import score_all

    loaded = _ingest(run, "duckdb", s)
    built = run.timed(BUILD, "duckdb", "duckdb",
                      lambda: dbt_build(["--exclude", dbt.SCORE_BASED, "--exclude", dbt.MEASUREMENT], s),
                      lambda r: len(r["results"]), "dbt build, models and seeds (identity and clustering are its "
                      "Python models)", unit="nodes")
    identity = sum(r["execution_time"] for r in built["results"] if r["unique_id"] in IDENTITY_MODELS)
    run.stages[-1]["identity_and_clustering_seconds"] = round(identity, 3)
    out = _train(run, "duckdb", "duckdb", s, "ml.train.train_scheduled: every model is due on a new world")

    def score():
        with connect(s.warehouse_path) as con:
            return score_all(con, s.registry_dir)

    scored = run.timed(SCORE, "duckdb", "duckdb", score, _score_rows, "ml.score.score_all: scores, drift, fairness")
    run.timed(SEGMENTS, "duckdb", "duckdb", lambda: dbt_build(["--select", dbt.SCORE_BASED], s),
              lambda r: len(r["results"]), unit="nodes")
    run.timed(MEASURE, "duckdb", "duckdb", lambda: dbt_build(["--select", dbt.MEASUREMENT], s),
              lambda r: len(r["results"]), "no activation ran: the exposure inputs are empty", unit="nodes")
    return {"rows_loaded": loaded.totals()["rows_loaded"], "nodes": len(built["results"]), **out,
            "scored": {m: v["rows"] for m, v in scored["models"].items()}}


def spark_pipeline(run: Run, s) -> dict:
    """The daily pipeline on Spark (module docstring), settings `s` pointing at its own data folder and dbt target
    (BEACON_ENGINE=spark); the session is stopped at the end."""
    from beacon.dbt import MEASUREMENT, SCORE_BASED
    from beacon.spark import chain
    from beacon.spark.session import session

    loaded = _ingest(run, "spark", s)
    spark = run.timed(SESSION, "spark", "spark", lambda: session(s),
                      note=f"{s.spark_master}, driver memory {s.spark_driver_memory}")
    try:
        built = run.timed(BUILD, "spark", "spark", lambda: chain.build_warehouse((SCORE_BASED, MEASUREMENT), s),
                          lambda b: b["models"], "beacon.spark.chain.build_warehouse: raw layer to Parquet, seeds, "
                          "dbt run with identity and clustering as tasks on the driver, the control plane's views",
                          unit="models")
        out = _train(run, "spark", "node (Spark's Parquet)", s,
                     "ml.train.train_scheduled on the control plane, reading the features Spark published, as "
                     "the ML DAG does with BEACON_ENGINE=spark")
        scored = run.timed(SCORE, "spark", "spark", lambda: chain.score_all(s.registry_dir, s), _score_rows,
                           "beacon.spark.chain.score_all: mapInPandas, published as Parquet; drift and fairness "
                           "on the node")
        run.timed(SEGMENTS, "spark", "spark", lambda: chain.build_score_based(s),
                  note="beacon.spark.chain.build_score_based (then the control plane's views)")
        run.timed(MEASURE, "spark", "spark", lambda: chain.build_measurement(s),
                  note="beacon.spark.chain.build_measurement; no activation ran: the exposure inputs are empty")
    finally:
        spark.stop()
    return {"rows_loaded": loaded.totals()["rows_loaded"], "models": built["models"],
            "raw_tables": built["raw_tables"], **out, "scored": {m: v["rows"] for m, v in scored["models"].items()}}
