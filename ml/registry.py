"""A project-local model registry: one folder per model version with the LightGBM file and metadata."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb


def save(registry_dir: Path, model_name: str, version: str, booster: lgb.Booster, metadata: dict) -> Path:
    """Write the model and its metadata; mark it as the current champion."""
    folder = Path(registry_dir) / model_name / version
    folder.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(folder / "model.txt"))
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))
    (Path(registry_dir) / model_name / "CHAMPION").write_text(version)
    return folder


def load_champion(registry_dir: Path, model_name: str) -> tuple[str, lgb.Booster, dict]:
    """The champion's version, booster and metadata."""
    base = Path(registry_dir) / model_name
    champion = base / "CHAMPION"
    if not champion.exists():
        raise FileNotFoundError(f"no trained {model_name} model in {base}: run the ML DAG's training task first")
    version = champion.read_text().strip()
    booster = lgb.Booster(model_file=str(base / version / "model.txt"))
    return version, booster, json.loads((base / version / "metadata.json").read_text())
