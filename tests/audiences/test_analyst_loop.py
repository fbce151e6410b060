"""The analyst's loop: plain `dbt` from dbt_project/ works with no environment variable (README "For analysts").

dbt reads profiles.yml from the working directory; the profile defaults to Beacon's own warehouse file
(BEACON_WAREHOUSE, else BEACON_DATA_DIR/warehouse/beacon.duckdb, else ../data/warehouse/beacon.duckdb).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DBT = str(Path(sys.executable).parent / "dbt")


def _scrubbed(home: Path) -> dict[str, str]:
    """Only HOME (an empty folder, so no ~/.dbt/profiles.yml) and PATH: none of Beacon's or dbt's variables."""
    return {"HOME": str(home), "PATH": os.defpath}


def test_plain_dbt_parse_from_the_project_folder_needs_no_environment(tmp_path):
    # --target-path/--log-path only keep this checkout's target/ untouched; the profile is the project's own.
    out = subprocess.run([DBT, "parse", "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path)],
                         cwd=ROOT / "dbt_project", env=_scrubbed(tmp_path), capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Env var required" not in out.stdout
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    assert "model.beacon.rfm_loyal" in manifest["nodes"]


def test_plain_dbt_connects_to_the_projects_warehouse_by_default(tmp_path):
    # A copy of the project in a checkout-like folder: the default path (../data/warehouse/beacon.duckdb)
    # must land in that copy's data folder, where `beacon demo` builds the warehouse.
    project = tmp_path / "checkout" / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    warehouse = tmp_path / "checkout" / "data" / "warehouse"
    warehouse.mkdir(parents=True)
    out = subprocess.run([DBT, "debug"], cwd=project, env=_scrubbed(tmp_path), capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "path: ../data/warehouse/beacon.duckdb" in out.stdout
    assert (warehouse / "beacon.duckdb").exists()


def test_beacon_variables_still_choose_the_warehouse(tmp_path):
    # BEACON_DATA_DIR moves the default like it moves Beacon's (beacon.config.settings).
    project = tmp_path / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    (tmp_path / "elsewhere" / "warehouse").mkdir(parents=True)
    env = {**_scrubbed(tmp_path), "BEACON_DATA_DIR": str(tmp_path / "elsewhere")}
    out = subprocess.run([DBT, "debug"], cwd=project, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "elsewhere" / "warehouse" / "beacon.duckdb").exists()
