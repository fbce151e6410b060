"""Where personal data lives: one list of (schema, table, column, kind) for every store of the warehouse.

Three sources, merged (docs/privacy.md "What is personal data here"):
- the dbt manifest: `meta.pii` of every model column and every source column (the YAML beside each model and the
  `_<folder>__sources.yml` files);
- the ingest contract (`include/beacon/ingest/sources.yml`): the `pii:` field of every raw column;
- `REGISTRY` below: the tables Beacon's Python writes outside dbt (ML, activation, audiences, journeys,
  measurement, the raw quarantine).

Erasure and access requests find a person's data through this list (`beacon.privacy.locate`), never through a
hand-kept list of their own; a test scans the demo warehouse and fails on a column that looks personal but is not
listed here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from beacon.ingest.spec import PII_KINDS, SPEC_FILE, load_specs

KINDS = PII_KINDS

# Tables written by Beacon's Python (not dbt): "schema.table" -> {column: kind}. A new column there that holds
# personal data is declared here, in the same change that adds it.
REGISTRY: dict[str, dict[str, str]] = {
    # Ingest: a quarantined row is kept whole (the line as read) so it can be fixed and replayed.
    "raw._quarantine": {"payload": "free_text"},
    # ML: scores with reason codes and their feature fingerprints (ml.score_delta), recommendations, the uplift model's scores (beacon.warehouse, ml/, measure).
    "ml.scores": {"customer_id": "identifier"},
    "ml.score_fingerprints": {"customer_id": "identifier"},
    "ml.recommendations": {"customer_id": "identifier"},
    "ml.recommendation_inputs": {"customer_id": "identifier"},
    "ml.uplift": {"customer_id": "identifier"},
    # Activation (beacon.activation.governance, preferences): sync state keeps the last payload sent (mapped
    # fields: e-mail, phone, names) so a remove can be sent with the values the destination has.
    "activation.sync_state": {"customer_id": "identifier", "payload": "free_text"},
    "activation.sync_log": {"customer_id": "identifier"},
    "activation.control_group": {"customer_id": "identifier"},
    "activation.suppression_list": {"customer_id": "identifier", "email": "email"},
    "activation.preferences": {"customer_id": "identifier", "email": "email", "phone": "phone"},
    # Audience membership history (beacon.audiences): `qualifying` holds the segment's values for the member.
    "audiences.membership_events": {"customer_id": "identifier", "qualifying": "free_text"},
    # Journeys (beacon.journeys.store): state, history, actions; static_lists and current are views over them.
    # `detail` is free text (a delivery error may quote the address); `value` is what an action set or added.
    "journeys.transitions": {"customer_id": "identifier", "detail": "free_text"},
    "journeys.finished": {"customer_id": "identifier"},
    "journeys.actions": {"customer_id": "identifier", "value": "free_text"},
    "journeys.events": {"customer_id": "identifier"},
    "journeys.current": {"customer_id": "identifier", "detail": "free_text"},
    "journeys.static_lists": {"customer_id": "identifier"},
    # Measurement (beacon.measure.warehouse): the global control group of each period.
    "measurement.global_control": {"customer_id": "identifier"},
}


@dataclass(frozen=True, order=True)
class PiiColumn:
    """One column that holds personal data, with where the tag was declared."""

    schema: str
    table: str
    column: str
    kind: str
    declared_in: str  # "dbt:<model or source unique id>", "sources.yml", "registry"

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.table}"


class CatalogError(ValueError):
    """A tag that is not one of KINDS, or two declarations that disagree on a column's kind."""


def check_kind(kind: object, where: str) -> str:
    """`kind` when it is one of KINDS; else a CatalogError naming `where`."""
    if kind not in KINDS:
        raise CatalogError(f"{where}: unknown pii kind {kind!r} (one of {', '.join(KINDS)})")
    return str(kind)


def _column_meta(col: dict) -> dict:
    """A column's meta from the manifest: `meta:` and `config: {meta: }` (dbt 1.10+ writes both)."""
    return {**(col.get("config") or {}).get("meta", {}), **(col.get("meta") or {})}


def from_manifest(manifest: dict) -> list[PiiColumn]:
    """Every model and source column of the dbt manifest whose meta has `pii`."""
    out = []
    nodes = {**manifest.get("nodes", {}), **manifest.get("sources", {})}
    for uid, node in sorted(nodes.items()):
        if node.get("resource_type") not in ("model", "source", "snapshot", "seed"):
            continue
        table = node.get("identifier") if node.get("resource_type") == "source" else None
        table = table or node.get("alias") or node["name"]
        for cname, col in (node.get("columns") or {}).items():
            kind = _column_meta(col).get("pii")
            if kind is not None:
                out.append(PiiColumn(node["schema"], table, cname, check_kind(kind, f"{uid}, column {cname}"),
                                     f"dbt:{uid}"))
    return out


def from_sources(path: Path = SPEC_FILE, schema: str = "raw") -> list[PiiColumn]:
    """Every raw column of the ingest contract with a `pii:` field (validated by the spec loader)."""
    return [PiiColumn(schema, name, c.name, c.pii, "sources.yml")
            for name, spec in load_specs(path).items() for c in spec.columns if c.pii]


def from_registry(registry: dict[str, dict[str, str]] | None = None) -> list[PiiColumn]:
    """The tables Beacon's Python writes (`REGISTRY`)."""
    out = []
    for relation, cols in (REGISTRY if registry is None else registry).items():
        schema, _, table = relation.partition(".")
        if not table:
            raise CatalogError(f"registry: {relation!r} is not schema.table")
        out += [PiiColumn(schema, table, c, check_kind(k, f"registry {relation}.{c}"), "registry")
                for c, k in cols.items()]
    return out


def merge(columns: Iterable[PiiColumn]) -> list[PiiColumn]:
    """One entry per (schema, table, column); a column declared twice must carry the same kind."""
    seen: dict[tuple[str, str, str], PiiColumn] = {}
    for c in columns:
        key = (c.schema, c.table, c.column)
        if key in seen and seen[key].kind != c.kind:
            raise CatalogError(f"{c.relation}.{c.column}: tagged {seen[key].kind!r} in {seen[key].declared_in} "
                               f"but {c.kind!r} in {c.declared_in}")
        seen.setdefault(key, c)
    return sorted(seen.values())


def load_manifest(path: Path | None = None) -> dict:
    """The dbt manifest at `path`, else the project's (parsed first when stale)."""
    if path is None:
        from beacon.dbt import ensure_manifest

        path = ensure_manifest()
    return json.loads(Path(path).read_text())


def catalog(manifest: dict | Path | None = None, sources: Path = SPEC_FILE,
            registry: dict[str, dict[str, str]] | None = None) -> list[PiiColumn]:
    """The merged list: dbt manifest + sources.yml + the registry of Python-written tables."""
    doc = manifest if isinstance(manifest, dict) else load_manifest(manifest)
    return merge([*from_manifest(doc), *from_sources(sources), *from_registry(registry)])


@lru_cache(maxsize=4)
def _cached(manifest_path: str, manifest_mtime: float, sources: str, sources_mtime: float) -> tuple[PiiColumn, ...]:
    return tuple(catalog(Path(manifest_path), Path(sources)))


def cached_catalog(sources: Path = SPEC_FILE) -> list[PiiColumn]:
    """`catalog()` of the project's manifest, read again only when the manifest or sources.yml changed (syncs
    ask for it on every run)."""
    from beacon.dbt import ensure_manifest

    path = ensure_manifest()
    return list(_cached(str(path), path.stat().st_mtime, str(sources), Path(sources).stat().st_mtime))


def kinds_of(columns: Iterable[str], relations: Iterable[str], cat: list[PiiColumn]) -> dict[str, str]:
    """column -> kind for the given column names, looked up in `relations` ("schema.table") in order: the first
    relation that tags a column gives its kind. Columns no relation tags are left out."""
    order = list(relations)
    by_rel: dict[str, dict[str, str]] = {}
    for c in cat:
        by_rel.setdefault(c.relation, {})[c.column] = c.kind
    out = {}
    for col in columns:
        for rel in order:
            if col in by_rel.get(rel, {}):
                out[col] = by_rel[rel][col]
                break
    return out
