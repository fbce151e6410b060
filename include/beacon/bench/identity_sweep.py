"""The identity sweep: resolve generated worlds of several sizes and seeds through the dbt identity models.

One world per (size, seed), day 1 only, scored against the generator's truth: pairwise F1, precision and recall,
the largest customer (records in one cluster) and seconds. A size/seed where training goes wrong shows up here
as a collapse (issue 12: F1 0.015 at 100k people, seed 42), so the docs record a sweep, and CI runs a small one.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# The bound the sweep holds every world to (docs/benchmarks.md). A generated person has at most three person
# records, and the guard's production default (identity_guard_max_cluster_size) is 50.
SWEEP_MIN_F1 = 0.99
SWEEP_MAX_CLUSTER = 10


def sweep(sizes: Sequence[int], seeds: Sequence[int],
          progress: Callable[[str], None] | None = None) -> list[dict]:
    """Evaluate every (size, seed); a run that raises is reported with its error instead of stopping the sweep."""
    rows = []
    # One dbt target folder and warehouse path for every world (the warehouse is emptied per world): dbt parses
    # the project once for the sweep, not once per world (its partial parsing is keyed on the warehouse path).
    with tempfile.TemporaryDirectory(prefix="beacon-identity-sweep-") as dbt_dir:
        for people in sizes:
            for seed in seeds:
                rows.append(_one(int(people), int(seed), Path(dbt_dir), progress))
    return rows


def _one(people: int, seed: int, dbt_dir: Path, progress: Callable[[str], None] | None) -> dict:
    """One world of the sweep: its scores, or the error it raised."""
    from beacon.identity.generated import evaluate_generated

    t0 = time.perf_counter()
    row: dict = {"people": people, "seed": seed}
    try:
        res = evaluate_generated(people=people, seed=seed, days=1, dbt_dir=dbt_dir)
        row.update(records=res.records, true_entities=res.true_entities, clusters=res.clusters,
                   precision=res.precision, recall=res.recall, f1=res.f1,
                   largest_cluster=res.largest_cluster, resolve_seconds=res.seconds)
    except Exception as exc:  # noqa: BLE001 - the sweep reports every world, failed ones included
        row["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    row["seconds"] = round(time.perf_counter() - t0, 2)
    row["ok"] = ("error" not in row and row["f1"] >= SWEEP_MIN_F1
                 and row["largest_cluster"] <= SWEEP_MAX_CLUSTER)
    if progress:
        progress(f"{people:,} people, seed {seed}: " + (
            f"F1 {row['f1']:.4f}, largest cluster {row['largest_cluster']}" if "f1" in row else row["error"]))
    return row


def summarize(rows: list[dict]) -> dict:
    """Per size: the worst F1 and the largest cluster over its seeds, the median seconds; whether every world passed."""
    sizes = []
    for people in dict.fromkeys(r["people"] for r in rows):  # sizes in sweep order
        runs = [r for r in rows if r["people"] == people]
        scored = [r for r in runs if "f1" in r]
        seconds = sorted(r["seconds"] for r in runs)
        sizes.append({"people": people, "seeds": len(runs), "failed": sum(not r["ok"] for r in runs),
                      "min_f1": min((r["f1"] for r in scored), default=None),
                      "largest_cluster": max((r["largest_cluster"] for r in scored), default=None),
                      "median_seconds": seconds[len(seconds) // 2]})
    return {"all_ok": all(r["ok"] for r in rows), "min_f1_bound": SWEEP_MIN_F1, "max_cluster_bound": SWEEP_MAX_CLUSTER,
            "sizes": sizes}
