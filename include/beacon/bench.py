"""Pipeline benchmark: each stage's own function, timed on a fresh world in a work folder.

Stages run outside Airflow so the figures measure the work; `beacon demo` reports the same stages
through `dag.test()` for the orchestration overhead.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from beacon.config import override_env


def _stage(stages: list, name: str, t0: float, rows: int) -> None:
    sec = time.perf_counter() - t0
    stages.append({"stage": name, "seconds": round(sec, 3), "rows": int(rows),
                   "rows_per_s": round(rows / sec, 1) if sec > 0 else None})


def bench_pipeline(people: int, seed: int = 42, workdir: Path | None = None, keep: bool = False) -> dict:
    """Generate -> ingest -> dbt build -> train -> score -> export, each timed."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="beacon-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    with override_env(BEACON_DATA_DIR=str(work), BEACON_DBT_TARGET_DIR=str(work / "dbt_target")):
        try:
            return _run_stages(people, seed, work)
        finally:
            if not keep and not workdir:
                shutil.rmtree(work, ignore_errors=True)


def _run_stages(people: int, seed: int, work: Path) -> dict:
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
    t0 = time.perf_counter()
    g = generate(GenConfig(people=people, seed=seed), work)
    _stage(stages, "generate", t0, sum(g.rows.values()))

    t0 = time.perf_counter()
    load = load_landing(s.landing_dir)
    _stage(stages, "ingest", t0, load.totals()["rows_read"])

    t0 = time.perf_counter()
    if not dbt.run(["build"], s, quiet=True):
        raise RuntimeError("dbt build failed")
    _stage(stages, "dbt_build", t0, load.totals()["rows_loaded"])

    with connect() as con:
        t0 = time.perf_counter()
        trained = train_lead_score(con, s.registry_dir)
        _stage(stages, "ml_train", t0, trained.train_rows + trained.valid_rows)

        t0 = time.perf_counter()
        scored = score_customers(con, s.registry_dir)
        _stage(stages, "ml_score", t0, scored["rows"])

        t0 = time.perf_counter()
        day = clock(con).date().isoformat()
        members = 0
        for a in discover(s.manifest_path):
            members += export_audience(con, a, str(s.exports_dir), day).source_rows
        _stage(stages, "activation_export", t0, members)
    total = sum(st["seconds"] for st in stages)
    return {
        "benchmark": "pipeline", "people": people, "seed": seed, "events": g.rows["web_events"] + g.rows["email_events"],
        "stages": stages, "total_seconds": round(total, 2), "model_auc": trained.auc,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
