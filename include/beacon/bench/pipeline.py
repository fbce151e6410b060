"""Pipeline benchmark: each stage's own function, timed on a fresh world in a work folder.

Stages run outside Airflow so the figures measure the work; `beacon demo` reports the same stages
through `dag.test()` for the orchestration overhead.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from beacon.config import override_env
from beacon.progress import Progress


def _stage(stages: list, name: str, t0: float, rows: int) -> None:
    sec = time.perf_counter() - t0
    stages.append({"stage": name, "seconds": round(sec, 3), "rows": int(rows),
                   "rows_per_s": round(rows / sec, 1) if sec > 0 else None})


def bench_pipeline(people: int, seed: int = 42, workdir: Path | None = None, keep: bool = False,
                   progress: bool | None = None) -> dict:
    """Generate -> ingest -> dbt build -> train -> score -> export, each timed.

    `progress`: stage names and durations on stderr (None: only when stderr is a terminal; False for --json)."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="beacon-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    with override_env(BEACON_DATA_DIR=str(work), BEACON_DBT_TARGET_DIR=str(work / "dbt_target")), \
            Progress(enabled=progress, title=f"bench pipeline ({people:,} people)") as shown:
        try:
            return _run_stages(people, seed, work, shown)
        finally:
            if not keep and not workdir:
                shutil.rmtree(work, ignore_errors=True)


def _run_stages(people: int, seed: int, work: Path, shown: Progress) -> dict:
    """The timed stages, with settings already pointing at `work`."""
    from beacon import dbt
    from beacon.activation.export import export_audience
    from beacon.audiences import discover
    from beacon.config import settings
    from beacon.generate import GenConfig, generate
    from beacon.ingest import load_landing
    from beacon.warehouse import clock, connect
    from ml.score import score_customers
    from ml.train import train_lead_score

    s = settings()
    stages: list[dict] = []
    shown.stage("generate")
    t0 = time.perf_counter()
    g = generate(GenConfig(people=people, seed=seed), work)
    _stage(stages, "generate", t0, sum(g.rows.values()))

    shown.stage("ingest")
    t0 = time.perf_counter()
    load = load_landing(s.landing_dir)
    _stage(stages, "ingest", t0, load.totals()["rows_read"])

    shown.stage("dbt build (marts)")
    t0 = time.perf_counter()
    # As the DAGs do: the marts (and the segments that do not read scores) first, the score-based segments
    # after scoring.
    if not dbt.run(["build", "--exclude", dbt.SCORE_BASED], s, quiet=True):
        raise RuntimeError("dbt build failed")
    _stage(stages, "dbt_build", t0, load.totals()["rows_loaded"])

    with connect() as con:
        shown.stage("train the lead score")
        t0 = time.perf_counter()
        trained = train_lead_score(con, s.registry_dir)
        _stage(stages, "ml_train", t0, trained.train_rows + trained.valid_rows)

        shown.stage("score")
        t0 = time.perf_counter()
        scored = score_customers(con, s.registry_dir)
        _stage(stages, "ml_score", t0, scored["rows"])

    shown.stage("dbt build (score-based segments)")
    t0 = time.perf_counter()
    if not dbt.run(["build", "--select", dbt.SCORE_BASED], s, quiet=True):
        raise RuntimeError("dbt build of the score-based segments failed")
    _stage(stages, "dbt_build_scored", t0, scored["rows"])

    with connect() as con:
        shown.stage("export the audiences")
        t0 = time.perf_counter()
        day = clock(con).date().isoformat()
        members = 0
        audiences = discover(s.manifest_path)
        for a in audiences:
            members += export_audience(con, a, str(s.exports_dir), day, audiences=audiences).source_rows
        _stage(stages, "activation_export", t0, members)
    total = sum(st["seconds"] for st in stages)
    return {
        "benchmark": "pipeline", "people": people, "seed": seed, "events": g.rows["web_events"] + g.rows["email_events"],
        "stages": stages, "total_seconds": round(total, 2), "model_auc": trained.auc,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


def bench_warehouse(people: int, repeat: int = 3, seed: int = 42, workdir: Path | None = None,
                    world: Path | None = None, progress: bool | None = None) -> dict:
    """Orchestration overhead: the warehouse DAG (Cosmos, via `dag.test()`) against a plain `dbt build`
    of the same project on the same warehouse, alternating in one process; medians and their ratio.

    `progress`: stage names and durations on stderr (None: only when stderr is a terminal; False for --json)."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="beacon-bench-wh-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        with override_env(BEACON_DATA_DIR=str(work), BEACON_DBT_TARGET_DIR=str(work / "dbt_target")), \
                Progress(enabled=progress, title=f"bench warehouse ({people:,} people)") as shown:
            return _run_warehouse(people, repeat, seed, world, shown)
    finally:
        if not workdir:
            shutil.rmtree(work, ignore_errors=True)


def _run_warehouse(people: int, repeat: int, seed: int, world: Path | None, shown: Progress) -> dict:
    from statistics import median

    from beacon import dbt
    from beacon.config import settings
    from beacon.generate import GenConfig, generate
    from beacon.ingest import load_landing
    from beacon.pipeline import airflow_env, ensure_airflow

    s = settings()
    shown.stage("load the world")
    if world:  # an already generated world of these people (read only)
        load_landing(Path(world) / "landing")
    else:
        generate(GenConfig(people=people, seed=seed), s.data_dir)
        load_landing(s.landing_dir)
    shown.stage("set up Airflow and the warm-up build")
    dbt.ensure_manifest(s)
    os.environ.update(airflow_env(s))
    ensure_airflow(s)
    from airflow.dag_processing.dagbag import DagBag  # after the Airflow environment is set

    dag = DagBag(dag_folder=str(s.home / "dags")).get_dag("beacon_warehouse")
    if not dbt.run(["build"], s, quiet=True):  # warm-up: every table exists before the timed runs
        raise RuntimeError("dbt build failed")
    # The baseline is a plain `dbt build` from the command line, the same child process the DAG's producer
    # starts. The same build in this already warm process (imports done, no start-up) is timed as well.
    # The warehouse DAG builds all but the score-based segments (the ML DAG builds those): the same selection.
    build = ["build", "--exclude", dbt.SCORE_BASED]
    cli = [dbt.executable(), "--quiet", *build, *dbt.project_flags(s)]
    cli_env = {**os.environ, **dbt.dbt_env(s)}
    plain, inproc, orchestrated, dbt_span = [], [], [], []
    for i in range(repeat):
        shown.stage(f"round {i + 1} of {repeat}: dbt build, in-process build, warehouse DAG")
        t0 = time.perf_counter()
        if subprocess.run(cli, env=cli_env, capture_output=True, text=True).returncode != 0:
            raise RuntimeError("dbt build (command line) failed")
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        if not dbt.run(build, s, quiet=True):
            raise RuntimeError("dbt build failed")
        inproc.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        dr = dag.test()
        orchestrated.append(time.perf_counter() - t0)
        if not str(dr.state).endswith("success"):
            raise RuntimeError(f"beacon_warehouse ended {dr.state}")
        # The Cosmos task group alone: first dbt task start to last dbt task end (other tasks, such as the
        # quality checkpoint, do work a plain `dbt build` does not).
        tis = [ti for ti in dr.get_task_instances() if ti.task_id.startswith("dbt.")]
        dbt_span.append((max(ti.end_date for ti in tis) - min(ti.start_date for ti in tis)).total_seconds())
    p, o, g, w = median(plain), median(orchestrated), median(dbt_span), median(inproc)
    return {"benchmark": "warehouse_orchestration", "people": people, "repeat": repeat,
            "dbt_build_seconds": [round(x, 2) for x in plain], "dbt_build_median": round(p, 2),
            "dbt_inprocess_seconds": [round(x, 2) for x in inproc], "dbt_inprocess_median": round(w, 2),
            "dag_seconds": [round(x, 2) for x in orchestrated], "dag_median": round(o, 2),
            "dbt_group_seconds": [round(x, 2) for x in dbt_span], "dbt_group_median": round(g, 2),
            "dbt_group_ratio": round(g / p, 3), "overhead_ratio": round(o / p, 3),
            "dbt_group_ratio_vs_inprocess": round(g / w, 3),
            "tasks": len(dag.tasks), "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}


def with_median_stages(runs: list[dict]) -> dict:
    """Several `bench_pipeline` runs as one report: every run, and each stage at its median seconds."""
    from statistics import median

    stages = []
    for i, st in enumerate(runs[0]["stages"]):
        sec = median(r["stages"][i]["seconds"] for r in runs)
        stages.append({"stage": st["stage"], "seconds": round(sec, 3), "rows": st["rows"],
                       "rows_per_s": round(st["rows"] / sec, 1) if sec > 0 else None})
    return {**{k: v for k, v in runs[0].items() if k != "stages"}, "repeat": len(runs), "stages": stages,
            "median_seconds": {st["stage"]: st["seconds"] for st in stages},
            "total_seconds": round(sum(st["seconds"] for st in stages), 2), "runs": runs}
