"""Erasure benchmark (`beacon bench privacy`): erase N people from a world built through the pipeline; the time of
each phase and the rows or lines touched per store (docs/benchmarks.md; the target of issue 27: 1,000 people from
the 1M world in under 5 minutes on 2 cores).

The world is the pipeline benchmark's (generate, ingest, dbt build, train, score, export; not timed here), or a copy
of one kept with `beacon bench pipeline --workdir DIR --keep` (`--world DIR`). People are sampled among the customers
with an e-mail, one request each, resolved together (`resolve_subjects`: one set-based join per identity table for the
whole batch, timed apart), then erased together (`erase_subjects`: one statement per table for all of them, one pass
over the files) and the warehouse file compacted (timed apart). Afterwards the locator counts what is left of a sample
of them in every tagged column, and a byte scan of the (plain) warehouse file counts the erased e-mails it still holds
(both must be 0). `erase_cpu_seconds` is this process's CPU time for the erasure (DuckDB's threads included).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from beacon.config import override_env
from beacon.progress import Progress


def bench_privacy(people: int = 1_000_000, erase: int = 1_000, seed: int = 42, workdir: Path | None = None,
                  world: Path | None = None, keep: bool = False, progress: bool | None = None) -> dict:
    """Build (or copy) a world, then resolve and erase `erase` people; see the module doc."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="beacon-bench-privacy-"))
    work.mkdir(parents=True, exist_ok=True)
    air = work / "airflow"  # never the user's Airflow: its logs and XComs are not the benchmark's to rewrite
    env = {"BEACON_DATA_DIR": str(work / "data"), "BEACON_DBT_TARGET_DIR": str(work / "data" / "dbt_target"),
           "AIRFLOW_HOME": str(air), "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(air / "logs"),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{air / 'airflow.db'}", "BEACON_STACK_DIR": str(work / "stack")}
    air.mkdir(parents=True, exist_ok=True)
    try:
        with override_env(**env), Progress(enabled=progress, title=f"bench privacy ({people:,} people)") as shown:
            return _run(people, erase, seed, work, world, shown)
    finally:
        if not keep and not workdir:
            shutil.rmtree(work, ignore_errors=True)


def _world(people: int, seed: int, work: Path, world: Path | None, shown: Progress) -> float:
    """The world in work/data (built or copied); its seconds."""
    t0 = time.perf_counter()
    if world:
        shown.stage("copy the world")
        shutil.copytree(world, work / "data", dirs_exist_ok=True)
    else:
        from beacon.bench.pipeline import bench_pipeline

        shown.stage("build the world (pipeline benchmark)")
        bench_pipeline(people=people, seed=seed, workdir=work / "data", keep=True, progress=False)
    return round(time.perf_counter() - t0, 1)


def _sample_emails(con, n: int, seed: int) -> list[str]:
    """A few more e-mails than needed (an e-mail shared by two customers, a family mailbox, is refused as ambiguous),
    the same ones on every run of a world and seed (an order by a seeded hash, not a parallel reservoir sample)."""
    return [r[0] for r in con.execute(f"""SELECT email FROM (SELECT DISTINCT email FROM marts.dim_customers
        WHERE email IS NOT NULL) ORDER BY hash(email || ?), email LIMIT {int(n * 1.2) + 10}""", [str(seed)]).fetchall()]


def _left_in_file(path: Path, emails: list[str]) -> int | None:
    """How many of the erased e-mails' bytes the warehouse file still holds, as whole values (not inside a longer
    address: `njones@x.com` in `anjones@x.com` is someone else's); None when it is encrypted (nothing to read). One
    pass over the file with all of them in one matcher."""
    import ahocorasick_rs

    from beacon.warehouse import warehouse_key

    if warehouse_key() or not emails:
        return None
    pats = sorted({e.lower().encode() for e in emails})
    ac, found, edge = ahocorasick_rs.BytesAhoCorasick(pats), set(), set(b"abcdefghijklmnopqrstuvwxyz0123456789_.+-")
    with open(path, "rb") as fh:
        prev = b""
        while block := fh.read(64 << 20):
            buf = prev + block.lower()
            found |= {i for i, a, b in ac.find_matches_as_indexes(buf, overlapping=True)
                      if (a == 0 or buf[a - 1] not in edge) and (b == len(buf) or buf[b] not in edge)}
            prev = buf[-256:]
    return len(found)


def _run(people: int, erase: int, seed: int, work: Path, world: Path | None, shown: Progress) -> dict:
    from beacon.config import settings
    from beacon.privacy.erase import compact, erase_subjects
    from beacon.privacy.locate import locate
    from beacon.privacy.subject import SubjectError, resolve_subjects
    from beacon.warehouse import connect

    world_seconds = _world(people, seed, work, world, shown)
    s = settings()
    shown.stage(f"resolve {erase:,} requests")
    with connect() as con:
        emails = _sample_emails(con, erase, seed)
        t0 = time.perf_counter()
        resolved = resolve_subjects(con, [{"email": [e]} for e in emails])
        resolve_seconds = time.perf_counter() - t0
    subjects = [r for r in resolved if not isinstance(r, SubjectError)][:erase]
    erased_emails = sorted({e for sub in subjects for e in sub.emails})
    in_file_before = _left_in_file(s.warehouse_path, erased_emails)
    shown.stage(f"erase {len(subjects):,} people")
    cpu0 = time.process_time()
    report = erase_subjects(s, subjects, "bench", compaction=False)
    cpu = time.process_time() - cpu0
    d = report.to_dict()
    out = {
        "benchmark": "privacy", "people": people, "erased": len(subjects), "seed": seed,
        "world_seconds": world_seconds,
        "resolve": {"seconds": round(resolve_seconds, 2), "requests": len(resolved),
                    "records": sum(len(x.record_keys) for x in subjects),
                    "refused_as_ambiguous": sum(isinstance(r, SubjectError) for r in resolved),
                    "merged_people": sum(len(x.record_keys) > 1 for x in subjects)},
        "erase_seconds": d["seconds"], "erase_cpu_seconds": round(cpu, 1),
        "slowest_tables": dict(sorted(d["table_seconds"].items(), key=lambda kv: -kv[1])[:8]),
        "rows_touched": d["totals"], "per_store": d["stores"],
        "pseudonymized": d["pseudonymized"], "blanked": d["blanked"], "unclean": d["unclean"],
    }
    (work / "erase-result.json").write_text(json.dumps(out, indent=2))  # kept if the compaction is interrupted
    shown.stage("compact the warehouse file")
    cpu0 = time.process_time()
    compact(s, report, True)
    out["compaction"] = {**report.compaction, "seconds": report.seconds.get("compact"),
                         "cpu_seconds": round(time.process_time() - cpu0, 1)}
    out["unclean"] = report.unclean
    shown.stage("check what is left")
    with connect(read_only=True) as con:
        sample = subjects[:20]
        hits = locate(con, sorted({c for x in sample for c in x.customer_ids}), sorted({k for x in sample
                                                                                         for k in x.keys()}))
    out["left_after_in_20_sampled"] = sum(h.rows for h in hits if not h.is_view)
    out["erased_emails_in_warehouse_file"] = {"before": in_file_before,
                                              "after": _left_in_file(s.warehouse_path, erased_emails)}
    return out | {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg()},
    }
