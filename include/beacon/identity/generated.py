"""Evaluate identity resolution on a generated world against its ground truth, through the real pipeline.

Day 1: generate, load the CRM and shop person files, build the dbt identity models, score the customer
ids against the generator's record map, and time `resolve()` on the same records. Day 2: add the next
day's records, run the incremental build, and measure how many day-1 people kept their customer id.
The truth is read only here, never by the pipeline.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from beacon.config import override_env, settings
from beacon.identity.metrics import pairwise_scores

PERSON_FILES = ("crm_contacts.csv", "shop_customers.csv")  # the landing files holding person records
SOURCE_OF_FILE = {"crm_contacts": "crm", "shop_customers": "shop"}  # truth source name -> record_key prefix


@dataclass
class GeneratedResult:
    """Pairwise quality on day 1, resolution time, and id stability after the day-2 increment."""

    dataset: str
    people: int
    records: int
    true_entities: int
    clusters: int
    largest_cluster: int
    precision: float
    recall: float
    f1: float
    seconds: float  # the identity model (int_identity_events) resolving every day-1 record, full mode
    stage_seconds: dict = field(default_factory=dict)
    day2_records: int = 0
    day2_f1: float | None = None
    id_stability: float | None = None  # share of day-1 people whose customer id is unchanged, merges aside
    merged_people: int = 0
    incremental_seconds: float | None = None  # the identity model on day 2 (incremental: the delta only)

    def to_dict(self) -> dict:
        return asdict(self)


def _persons_only_landing(src: Path, dst: Path) -> None:
    """Link each day's person files into a landing folder of their own (the events are not needed here)."""
    for day in sorted(p for p in src.iterdir() if p.is_dir()):
        (dst / day.name).mkdir(parents=True, exist_ok=True)
        for name in PERSON_FILES:
            if (day / name).exists() and not (dst / day.name / name).exists():
                (dst / day.name / name).symlink_to(day / name)


def _truth(truth_dir: Path) -> pd.DataFrame:
    maps = [pd.read_parquet(p) for p in sorted(truth_dir.glob("*/record_map.parquet"))]
    rm = pd.concat(maps, ignore_index=True)
    rm = rm[rm.source.isin(SOURCE_OF_FILE)]
    rm["record_key"] = rm.source.map(SOURCE_OF_FILE) + ":" + rm.record_id
    return rm.drop_duplicates("record_key")[["record_key", "person_id"]]


def _current_ids(warehouse: Path) -> pd.DataFrame:
    from beacon.warehouse import connect  # read-write: dbt in this process keeps its own handle open

    with connect(warehouse) as con:
        return con.execute("SELECT record_key, customer_id FROM intermediate.int_customer_records_resolved").df()


def _build(s, quiet: bool) -> float:
    from beacon import dbt

    t0 = time.perf_counter()
    if not dbt.run(["build", "--select", "+int_customer_records_resolved", "--exclude", "resource_type:unit_test"],
                   s, quiet=quiet):
        raise RuntimeError("dbt build of the identity models failed: " + _failures(s))
    return time.perf_counter() - t0


def evaluate_generated(people: int = 20_000, seed: int = 42, days: int = 2, workdir: Path | None = None,
                       quiet: bool = True, world: Path | None = None, dbt_dir: Path | None = None) -> GeneratedResult:
    """Generate a world of `people`, resolve it through the dbt identity models, score it, then run day 2.

    `world`: an already generated day-1 world (its landing/ and truth/) of the same people and seed, reused
    read-only instead of generating one (a million people take a while to generate).
    `dbt_dir`: a folder kept from one evaluation to the next for dbt's target folder and the warehouse file (the
    warehouse is deleted first, so every world starts empty). dbt's partial parsing is keyed on the warehouse path,
    so a sweep that passes one `dbt_dir` parses the project once instead of once per world."""
    from beacon.generate import GenConfig, generate
    from beacon.ingest import load_landing
    from beacon.warehouse import connect, table_exists

    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="beacon-identity-"))
    data = root / "data"
    env = {"BEACON_DATA_DIR": str(data), "BEACON_DBT_TARGET_DIR": str(root / "dbt_target")}
    if dbt_dir is not None:
        warehouse = Path(dbt_dir) / "warehouse" / "beacon.duckdb"
        for stale in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
            stale.unlink(missing_ok=True)
        env.update(BEACON_DBT_TARGET_DIR=str(Path(dbt_dir) / "dbt_target"), BEACON_WAREHOUSE=str(warehouse))
    try:
        with override_env(**env):
            s = settings()
            stage: dict[str, float] = {}
            t0 = time.perf_counter()
            persons = root / "persons"
            if world:
                _persons_only_landing(Path(world) / "landing", persons)
                for day in (Path(world) / "truth").iterdir():
                    (s.truth_dir / day.name).mkdir(parents=True, exist_ok=True)
                    (s.truth_dir / day.name / "record_map.parquet").symlink_to(day / "record_map.parquet")
            else:
                generate(GenConfig(people=people, seed=seed, day=1), data)
                _persons_only_landing(s.landing_dir, persons)
            stage["generate"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            load_landing(persons, warehouse=s.warehouse_path)
            stage["ingest"] = round(time.perf_counter() - t0, 2)
            stage["dbt_day1"] = round(_build(s, quiet), 2)

            # Score what the dbt model produced; its own run time is the resolution time.
            seconds = _node_seconds(s, "model.beacon.int_identity_events")
            day1 = _current_ids(s.warehouse_path)
            truth = _truth(s.truth_dir)
            scored = day1.merge(truth, on="record_key")
            score = pairwise_scores(scored.customer_id, scored.person_id)
            p, r, f1 = score.precision, score.recall, score.f1
            result = GeneratedResult(
                dataset="generated", people=people, records=len(day1), true_entities=scored.person_id.nunique(),
                clusters=scored.customer_id.nunique(), largest_cluster=int(day1.customer_id.value_counts().max()),
                precision=round(p, 5), recall=round(r, 5), f1=round(f1, 5),
                seconds=round(seconds, 2), stage_seconds=stage)
            if days < 2:
                return result

            day1 = day1.merge(truth, on="record_key")
            generate(GenConfig(people=people, seed=seed, day=2), data)
            _persons_only_landing(s.landing_dir, persons)
            load_landing(persons, warehouse=s.warehouse_path)
            stage["dbt_day2"] = round(_build(s, quiet), 2)
            result.incremental_seconds = round(_node_seconds(s, "model.beacon.int_identity_events"), 2)
            after = _current_ids(s.warehouse_path)
            truth2 = _truth(s.truth_dir)
            scored2 = after.merge(truth2, on="record_key")
            result.day2_records = len(after)
            result.day2_f1 = round(pairwise_scores(scored2.customer_id, scored2.person_id).f1, 5)
            with connect(s.warehouse_path) as con:
                merged = set(con.execute("SELECT merged_customer_id FROM marts.identity_merge_log").df().merged_customer_id) \
                    if table_exists(con, "marts", "identity_merge_log") else set(con.execute(
                        "SELECT previous_customer_id FROM intermediate.int_identity_events WHERE event = 'merged'").df()
                        .previous_customer_id)
            # A person is stable when every day-1 record of theirs has the same customer id after day 2.
            # People whose day-1 customer was merged into an older one are counted apart (merges aside).
            both = day1.merge(after, on="record_key", suffixes=("_day1", "_day2"))
            both["same"] = both.customer_id_day1 == both.customer_id_day2
            both["merged"] = both.customer_id_day1.isin(merged)
            per_person = both.groupby("person_id").agg(same=("same", "all"), merged=("merged", "any"))
            kept = per_person[~per_person.merged]
            result.merged_people = int(per_person.merged.sum())
            result.id_stability = round(float(kept.same.mean()), 5) if len(kept) else None
            return result
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)


def _failures(s) -> str:
    """The failed nodes of dbt's last invocation with their messages (an identity guard names itself here)."""
    import json

    path = s.dbt_target_dir / "run_results.json"
    if not path.exists():
        return "see dbt's output"
    failed = [f"{r['unique_id']}: {(r.get('message') or '').strip().splitlines()[-1][-1000:]}"
              for r in json.loads(path.read_text())["results"] if r["status"] in ("error", "fail")]
    return "; ".join(failed) or "see dbt's output"


def _node_seconds(s, unique_id: str) -> float:
    """How long dbt took for one node in its last invocation (run_results.json)."""
    import json

    results = json.loads((s.dbt_target_dir / "run_results.json").read_text())["results"]
    return float(next(r["execution_time"] for r in results if r["unique_id"] == unique_id))
