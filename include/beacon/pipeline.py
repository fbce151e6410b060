"""Run the whole slice in-process: generate a world, then the DAGs through `dag.test()`.

This is what `make demo` and the end-to-end test run: Airflow on SQLite in a project-local folder,
DuckDB as the warehouse, no scheduler, server or Docker. The demo runs several days: before each new day,
the world answers what Beacon sent the day before (`beacon.generate.responses`), and after the last one the
campaign report is written again beside the effects the world planted (`beacon.measure.planted`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from beacon.config import Settings, settings
from beacon.dag_chain import CHAIN, DEMO_DAGS

# The core chain (ingest, warehouse, ML, activation), in order: what `run_dags` runs unless told otherwise.
DAG_ORDER = DEMO_DAGS
# `make demo`'s chain: everything one ingest run leads to, the journeys DAG included (beacon.dag_chain.CHAIN).
DEMO_CHAIN = CHAIN


def airflow_env(s: Settings | None = None) -> dict[str, str]:
    """Airflow settings for the embedded mode: SQLite metadata DB in <home>/.airflow, no examples, no telemetry."""
    s = s or settings()
    home = s.airflow_home
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(s.home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(s.home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "beacon",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": s.airflow_log_level,
        # The activation DAG names one Asset per delivered audience through an AssetAlias. Airflow creates
        # such an Asset on its first event and logs that as two warnings ("AssetModel ... not found",
        # "inactive AssetModel"); only a DAG processor, which the embedded mode does not run, would mark it
        # active. The event is recorded either way: nothing for a user to do, so only that class logger
        # (airflow.assets.manager.AssetManager, whose warnings are just these two) is raised to ERROR.
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS": _with_level(s.airflow_namespace_levels,
                                                          "airflow.assets.manager.AssetManager", "ERROR"),
        "SCARF_NO_ANALYTICS": "true",
        # Short retries in the embedded demo, so a failure is reported quickly (unless set explicitly).
        "BEACON_RETRY_DELAY_SECONDS": str(3 if s.retry_delay_seconds is None else s.retry_delay_seconds),
        "DO_NOT_TRACK": "1",
    }


def _with_level(levels: str, logger: str, level: str) -> str:
    """Airflow's `namespace_levels` setting with `logger` added, unless it is already set there."""
    pairs = levels.replace(",", " ").split()
    return " ".join(pairs if any(p.split("=")[0] == logger for p in pairs) else [*pairs, f"{logger}={level}"])


def ensure_airflow(s: Settings | None = None) -> Path:
    """Initialize Airflow's metadata DB and the DuckDB writer pool once (idempotent)."""
    env = {**os.environ, **airflow_env(s)}
    home = Path(env["AIRFLOW_HOME"])
    marker = home / ".beacon-initialized"
    if marker.exists() and (home / "airflow.db").exists():
        return home
    home.mkdir(parents=True, exist_ok=True)
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([airflow, "pools", "set", "duckdb_writer", "1", "DuckDB allows one writer"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    marker.write_text(datetime.now().isoformat())
    return home


@dataclass
class DemoResult:
    """What the demo did and produced."""

    people: int
    seed: int
    day: str
    engine: str = "duckdb"  # the engine it ran on (BEACON_ENGINE)
    seconds: dict[str, float] = field(default_factory=dict)
    raw: dict = field(default_factory=dict)
    quarantine: dict[str, int] = field(default_factory=dict)
    warehouse: dict[str, int] = field(default_factory=dict)
    audiences: list[dict] = field(default_factory=list)
    model: dict = field(default_factory=dict)
    models: list[dict] = field(default_factory=list)
    model_report: str = ""
    campaign_report: str = ""  # beacon.measure.report, beside the model report
    exports_dir: str = ""
    world: list[dict] = field(default_factory=list)  # what the world answered, per day of messages
    planted: list[dict] = field(default_factory=list)  # measured lift vs planted effect (beacon.measure.planted)
    training: list[dict] = field(default_factory=list)  # per warehouse day: models trained, not trained (ml.schedule)

    def to_dict(self) -> dict:
        return asdict(self)


def prepare_world(s: Settings, people: int, seed: int) -> str:
    """Generate day 1 unless the same world is already there; a different world starts clean."""
    from beacon.generate import GenConfig, generate

    cfg = GenConfig(people=people, seed=seed)
    marker = s.data_dir / "world.json"
    wanted = {"people": people, "seed": seed, "day": 1}
    if marker.exists() and json.loads(marker.read_text()) == wanted and (s.landing_dir / cfg.day_date().isoformat()).exists():
        return cfg.day_date().isoformat()
    from beacon.spark.session import spark_dir

    for p in (s.landing_dir, s.truth_dir, s.exports_dir, s.registry_dir, outbox(s), spark_dir(s)):
        shutil.rmtree(p, ignore_errors=True)
    for suffix in ("", ".wal"):
        Path(str(s.warehouse_path) + suffix).unlink(missing_ok=True)
    from beacon.dbt import forget_unit_tests

    forget_unit_tests(s)  # a new warehouse is a fresh deployment: its first builds run the dbt unit tests
    s.data_dir.mkdir(parents=True, exist_ok=True)
    generate(cfg, s.data_dir)  # landing/ and truth/ under data_dir
    marker.write_text(json.dumps(wanted))
    return cfg.day_date().isoformat()


def add_day(s: Settings, people: int, seed: int, day: int, respond: bool = False, book=None) -> str:
    """Generate the increment of `day` (new people, changed records, new events) into the current world; with
    `respond`, the people also answer what Beacon delivered the day before (exports and the demo's outbox), with
    the planted effects of `book` (default `beacon.generate.responses.DEMO_BOOK`)."""
    from beacon.generate import GenConfig, generate

    cfg = GenConfig(people=people, seed=seed, day=day)
    if not (s.landing_dir / cfg.day_date().isoformat()).exists():
        answers = None
        if respond:
            from beacon.generate.responses import DEMO_BOOK, answer_day

            answers, _ = answer_day(s.data_dir, cfg, [s.exports_dir, outbox(s)], book or DEMO_BOOK)
        generate(cfg, s.data_dir, answers)
    return cfg.day_date().isoformat()


def outbox(s: Settings) -> Path:
    """Where the demo's email channel writes its messages (a file destination), for the world to read."""
    return s.data_dir / "outbox"


@contextmanager
def demo_email_outbox(s: Settings):
    """The email channel of the demo: a file destination in `outbox(s)/email`, so journeys can send and the world can
    read what was sent. A connection set by the user (AIRFLOW_CONN_BEACON_EMAIL) is kept as it is."""
    name = "AIRFLOW_CONN_BEACON_EMAIL"
    if name in os.environ:
        yield
        return
    os.environ[name] = json.dumps({"conn_type": "fs", "extra": {"url": str(outbox(s) / "email")}})
    try:
        yield
    finally:
        os.environ.pop(name, None)


def run_dags(day: str, progress=None, dags: tuple[str, ...] = DAG_ORDER) -> dict[str, float]:
    """Run the DAGs in order with `dag.test()`; raise naming the failed tasks if one fails."""
    os.environ.update(airflow_env())
    import pendulum
    from airflow.dag_processing.dagbag import DagBag  # after the environment is set

    s = settings()
    bag = DagBag(dag_folder=str(s.home / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    seconds: dict[str, float] = {}
    for dag_id in dags:
        if progress:
            progress(dag_id)
        t0 = time.perf_counter()
        dag = bag.get_dag(dag_id)
        # The ingest DAG runs for the world's day; the others are Asset-triggered (no logical date).
        logical = pendulum.parse(day, tz="UTC") if dag_id == "beacon_ingest" else None
        dr = dag.test(logical_date=logical)
        state = str(getattr(dr, "state", ""))
        if not state.endswith("success"):
            failed = [ti.task_id for ti in dr.get_task_instances() if str(ti.state).endswith("failed")]
            raise RuntimeError(f"DAG {dag_id} ended {state}; failed tasks: {failed}")
        seconds[dag_id] = round(time.perf_counter() - t0, 2)
    return seconds


def collect(s: Settings, result: DemoResult) -> DemoResult:
    """Read the summary back from the warehouse, the registry and the exports."""
    from beacon.warehouse import connect
    from ml.schedule import training_days

    with connect() as con:
        result.training = training_days(con)
        led = con.execute("""SELECT sum(rows_read), sum(rows_loaded), sum(rows_quarantined), count(*)
                             FROM raw._load_ledger WHERE status = 'loaded'""").fetchall()[0]
        result.raw = {"files": int(led[3]), "rows_read": int(led[0] or 0), "rows_loaded": int(led[1] or 0),
                      "rows_quarantined": int(led[2] or 0)}
        result.quarantine = dict(con.execute("SELECT reason, count(*) FROM raw._quarantine GROUP BY 1 ORDER BY 1").fetchall())
        for t in ("marts.dim_customers", "marts.fct_orders", "marts.fct_web_events", "marts.fct_email_events",
                  "marts.dim_consent", "ml.scores"):
            result.warehouse[t] = con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
        # The latest file sync of each audience: members, what the export now holds, held out, not sent.
        runs = con.execute("""
            SELECT r.audience, r.source_rows, r.held_out, r.invalid, r.suppressed,
                (SELECT count(*) FROM activation.sync_state st WHERE st.audience = r.audience
                 AND st.destination = 'file' AND st.present) AS exported
            FROM activation.sync_runs r WHERE r.destination = 'file' AND r.status IN ('succeeded', 'partial')
            QUALIFY row_number() OVER (PARTITION BY r.audience ORDER BY r.started_at DESC) = 1
            ORDER BY 1""").fetchall()
        result.audiences = [
            {"audience": a, "members": int(n), "exported": int(e), "held_out": int(h),
             "suppressed": int(i) + sum(json.loads(x or "{}").values())}
            for a, n, h, i, x, e in runs
        ]
    champion = s.registry_dir / "lead_score" / "CHAMPION"
    if champion.exists():
        meta = json.loads((s.registry_dir / "lead_score" / champion.read_text().strip() / "metadata.json").read_text())
        result.model = {k: meta[k] for k in ("model", "version", "auc", "pr_auc", "train_rows", "valid_rows")}
    for name in ("lead_score", "churn", "ltv"):  # every champion of the ML DAG, with its holdout metric
        pointer = s.registry_dir / name / "CHAMPION"
        if pointer.exists():
            meta = json.loads((s.registry_dir / name / pointer.read_text().strip() / "metadata.json").read_text())
            metric = meta.get("primary_metric", "roc_auc")
            result.models.append({"model": name, "version": meta["version"], "metric": metric,
                                  "value": meta.get("metrics", {}).get(metric), "train_rows": meta["train_rows"],
                                  "valid_rows": meta["valid_rows"]})
    report = s.registry_dir / "reports" / "latest.html"
    result.model_report = str(report) if report.exists() else ""
    campaigns = s.registry_dir / "reports" / "campaigns.html"
    result.campaign_report = str(campaigns) if campaigns.exists() else ""
    result.exports_dir = str(s.exports_dir)
    return result


class EngineUnavailable(RuntimeError):
    """BEACON_ENGINE names an engine this machine cannot run (the spark engine without a Java runtime)."""


def require_runnable_engine(engine: str) -> None:
    """Refuse, before anything runs, an engine that cannot start here: Spark needs a Java runtime (17)."""
    from beacon.config import java_runtime

    if engine == "spark" and not java_runtime():
        raise EngineUnavailable(
            "BEACON_ENGINE=spark: no Java runtime found (neither `java` on PATH nor JAVA_HOME); the spark engine "
            "runs a local Spark, which needs Java 17 (Debian: openjdk-17-jre-headless), or unset BEACON_ENGINE")


@contextmanager
def engine_session(s: Settings):
    """On the spark engine, the process's Spark session (the DAG tasks take it: dbt-spark's `session` method),
    stopped at the end so a later run in this process starts one with its own settings; nothing on DuckDB."""
    if s.engine != "spark":
        yield
        return
    from beacon.spark.session import session

    spark = session(s)
    try:
        yield
    finally:
        spark.stop()


def run_demo(people: int = 20_000, seed: int = 42, days: int = 3, progress=None, book=None) -> DemoResult:
    """Generate (if needed), initialize Airflow (if needed), run the DAGs for each day, summarize; after several
    days, compare the measured lift with the effects the world planted."""
    from beacon.dbt import ensure_manifest

    s = settings()
    require_runnable_engine(s.engine)  # before anything runs: no half-run on an engine that cannot run yet
    t0 = time.perf_counter()
    if progress:
        progress("generate")
    # Airflow's database is migrated by child processes (`airflow db migrate`): on a second core while this one
    # generates the world (a fresh clone pays both).
    with ThreadPoolExecutor(max_workers=1) as pool:
        airflow_ready = pool.submit(ensure_airflow, s)
        day = prepare_world(s, people, seed)
        result = DemoResult(people=people, seed=seed, day=day, engine=s.engine)
        result.seconds["generate"] = round(time.perf_counter() - t0, 2)
        t1 = time.perf_counter()
        if progress:
            progress("setup")
        ensure_manifest(s)
        airflow_ready.result()
    result.seconds["setup"] = round(time.perf_counter() - t1, 2)  # what is left of it after generating
    with demo_email_outbox(s), engine_session(s):
        result.seconds.update(run_dags(day, progress, DEMO_CHAIN))
        for d in range(2, days + 1):  # daily increments: the world answers, then the day's files and the DAGs
            if progress:
                progress(f"day {d}")
            t2 = time.perf_counter()
            result.day = add_day(s, people, seed, d, respond=True, book=book)
            result.seconds[f"generate (day {d})"] = round(time.perf_counter() - t2, 2)
            for k, v in run_dags(result.day, progress, DEMO_CHAIN).items():
                result.seconds[f"{k} (day {d})"] = v
    if days > 1:
        t3 = time.perf_counter()
        if progress:
            progress("evaluate")
        evaluate_demo(s, result)
        result.seconds["evaluate"] = round(time.perf_counter() - t3, 2)
    result.seconds["total"] = round(time.perf_counter() - t0, 2)
    return collect(s, result)


def evaluate_demo(s: Settings, result: DemoResult) -> None:
    """The demo evaluation (reads the world's truth, unlike the DAGs): what the world answered each day, and the
    campaign report written again with the planted effects beside the measured lift."""
    from beacon.generate.responses import read_messages
    from beacon.measure.planted import write_annotated_report
    from beacon.warehouse import clock, connect

    msgs = read_messages(s.data_dir)
    result.world = [{"day": str(d)[:10], "messages": len(g), "reached": int(g.reached.sum()),
                     "expected_nudged_orders": round(float(g.delta.sum()), 1)}
                    for d, g in msgs.groupby(msgs.sent_at.astype(str).str[:10], sort=True)] if len(msgs) else []
    with connect() as con:
        result.planted = write_annotated_report(con, s.registry_dir / "reports", clock(con), s.data_dir)["planted"]
