"""Audiences are dbt models under models/segments with `meta.audience`; this module discovers them
from the dbt manifest and checks the contract, naming the file and field of any mistake."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CHANNELS = frozenset({"file", "email", "webhook", "ads"})
REFRESH = frozenset({"hourly", "daily", "weekly"})
REQUIRED = ("name", "description", "owner", "channels", "priority", "holdout_pct", "refresh")


class ContractError(ValueError):
    """A segment whose audience contract is malformed."""


@dataclass(frozen=True)
class Audience:
    """One deliverable audience: a segment table plus its delivery settings."""

    name: str
    description: str
    owner: str
    channels: tuple[str, ...]
    priority: int
    holdout_pct: float
    refresh: str
    relation: str  # schema.table in the warehouse
    model: str
    path: str


def _check(meta: dict, where: str) -> None:
    for key in REQUIRED:
        if key not in meta:
            raise ContractError(f"{where}: meta.audience.{key} is missing")
    if not isinstance(meta["channels"], list) or not meta["channels"]:
        raise ContractError(f"{where}: meta.audience.channels must be a non-empty list")
    unknown = [c for c in meta["channels"] if c not in CHANNELS]
    if unknown:
        raise ContractError(f"{where}: meta.audience.channels has unknown channel(s) {unknown}; known: {sorted(CHANNELS)}")
    if not isinstance(meta["priority"], int):
        raise ContractError(f"{where}: meta.audience.priority must be an integer")
    hp = meta["holdout_pct"]
    if not isinstance(hp, int | float) or not 0 <= hp < 100:
        raise ContractError(f"{where}: meta.audience.holdout_pct must be a number in [0, 100), got {hp!r}")
    if meta["refresh"] not in REFRESH:
        raise ContractError(f"{where}: meta.audience.refresh must be one of {sorted(REFRESH)}")


def discover(manifest_path: Path) -> list[Audience]:
    """All audiences in the manifest, sorted by priority (highest first) then name."""
    manifest = json.loads(Path(manifest_path).read_text())
    found: dict[str, Audience] = {}
    for node in manifest["nodes"].values():
        if node.get("resource_type") != "model" or not node["original_file_path"].startswith("models/segments/"):
            continue
        meta = (node.get("config", {}).get("meta") or node.get("meta") or {}).get("audience")
        where = f"{node['original_file_path']} (model {node['name']})"
        if meta is None:
            raise ContractError(f"{where}: segment has no meta.audience block in its YAML")
        _check(meta, where)
        if "customer_id" not in node.get("columns", {}):
            raise ContractError(f"{where}: the key column customer_id is not declared in the YAML")
        if meta["name"] in found:
            raise ContractError(f"{where}: meta.audience.name {meta['name']!r} is already used by {found[meta['name']].path}")
        found[meta["name"]] = Audience(
            name=meta["name"], description=meta["description"], owner=meta["owner"], channels=tuple(meta["channels"]),
            priority=int(meta["priority"]), holdout_pct=float(meta["holdout_pct"]), refresh=meta["refresh"],
            relation=f"{node['schema']}.{node.get('alias') or node['name']}", model=node["name"],
            path=node["original_file_path"],
        )
    return sorted(found.values(), key=lambda a: (-a.priority, a.name))
