"""The daily pipeline over several days (`beacon bench pipeline --days D`): each day's stages, timed.

Day 1 is a fresh world; each later day adds that day's increment (new people, changed records, new events) and
runs the same stages on the warehouse the earlier days left, as a deployment does: the incremental dbt models
rebuild only the days that got rows (docs/scale.md). Per day and stage: seconds and rows processed; the floor
(DuckDB reading that day's landing files once, in the same run); the peak memory of the process tree. With
`dags`, the same days run again through `dag.test()` on a second copy of the world, and the ratio is reported.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from beacon.config import override_env
from beacon.progress import Progress

# The stages of a day, in the order the DAGs run them.
STAGES = ("ingest", "dbt", "identity", "training", "scoring", "recommendations", "activation", "journeys",
          "measurement")
# The dbt models that are the identity step (the Splink clustering and its event log), timed apart from dbt.
IDENTITY_MODELS = ("model.beacon.int_customers_clustered", "model.beacon.int_identity_events")


class PeakMemory:
    """The peak resident memory of this process and all its children (sampled every `interval` seconds; the list of
    children, which psutil finds by reading every process of the machine, is refreshed every `children_every`
    samples: done every 0.2 s it took about 15% of the bench's samples on a busy machine, py-spy, and its CPU
    counted in the stages' `cpu_seconds`)."""

    def __init__(self, interval: float = 0.2, children_every: int = 10):
        import psutil

        self._me = psutil.Process()
        self._interval = interval
        self._children_every = children_every
        self._ticks = 0
        self._children: list = []
        self._stop = threading.Event()
        self.peak = 0
        self.stage_peak = 0  # since the last `mark` (a stage's peak)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        import psutil

        if self._ticks % self._children_every == 0:
            try:
                self._children = self._me.children(recursive=True)
            except psutil.Error:
                self._children = []
        self._ticks += 1
        total = 0
        for p in [self._me, *self._children]:
            try:
                total += p.memory_info().rss
            except psutil.Error:  # a child that just ended
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self._sample()
            self.peak, self.stage_peak = max(self.peak, now), max(self.stage_peak, now)
            self._stop.wait(self._interval)

    def reset(self) -> int:
        """The peak since the last reset (then start again from the current figure)."""
        peak, self.peak = max(self.peak, self._sample()), 0
        return peak

    def mark(self) -> int:
        """The peak since the last mark (then start again from the current figure); the day's peak stays."""
        now = self._sample()
        peak, self.stage_peak = max(self.stage_peak, now), now
        self.peak = max(self.peak, now)
        return peak

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def floor_seconds(day_dir: Path) -> dict:
    """DuckDB reading each landing file of one day once (a count over every row): the least any load costs."""
    import duckdb

    readers = {".csv": "read_csv", ".jsonl": "read_json", ".parquet": "read_parquet"}
    t0 = time.perf_counter()
    rows = 0
    with duckdb.connect() as con:
        for f in sorted(day_dir.iterdir()):
            reader = readers.get(f.suffix)
            if reader is None:
                continue
            opts = ", all_varchar = true, ignore_errors = true" if f.suffix == ".csv" else \
                ", format = 'newline_delimited', ignore_errors = true" if f.suffix == ".jsonl" else ""
            rows += con.execute(f"SELECT count(*) FROM {reader}('{f}'{opts})").fetchone()[0]
    return {"seconds": round(time.perf_counter() - t0, 3), "rows": int(rows)}


class _Day:
    """Collects one day's stages."""

    def __init__(self, day: int, mem: PeakMemory | None = None):
        self.day = day
        self.mem = mem  # with it, each stage's peak memory of the process tree
        self.stages: list[dict] = []
        self.models: dict[str, float] = {}  # the slowest dbt nodes of the day's build, seconds
        self.trained: list[str] = []  # the models trained that day (the schedule decides)

    @contextmanager
    def stage(self, name: str, shown: Progress):
        shown.stage(f"day {self.day}: {name}")
        entry = {"stage": name, "seconds": 0.0, "cpu_seconds": 0.0, "rows": 0}
        if self.mem:
            self.mem.mark()
        t0, c0 = time.perf_counter(), cpu_seconds()
        yield entry
        if self.mem:
            entry["peak_memory_mb"] = round(self.mem.mark() / 2**20, 1)
        entry["seconds"] = round(time.perf_counter() - t0 - entry.pop("exclude", 0.0), 3)
        entry["cpu_seconds"] = round(cpu_seconds() - c0 - entry.pop("exclude_cpu", 0.0), 3)
        self.stages.append(entry)


def cpu_seconds() -> float:
    """CPU time of this process (all its threads: dbt and DuckDB run in it) and of its ended children, user and
    system: on a shared machine it moves far less with other work than the elapsed time."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _dbt_build(args: list[str], s, group: str) -> dict:
    """`dbt build` in this process as the DAGs' task group `group` runs it (the unit tests only when due: a first
    build or changed code, beacon.dbt.unit_test_args); its run results (per-node seconds and rows)."""
    from beacon import dbt

    if not dbt.run(["build", *args, *dbt.unit_test_args(group, s)], s, quiet=True):
        raise RuntimeError(f"dbt build {' '.join(args)} failed")
    dbt.keep_target_results(group, s)
    return json.loads((s.dbt_target_dir / "run_results.json").read_text())


def _node_seconds(results: dict, ids) -> float:
    return sum(r["execution_time"] for r in results["results"] if r["unique_id"] in ids)


def run_day(day: int, s, shown: Progress, full_refresh: bool = False, mem: PeakMemory | None = None) -> dict:
    """One day's stages on the warehouse as the earlier days left it (the landing folder holds the day): the
    stages (with `mem`, each one's peak memory), and the slowest dbt nodes."""
    from beacon import dbt
    from beacon.activation.activate import activate_destination, delivery_plan
    from beacon.audiences import discover, record_membership
    from beacon.ingest import load_landing
    from beacon.journeys.api import run as run_journey
    from beacon.journeys.validate import project_report
    from beacon.measure.report import write_report
    from beacon.personalize.recommend import write_recommendations
    from beacon.warehouse import clock, connect
    from ml.score import score_all
    from ml.train import train_scheduled

    d = _Day(day, mem)
    with d.stage("ingest", shown) as st:
        totals = load_landing(s.landing_dir).totals()
        st["rows"] = totals["rows_read"]
    with d.stage("dbt", shown) as st:  # as the warehouse DAG: all but the score-based and measurement models
        results = _dbt_build(["--exclude", dbt.SCORE_BASED, "--exclude", dbt.MEASUREMENT,
                              *(["--full-refresh"] if full_refresh else [])], s, "dbt")
        # every node's seconds kept beside the world, for profiling a day (the JSON keeps the slowest eight)
        (s.data_dir / f"run_results_day{day}.json").write_text(json.dumps(results))
        identity = _node_seconds(results, IDENTITY_MODELS)
        st["exclude"] = identity  # reported as its own stage below
        st["rows"] = totals["rows_loaded"]  # the day's new raw rows
    with connect() as con:
        records = con.execute("SELECT count(*) FROM intermediate.int_customers_clustered").fetchone()[0]
    # dbt runs the identity models in this process but times them only as elapsed: their CPU stays in dbt's.
    d.stages.append({"stage": "identity", "seconds": round(identity, 3), "cpu_seconds": None, "rows": int(records)})
    slowest = sorted(results["results"], key=lambda r: -r["execution_time"])[:8]
    d.models = {r["unique_id"].split(".", 2)[-1]: round(r["execution_time"], 2) for r in slowest}
    with connect() as con:
        with d.stage("training", shown) as st:  # as the ML DAG: only the models that are due (ml.schedule)
            trained = train_scheduled(con, s.registry_dir, s.retrain_every_days)
            st["rows"] = sum(int(m.get("train_rows") or 0) for m in trained["models"].values())
            d.trained = sorted(trained["models"])
        with d.stage("scoring", shown) as st:
            scored = score_all(con, s.registry_dir)
            st["rows"] = sum(int(m["rows"]) for m in scored["models"].values())
            st["rescored"] = sum(int(m["rescored"]) for m in scored["models"].values())
            st["computed"] = sum(int(m["computed"]) for m in scored["models"].values())  # distinct new fingerprints
    with d.stage("scoring", shown) as st:  # the score-based segments, built after scoring
        st["rows"] = len(_dbt_build(["--select", dbt.SCORE_BASED], s, "dbt_scored")["results"])
    with connect() as con:
        with d.stage("recommendations", shown) as st:
            st["rows"] = int(write_recommendations(con).get("rows_written", 0))
        with d.stage("activation", shown) as st:
            plan, _ = delivery_plan(s.manifest_path)
            day_iso = clock(con).date().isoformat()
            names = {a for p in plan for a in p["audiences"]}
            for a in discover(s.manifest_path):
                if a.name in names:
                    record_membership(con, a, day_iso)
            for p in plan:
                done, errors = activate_destination(con, s.manifest_path, p["destination"], p["audiences"],
                                                    str(s.exports_dir), clock(con), run_id=f"bench:{day}")
                if errors:
                    raise RuntimeError(f"activation to {p['destination']} failed: {errors}")
                st["rows"] += sum(x.source_rows for x in done)
        with d.stage("journeys", shown) as st:
            for x in project_report(strict=True).journeys:
                if x.journey.enabled:
                    r = run_journey(con, x.journey.name, clock(con), run_id=f"bench:{day}:{x.journey.name}")
                    st["rows"] += r.entered + r.hops
    with d.stage("measurement", shown) as st:
        t0, c0 = time.perf_counter(), cpu_seconds()
        marts = _dbt_build(["--select", dbt.MEASUREMENT], s, "measurement")
        st["marts_seconds"] = round(time.perf_counter() - t0, 3)
        st["marts_cpu_seconds"] = round(cpu_seconds() - c0, 3)
        d.models.update({f"measurement:{r['unique_id'].split('.', 2)[-1]}": round(r["execution_time"], 2)
                         for r in marts["results"] if r["unique_id"].startswith("model.")})
        with connect() as con:
            report = write_report(con, s.registry_dir / "reports", clock(con))
            st["uplift_refit"] = int(bool(report["uplift"].get("refit")))  # 1 on the days the uplift model refitted
            st["rows"] = con.execute("SELECT count(*) FROM measurement.campaign_exposure_outcomes").fetchone()[0]
    return {"stages": _merge_stages(d.stages), "dbt_slowest": d.models, "trained": d.trained}


def _merge_stages(stages: list[dict]) -> list[dict]:
    """One entry per stage name (scoring and its segments are one stage), in STAGES order; every figure summed but
    the peak memory (the larger)."""
    out: dict[str, dict] = {}
    for st in stages:
        e = out.setdefault(st["stage"], {"stage": st["stage"]})
        for k, v in st.items():
            if k == "stage":
                continue
            if v is None or (k in e and e[k] is None):  # not measured for a part: not measured
                e[k] = None
            elif k not in e:
                e[k] = v
            elif k == "peak_memory_mb":
                e[k] = max(e[k], v)
            else:
                e[k] = round(e[k] + v, 3) if isinstance(v, float) else e[k] + int(v)
    return [out[n] for n in STAGES if n in out]


def bench_days(people: int, days: int, seed: int = 42, workdir: Path | None = None, keep: bool = False,
               dags: bool = False, progress: bool | None = None, full_refresh: bool = False) -> dict:
    """The daily pipeline for `days` days of one world; with `dags`, also through `dag.test()` and the ratio.
    `full_refresh`: every day's dbt build rebuilds the incremental models whole (what each day cost before)."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="beacon-bench-days-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        with Progress(enabled=progress, title=f"bench pipeline ({people:,} people, {days} days)") as shown, \
                PeakMemory() as mem:
            # The DAGs first: Airflow reads its home once, when first imported (the stages import it too).
            through_dags = _dag_days(people, days, seed, work / "dags", shown, mem) if dags else None
            out = _stage_days(people, days, seed, work / "stages", shown, mem, full_refresh)
            if through_dags:
                out["dags"] = through_dags
                out["dags_ratio"] = [round(g["seconds"] / f["seconds"], 3)
                                     for g, f in zip(out["dags"]["per_day"], out["per_day"], strict=True)]
            out["peak_memory_mb"] = round(max(d["peak_memory_mb"] for d in out["per_day"]), 1)
            return out
    finally:
        if not keep and not workdir:
            shutil.rmtree(work, ignore_errors=True)


def _stage_days(people: int, days: int, seed: int, work: Path, shown: Progress, mem: PeakMemory,
                full_refresh: bool) -> dict:
    from beacon.config import settings
    from beacon.dbt import ensure_manifest, forget_unit_tests
    from beacon.generate import GenConfig, generate

    work.mkdir(parents=True, exist_ok=True)
    out_days = []
    with override_env(BEACON_DATA_DIR=str(work), BEACON_DBT_TARGET_DIR=str(work / "dbt_target")):
        s = settings()
        ensure_manifest(s)
        forget_unit_tests(s)  # a new world is a fresh deployment: day 1 runs the dbt unit tests, as the DAGs do
        for day in range(1, days + 1):
            shown.stage(f"day {day}: generate")
            cfg = GenConfig(people=people, seed=seed, day=day)
            t0 = time.perf_counter()
            g = generate(cfg, work)
            generated = round(time.perf_counter() - t0, 3)
            floor = floor_seconds(s.landing_dir / cfg.day_date().isoformat())
            mem.reset()
            ran = run_day(day, s, shown, full_refresh=full_refresh, mem=mem)
            stages = ran["stages"]
            total = round(sum(st["seconds"] for st in stages), 3)
            cpu = round(sum(st["cpu_seconds"] or 0.0 for st in stages), 3)  # identity's CPU is inside dbt's
            out_days.append({"day": day, "date": cfg.day_date().isoformat(), "generate_seconds": generated,
                             "generated_rows": int(sum(g.rows.values())), "stages": stages, "seconds": total,
                             "cpu_seconds": cpu, "load_average": [round(x, 2) for x in os.getloadavg()],
                             "dbt_slowest": ran["dbt_slowest"],
                             "trained": ran["trained"], "floor": floor,
                             "floor_ratio": round(total / floor["seconds"], 2) if floor["seconds"] else None,
                             "peak_memory_mb": round(mem.reset() / 2**20, 1)})
    first = out_days[0]["seconds"]
    first_cpu = out_days[0]["cpu_seconds"] or 1.0
    return {"benchmark": "pipeline_days", "people": people, "days": days, "seed": seed, "full_refresh": full_refresh,
            "per_day": out_days, "day_ratio": [round(d["seconds"] / first, 3) for d in out_days],
            "day_cpu_ratio": [round(d["cpu_seconds"] / first_cpu, 3) for d in out_days],
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}


def _dag_days(people: int, days: int, seed: int, work: Path, shown: Progress, mem: PeakMemory) -> dict:
    """The same days through the DAGs (`dag.test()`, the demo's chain) on a second copy of the world."""
    from beacon.config import settings
    from beacon.dbt import ensure_manifest
    from beacon.generate import GenConfig, generate
    from beacon.pipeline import DEMO_CHAIN, airflow_env, ensure_airflow, run_dags

    work.mkdir(parents=True, exist_ok=True)
    out = []
    with override_env(BEACON_DATA_DIR=str(work), BEACON_DBT_TARGET_DIR=str(work / "dbt_target"),
                      AIRFLOW_HOME=str(work / ".airflow")):
        s = settings()
        ensure_manifest(s)
        os.environ.update(airflow_env(s))
        ensure_airflow(s)
        for day in range(1, days + 1):
            cfg = GenConfig(people=people, seed=seed, day=day)
            generate(cfg, work)
            mem.reset()
            seconds = run_dags(cfg.day_date().isoformat(), lambda name, d=day: shown.stage(f"DAGs day {d}: {name}"),
                               DEMO_CHAIN)
            out.append({"day": day, "dags": seconds, "seconds": round(sum(seconds.values()), 3),
                        "peak_memory_mb": round(mem.reset() / 2**20, 1)})
    return {"per_day": out}
