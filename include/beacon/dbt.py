"""Run dbt in-process against the warehouse, with telemetry off and the project's profile."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from beacon.config import Settings, settings

# The segments that read the ML scores (and their tests): built after the ML DAG scores, not with the marts.
SCORE_BASED = "source:ml.scores+"
# The profile and target of profiles.yml every dbt invocation names, Beacon's own (`run`) and Cosmos' alike: dbt
# reuses a saved parse (partial parsing) only when the command line names the same profile and target, so a
# parse without them made each Cosmos build parse the whole project again. The target is TARGET, or `encrypted`
# when a warehouse key is configured (dbt_target: the same for both, so the saved parse is still reused).
PROFILE, TARGET = "beacon", "local"
# The measurement marts (assignments and outcomes): built after each activation run, which writes what they read.
MEASUREMENT = "tag:measurement"


def dbt_env(s: Settings | None = None) -> dict[str, str]:
    """Environment dbt and Cosmos need: the warehouse path, and no usage telemetry (offline, private)."""
    s = s or settings()
    return {
        "BEACON_DBT_WAREHOUSE_PATH": str(s.warehouse_path),  # read by profiles.yml only
        # An encrypted warehouse is ATTACHed under the name a plain open gives it (the file's stem), so the views
        # dbt wrote resolve either way; the key itself is never in dbt's environment or profile (the plugin reads it).
        "BEACON_DBT_WAREHOUSE_ALIAS": s.warehouse_path.stem,
        "BEACON_DBT_TARGET": dbt_target(s),
        # The outcome window: one setting for the measurement mart (dbt_project.yml) and the report (Settings).
        "BEACON_MEASUREMENT_WINDOW_DAYS": repr(float(s.measurement_window_days)),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
        "DBT_PROFILES_DIR": str(s.dbt_project_dir),
    }


def dbt_target(s: Settings | None = None) -> str:
    """The profile's target: `spark` on the spark engine (BEACON_ENGINE, docs/scale.md); else `encrypted` when a
    warehouse key is configured (docs/privacy.md), else `local`."""
    s = s or settings()
    if s.engine == "spark":
        return "spark"
    return "encrypted" if (s.warehouse_key or s.warehouse_key_conn) else TARGET


class _DefaultDispatch:
    """dbt's `adapter.dispatch` outside dbt: the `default__` form (DuckDB's SQL) of a cross-engine macro."""

    module = None

    def dispatch(self, name: str, _namespace: str | None = None):
        return getattr(self.module, f"default__{name}")


@lru_cache(maxsize=8)
def _macro_file(path: str, mtime: float):
    """A macro file of the dbt project as a Jinja module renderable outside dbt, with ref(name) = marts.<name> and
    the cross-engine macros (macros/cross_engine.sql) in their DuckDB form.

    Anything else the macro might use fails loudly (StrictUndefined) rather than silently rendering empty."""
    import jinja2

    adapter = _DefaultDispatch()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.globals.update(ref=lambda name: f"marts.{name}", adapter=adapter, **{"return": lambda value: value})
    cross = Path(path).with_name("cross_engine.sql")
    adapter.module = env.from_string(cross.read_text() + "\n" + Path(path).read_text()).module
    return adapter.module


def macros(name: str, s: Settings | None = None):
    """The macros of `dbt_project/macros/<name>.sql`, rendered with plain Jinja: Python that needs a rule the
    dbt project defines (email normalization, campaign outcomes) calls the same macro instead of restating it.
    Only macros written in plain Jinja can be called this way: ref resolves to marts.<name>, a cross-engine macro
    (macros/cross_engine.sql) to its DuckDB form; var is undefined."""
    path = (s or settings()).dbt_project_dir / "macros" / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the dbt macros are missing")
    return _macro_file(str(path), path.stat().st_mtime)


def executable() -> str:
    """The `dbt` command installed beside this Python (the project's environment), else the one on PATH."""
    here = Path(sys.executable).parent / "dbt"
    return str(here) if here.exists() else shutil.which("dbt") or "dbt"


def project_flags(s: Settings) -> list[str]:
    """The flags that point dbt at this project, its profile and the target folder."""
    return ["--project-dir", str(s.dbt_project_dir), "--profiles-dir", str(s.dbt_project_dir),
            "--target-path", str(s.dbt_target_dir), "--profile", PROFILE, "--target", dbt_target(s)]


def run(args: list[str], s: Settings | None = None, quiet: bool = False) -> bool:
    """`dbt <args>` in this process; True on success. `quiet` keeps stdout for errors only (JSON callers)."""
    from dbt.cli.main import dbtRunner  # heavy import, only when dbt actually runs

    s = s or settings()
    os.environ.update(dbt_env(s))
    s.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        res = dbtRunner().invoke([*(["--quiet"] if quiet else []), *args, *project_flags(s)])
    finally:
        release_warehouse()
    return bool(res.success)


def release_warehouse() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process after a run.

    dbt-duckdb holds its environment (and DuckDB's file lock) for the life of the process, so a later
    `dbt` subprocess (the warehouse DAG's producer) or another process could not open the warehouse.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager as manager

    with manager._LOCK:
        if manager._ENV is not None:
            manager._ENV.close()
            manager._ENV = None


def manifest_is_stale(s: Settings | None = None) -> bool:
    """True when manifest.json is missing or older than any file of the dbt project."""
    s = s or settings()
    if not s.manifest_path.exists():
        return True
    built = s.manifest_path.stat().st_mtime
    for sub in ("models", "macros", "seeds", "tests", "dbt_project.yml"):
        p = s.dbt_project_dir / sub
        files = [p] if p.is_file() else (p.rglob("*") if p.exists() else [])
        if any(f.is_file() and f.stat().st_mtime > built for f in files):
            return True
    return False


def ensure_manifest(s: Settings | None = None) -> Path:
    """Parse the project when needed, so DAGs render from a current manifest without running dbt at parse time."""
    s = s or settings()
    if manifest_is_stale(s) and not run(["parse"], s, quiet=True):  # quiet: errors still print
        raise RuntimeError(f"dbt parse failed for {s.dbt_project_dir}: see the dbt output above")
    return s.manifest_path


def last_build_results(s: Settings | None = None, group: str = "dbt") -> Path:
    """Where the DAGs keep the run_results.json of a task group's latest `dbt build` (`dbt`: the warehouse DAG's
    marts build; `dbt_scored`: the ML DAG's build of the score-based segments)."""
    return (s or settings()).dbt_target_dir / "last_build" / group / "run_results.json"


def keep_target_results(group: str, s: Settings | None = None) -> Path:
    """After `run(["build", ...])` in this project's target folder: keep its run_results.json as `group`'s
    latest build (as the Cosmos callback does for the task groups), so the measurement build is checked too."""
    s = s or settings()
    dst = last_build_results(s, group)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(s.dbt_target_dir / "run_results.json", dst)
    record_unit_tests(group, s)
    return dst


def keep_run_results(project_dir: str, group: str = "dbt", **_) -> None:
    """Cosmos callback: Cosmos runs dbt in a temporary copy of the project and deletes it afterwards; keep the
    build's run_results.json (every model, unit test and data test with its status) for operators and tests."""
    src = Path(project_dir) / "target" / "run_results.json"
    dst = last_build_results(group=group)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    record_unit_tests(group)


# dbt unit tests check the SQL of the models against fixed inputs, never the day's data: their outcome depends only
# on the project's files, the versions of dbt, its DuckDB adapter and DuckDB, and the vars dbt is given. A daily
# build runs them when that changed since they last all passed in the same task group's build (a fresh deployment,
# a code change, an upgrade), and otherwise leaves them out; the data tests run in every build.
UNIT_TESTS_PASSED = "unit_tests_passed.json"
_NOT_CODE_ENV = ("BEACON_DBT_WAREHOUSE_PATH", "BEACON_DBT_WAREHOUSE_ALIAS", "DBT_PROFILES_DIR")


def unit_test_key(group: str, s: Settings | None = None) -> str:
    """A digest of what the unit tests of `group`'s build depend on (see above); never the warehouse's data."""
    from importlib.metadata import version

    s = s or settings()
    root = s.dbt_project_dir
    skip = (root / "target", root / "logs", s.dbt_target_dir)
    h = hashlib.sha256(group.encode())
    for f in sorted(root.rglob("*")):
        if f.is_file() and not any(f.is_relative_to(d) for d in skip):
            h.update(f"\0{f.relative_to(root).as_posix()}\0".encode())
            h.update(f.read_bytes())
    for pkg in ("dbt-core", "dbt-duckdb", "duckdb"):
        h.update(f"\0{pkg}={version(pkg)}".encode())
    for k, v in sorted(dbt_env(s).items()):
        if k not in _NOT_CODE_ENV:
            h.update(f"\0{k}={v}".encode())
    return h.hexdigest()


def _unit_tests_marker(group: str, s: Settings) -> Path:
    return last_build_results(s, group).with_name(UNIT_TESTS_PASSED)


def forget_unit_tests(s: Settings | None = None) -> int:
    """Forget every task group's record of passed unit tests (a new warehouse is a fresh deployment: its first
    builds run them). Returns how many records were removed."""
    s = s or settings()
    found = list((s.dbt_target_dir / "last_build").glob(f"*/{UNIT_TESTS_PASSED}"))
    for f in found:
        f.unlink(missing_ok=True)
    return len(found)


def unit_tests_due(group: str, s: Settings | None = None) -> bool:
    """True unless `group`'s unit tests all passed in an earlier build of the same code (unit_test_key)."""
    s = s or settings()
    try:
        return json.loads(_unit_tests_marker(group, s).read_text()).get("key") != unit_test_key(group, s)
    except (OSError, ValueError, AttributeError):
        return True


def record_unit_tests(group: str, s: Settings | None = None) -> bool:
    """After `group`'s build (its run_results.json kept): remember the code's key when the build ran the unit
    tests and every node passed; forget it when a build with unit tests did not. True when recorded."""
    s = s or settings()
    results = json.loads(last_build_results(s, group).read_text())
    args = results.get("args", {})
    kinds, left_out = args.get("resource_types") or [], args.get("exclude_resource_types") or []
    if (kinds and "unit_test" not in kinds) or "unit_test" in left_out:
        return False  # a build without unit tests says nothing about them
    marker = _unit_tests_marker(group, s)
    ran = [r for r in results.get("results", []) if r.get("unique_id", "").startswith("unit_test.")]
    # "no-op": a node with nothing to run (an exposure in dbt 1.11's build), not a failure
    if not all(r.get("status") in ("pass", "success", "no-op") for r in results.get("results", [])):
        marker.unlink(missing_ok=True)
        return False
    marker.write_text(json.dumps({"key": unit_test_key(group, s), "unit_tests": len(ran),
                                  "generated_at": results.get("metadata", {}).get("generated_at")}))
    return True


def with_unit_tests(flags: list[str], due: bool) -> list[str]:
    """A `dbt build` command line's flags with `--resource-type unit_test` present when `due`, absent when not;
    every other flag (the other resource types included) as it was."""
    out: list[str] = []
    i = 0
    while i < len(flags):
        if flags[i] == "--resource-type" and i + 1 < len(flags) and flags[i + 1] == "unit_test":
            i += 2
            continue
        out.append(flags[i])
        i += 1
    return [*out, "--resource-type", "unit_test"] if due else out


def unit_test_args(group: str, s: Settings | None = None) -> list[str]:
    """Arguments of a `run(["build", ...])` (which runs every resource type): leave the unit tests out unless due."""
    return [] if unit_tests_due(group, s) else ["--exclude-resource-type", "unit_test"]


def choose_unit_tests(group: str):
    """A pre-execute hook for the Cosmos producer of `group`: decide at run time (not when the DAG file is parsed)
    whether its build runs the unit tests."""

    def hook(context) -> None:
        task = context["task"]
        task.dbt_cmd_flags = with_unit_tests(list(task.dbt_cmd_flags or []), unit_tests_due(group))

    return hook


def customer_features_sql(cutoff: datetime, s: Settings | None = None) -> str:
    """Every customer's features as of `cutoff`: the dbt macro `customer_features_at` (the one definition of the
    customer features, behind the mart customer_features), rendered for DuckDB on the marts schema."""
    return str(macros("customer_features", s).customer_features_at(f"TIMESTAMP '{cutoff:%Y-%m-%d %H:%M:%S}'"))
