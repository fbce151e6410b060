"""`beacon bench stack`: the whole chain through the real scheduler (`make up`) against `dag.test()`.

A fresh world in a work folder, its own stack folder and port; the ingest DAG is triggered through the REST
API and the chain's wall time is the ingest run's start to the activation run's end (Airflow's own times).
Then everything started is stopped. Compare with `beacon demo` (the same four DAGs through `dag.test()`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from beacon.config import override_env, settings
from beacon.pipeline import prepare_world
from beacon.stack import Api, chain, down, free_port, trigger_chain, up, wait_for_chain


def _t(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def bench_stack(people: int = 20_000, seed: int = 42, workdir: Path | None = None, keep: bool = False,
                timeout: float = 1800) -> dict:
    work = workdir or Path(tempfile.mkdtemp(prefix="beacon-bench-stack-"))
    work.chmod(0o755)  # mkdtemp makes it private; Postgres runs as the `postgres` user when we are root
    env = {"BEACON_DATA_DIR": str(work / "data"), "BEACON_STACK_DIR": str(work / "stack"),
           "BEACON_API_PORT": str(free_port())}
    try:
        with override_env(**env):
            s = settings()
            t0 = time.perf_counter()
            prepare_world(s, people, seed)
            generate = time.perf_counter() - t0
            t1 = time.perf_counter()
            up(s, say=lambda m: None)
            startup = time.perf_counter() - t1
            try:
                api = Api.for_stack(s)
                since = datetime.now(UTC).isoformat()
                t2 = time.perf_counter()
                trigger_chain(api)
                runs = wait_for_chain(api, since, timeout=timeout, say=lambda m: None)
                waited = time.perf_counter() - t2
                dags = {d: round((_t(r["end_date"]) - _t(r["start_date"])).total_seconds(), 1) for d, r in runs.items()}
                dags = chain(s)
                tis = sum(len(api.task_instances(d, runs[d]["dag_run_id"])) for d in dags)
            finally:
                down(s, say=lambda m: None)
        total = (_t(runs[dags[-1]]["end_date"]) - _t(runs[dags[0]]["start_date"])).total_seconds()
        return {"people": people, "seed": seed, "generate_s": round(generate, 1), "startup_s": round(startup, 1),
                "chain_s": round(total, 1), "trigger_to_done_s": round(waited, 1), "dags_s": dags,
                "task_instances": tis}
    finally:
        if not keep and workdir is None:
            shutil.rmtree(work, ignore_errors=True)
