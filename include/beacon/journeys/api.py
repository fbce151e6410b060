"""What the CLI, the DAG and the bench share: find and validate the journey files, build the real environment,
advance, and report (list, preview, status)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb

from beacon.config import settings
from beacon.journeys import experiment
from beacon.journeys.engine import Env, RunResult, advance, dry_run, ensure_tables
from beacon.journeys.model import Journey
from beacon.journeys.validate import Catalog, Report, default_catalog, load_dir, project_report


def journeys_dir() -> Path:
    """The top-level `journeys/` folder of the project."""
    return settings().home / "journeys"


def catalog() -> Catalog:
    return default_catalog(journeys_dir(), settings().dbt_project_dir)


def load(strict: bool = True, folder: Path | None = None, cat: Catalog | None = None) -> Report:
    """Every journey file, parsed and checked; with `strict`, any problem raises JourneyError (all listed)."""
    if folder is None and cat is None:
        return project_report(strict)
    folder = folder or journeys_dir()
    rep = load_dir(folder, cat or default_catalog(folder, settings().dbt_project_dir))
    if strict:
        rep.raise_if_any()
    return rep


def names() -> list[str]:
    """Journey names for the DAG's mapped task (enabled journeys only); raises on invalid files."""
    return [x.journey.name for x in load().journeys if x.journey.enabled]


def find(name: str, folder: Path | None = None) -> Journey:
    rep = load(folder=folder)
    for x in rep.journeys:
        if x.journey.name == name:
            return x.journey
    raise ValueError(f"no journey named {name!r}; known: {', '.join(x.journey.name for x in rep.journeys)}")


def default_env(manifest_path: Path | None = None) -> Env:
    """Destinations from their Airflow connections (`file` works without one), audiences from the dbt manifest."""
    from beacon.activation.destinations import registry
    from beacon.activation.governance import default_policy
    from beacon.audiences import discover

    s = settings()
    manifest = manifest_path or s.manifest_path
    audiences = discover(manifest) if manifest.exists() else []
    return Env(destination=lambda ch: registry.build(ch, str(s.exports_dir)), audiences=audiences,
               relations={a.name: a.relation for a in audiences},
               policy=lambda d: replace(default_policy(d.channel), **registry.policy_overrides(d.name)),
               templates_dir=journeys_dir() / "templates")


def run(con: duckdb.DuckDBPyConnection, name: str, clock, env: Env | None = None, run_id: str | None = None) -> RunResult:
    """Advance one journey (the DAG's mapped task and `beacon journeys advance`)."""
    return advance(con, find(name), clock, env or default_env(), run_id=run_id)


def listing() -> list[dict]:
    """One row per journey file: name, version, entry, nodes, sends, problems."""
    folder = journeys_dir()
    rep = load_dir(folder, catalog())
    rows = [{"name": x.journey.name, "version": x.journey.version, "entry": x.journey.entry.kind,
             "nodes": len(x.journey.nodes), "sends": sum(n.type == "send" for n in x.journey.nodes),
             "enabled": x.journey.enabled, "file": str(x.path.relative_to(folder.parent))} for x in rep.journeys]
    return sorted(rows, key=lambda r: r["name"]) + [{"problem": p} for p in rep.problems]


def status(con: duckdb.DuckDBPyConnection, name: str, journey: Journey | None = None) -> dict:
    """People per node (in flight), sends, exits by reason, goals, the last runs, and the experiments (each split
    with a winner rule: its decisions, and the figures at the clock of the last run). `journey`: the definition
    (default: the project's file of that name)."""
    ensure_tables(con)
    per_node = con.execute("""SELECT version, node_id, transition, count(*) AS people, min(due_at) AS next_due
        FROM journeys.current WHERE journey = ? AND transition <> 'exited' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
                           [name]).df()
    sends = con.execute("""SELECT node_id, transition, coalesce(detail, '') AS reason, count(*) AS n
        FROM journeys.transitions WHERE journey = ? AND transition IN ('sent', 'skipped', 'deferred')
        GROUP BY ALL ORDER BY 1, 2, 3""", [name]).df()
    exits = con.execute("""SELECT reason, sum(n)::BIGINT AS n FROM (
            SELECT coalesce(detail, 'exit_node') AS reason, count(*) AS n FROM journeys.transitions
            WHERE journey = ? AND transition = 'exited' GROUP BY 1
            UNION ALL SELECT coalesce(exit_reason, 'exit_node'), count(*) FROM journeys.finished WHERE journey = ?
            GROUP BY 1) GROUP BY 1 ORDER BY 1""", [name, name]).df()
    runs = con.execute("""SELECT run_id, clock, status, summary FROM journeys.runs WHERE journey = ?
        ORDER BY clock DESC LIMIT 5""", [name]).df()
    exit_d = dict(zip(exits.reason, exits.n.astype(int), strict=True))
    return {"journey": name, "in_flight": int(per_node.people.sum()) if len(per_node) else 0,
            "per_node": per_node.to_dict("records"), "sends": sends.to_dict("records"),
            "exits": exit_d, "goals": exit_d.get("goal", 0), "runs": runs.to_dict("records"),
            "experiments": _experiments(con, name, journey)}


def _experiments(con: duckdb.DuckDBPyConnection, name: str, journey: Journey | None) -> list[dict]:
    """The experiments' state at the clock of the journey's last successful run (the warehouse clock)."""
    if journey is None:
        try:
            journey = find(name)
        except ValueError:  # not a project file (or the files are invalid): the recorded decisions only
            return [{"node": r["node_id"], "decisions": [r]} for r in experiment.decisions(con, name)]
    last = con.execute("SELECT max(clock) FROM journeys.runs WHERE journey = ? AND status = 'succeeded'",
                       [name]).fetchall()[0][0]
    return experiment.status(con, journey, last, default_window_days())


def default_window_days() -> float:
    return settings().measurement_window_days


def preview(con: duckdb.DuckDBPyConnection, j: Journey, clock, env: Env | None = None, sample: int = 10) -> dict:
    """Who would enter now, and how the entrants would split at each branch and split node if they were there
    now: the engine's dry run (nothing is written)."""
    d = dry_run(con, j, clock, env or default_env(), sample=sample)
    return {"journey": d.journey, "version": d.version, "clock": d.clock, "would_enter": d.would_enter,
            "sample": d.sample, "branches": d.outcomes}
