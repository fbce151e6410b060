"""A project-local model registry: <registry>/<model>/<version>/ holds model.txt and metadata.json;
<model>/CHAMPION names the version that scores, and <model>/history.json records every champion change
(so a rollback returns to the previous champion)."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import lightgbm as lgb


def _write(path: Path, text: str) -> None:
    """Replace a file atomically (a crash never leaves half a pointer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def save(registry_dir: Path, model_name: str, version: str, booster: lgb.Booster, metadata: dict) -> Path:
    """Write a version's model and metadata (it does not become champion: see set_champion)."""
    folder = Path(registry_dir) / model_name / version
    folder.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(folder / "model.txt"), num_iteration=metadata.get("best_iteration") or None)
    _write(folder / "metadata.json", json.dumps(metadata, indent=2, default=str))
    return folder


def champion_version(registry_dir: Path, model_name: str) -> str | None:
    """The champion's version, or None before the first training."""
    p = Path(registry_dir) / model_name / "CHAMPION"
    return p.read_text().strip() if p.exists() else None


def history(registry_dir: Path, model_name: str) -> list[dict]:
    """Champion changes, oldest first: version, at, action (promote / rollback), reason."""
    p = Path(registry_dir) / model_name / "history.json"
    return json.loads(p.read_text()) if p.exists() else []


def set_champion(registry_dir: Path, model_name: str, version: str, action: str = "promote", reason: str = "") -> None:
    """Make `version` the champion and record the change."""
    if not (Path(registry_dir) / model_name / version / "model.txt").exists():
        raise ValueError(f"{model_name} has no version {version!r} (known: {', '.join(versions(registry_dir, model_name)) or 'none'})")
    entries = history(registry_dir, model_name)
    before = champion_version(registry_dir, model_name)
    if not entries and before is not None:  # a champion from before the history existed stays reachable
        entries.append({"version": before, "at": None, "action": "promote", "reason": "champion before history"})
    entries.append({"version": version, "at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "action": action, "reason": reason})
    _write(Path(registry_dir) / model_name / "history.json", json.dumps(entries, indent=2))
    _write(Path(registry_dir) / model_name / "CHAMPION", version)


def metadata(registry_dir: Path, model_name: str, version: str) -> dict:
    """A version's metadata."""
    p = Path(registry_dir) / model_name / version / "metadata.json"
    if not p.exists():
        raise ValueError(f"{model_name} has no version {version!r}")
    return json.loads(p.read_text())


def versions(registry_dir: Path, model_name: str) -> list[str]:
    """The versions of a model, oldest first (by training time)."""
    base = Path(registry_dir) / model_name
    if not base.is_dir():
        return []
    found = [p.name for p in base.iterdir() if (p / "metadata.json").exists()]
    return sorted(found, key=lambda v: (metadata(registry_dir, model_name, v).get("trained_at", ""), v))


def models(registry_dir: Path) -> list[str]:
    """Model names with at least one version."""
    base = Path(registry_dir)
    return sorted(p.name for p in base.iterdir() if p.is_dir() and versions(base, p.name)) if base.is_dir() else []


def load(registry_dir: Path, model_name: str, version: str) -> tuple[lgb.Booster, dict]:
    """A version's booster and metadata."""
    meta = metadata(registry_dir, model_name, version)
    return lgb.Booster(model_file=str(Path(registry_dir) / model_name / version / "model.txt")), meta


def load_champion(registry_dir: Path, model_name: str) -> tuple[str, lgb.Booster, dict]:
    """The champion's version, booster and metadata."""
    version = champion_version(registry_dir, model_name)
    if version is None:
        raise FileNotFoundError(f"no trained {model_name} model in {Path(registry_dir) / model_name}: "
                                "run the ML DAG's training task first")
    booster, meta = load(registry_dir, model_name, version)
    return version, booster, meta


def promote(registry_dir: Path, model_name: str, version: str, reason: str = "manual promote") -> dict:
    """Make a registered version the champion by hand (e.g. a challenger a person has reviewed)."""
    before = champion_version(registry_dir, model_name)
    set_champion(registry_dir, model_name, version, "promote", reason)
    return {"model": model_name, "champion": version, "previous": before}


def rollback(registry_dir: Path, model_name: str, reason: str = "manual rollback") -> dict:
    """Return to the champion before the current one."""
    current = champion_version(registry_dir, model_name)
    if current is None:
        raise ValueError(f"{model_name} has no champion to roll back")
    # Replay the history as a stack: a promotion pushes, a rollback pops; the target is the one below the top.
    stack: list[str] = []
    for e in history(registry_dir, model_name):
        if e["action"] == "rollback":
            stack = stack[:-1]
            if not stack or stack[-1] != e["version"]:
                stack.append(e["version"])
        elif not stack or stack[-1] != e["version"]:
            stack.append(e["version"])
    earlier = [v for v in stack[:-1] if (Path(registry_dir) / model_name / v / "model.txt").exists()]
    if not earlier:
        raise ValueError(f"{model_name} has no earlier champion than {current}")
    target = earlier[-1]
    set_champion(registry_dir, model_name, target, "rollback", reason)
    return {"model": model_name, "champion": target, "previous": current}


def listing(registry_dir: Path, model_name: str | None = None) -> list[dict]:
    """One row per version: model, version, trained_at, training window, primary metric, champion flag."""
    rows = []
    for m in [model_name] if model_name else models(registry_dir):
        champ = champion_version(registry_dir, m)
        for v in versions(registry_dir, m):
            meta = metadata(registry_dir, m, v)
            rows.append({"model": m, "version": v, "champion": v == champ, "trained_at": meta.get("trained_at"),
                         "as_of": meta.get("as_of"), "train_cutoff": meta.get("train_cutoff"),
                         "metric": meta.get("primary_metric"),
                         "value": (meta.get("metrics") or {}).get(meta.get("primary_metric", ""), None),
                         "decision": (meta.get("decision") or {}).get("reason")})
    return rows
