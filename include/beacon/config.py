"""One place for paths and settings: local defaults, each overridable by an environment variable.

Imports nothing of ours (bottom of the import graph).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# include/beacon/config.py -> project root is two levels above the package folder.
_DEFAULT_HOME = Path(__file__).resolve().parents[2]


def _path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


@dataclass(frozen=True)
class Settings:
    """Resolved locations of everything Beacon reads and writes."""

    home: Path
    data_dir: Path
    landing_dir: Path
    truth_dir: Path
    warehouse_path: Path
    exports_dir: Path
    registry_dir: Path
    dbt_project_dir: Path
    dbt_target_dir: Path

    @property
    def manifest_path(self) -> Path:
        return self.dbt_target_dir / "manifest.json"


def settings() -> Settings:
    """Read the settings now (environment variables win over defaults)."""
    home = _path("BEACON_HOME", _DEFAULT_HOME)
    data = _path("BEACON_DATA_DIR", home / "data")
    dbt_dir = _path("BEACON_DBT_PROJECT_DIR", home / "dbt_project")
    return Settings(
        home=home,
        data_dir=data,
        landing_dir=_path("BEACON_LANDING_DIR", data / "landing"),
        truth_dir=_path("BEACON_TRUTH_DIR", data / "truth"),
        warehouse_path=_path("BEACON_WAREHOUSE", data / "warehouse" / "beacon.duckdb"),
        exports_dir=_path("BEACON_EXPORTS_DIR", data / "exports"),
        registry_dir=_path("BEACON_REGISTRY_DIR", data / "registry"),
        dbt_project_dir=dbt_dir,
        dbt_target_dir=_path("BEACON_DBT_TARGET_DIR", dbt_dir / "target"),
    )


@contextmanager
def override_env(**values: str) -> Iterator[None]:
    """Set environment variables for a block (e.g. point Beacon at another data folder), then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
