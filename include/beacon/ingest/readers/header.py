"""A header (CSV first line, Parquet schema) matched onto the source's declared columns."""

from __future__ import annotations

from beacon.ingest.errors import IngestError, safe_text
from beacon.ingest.spec import SourceSpec, column_name


def map_header(spec: SourceSpec, header: list[str], location: str) -> tuple[list[str | None], dict[str, str]]:
    """Each header field's target column: declared columns matched after trimming and case-folding, other
    fields by their safe column name (schema drift). Two fields with one target reject the file."""
    declared = {c.name.casefold(): c.name for c in spec.columns}
    targets: list[str | None] = []
    seen: dict[str, int] = {}
    mapping: dict[str, str] = {}
    for i, h in enumerate(header):
        norm = h.strip().casefold()
        t = declared.get(norm) or (column_name(h) if norm else None)
        targets.append(t)
        if t is None:
            continue
        if t in seen:
            j = seen[t]
            raise IngestError(f"{location}: ambiguous header: column {j + 1} {safe_text(header[j])!r} and column "
                              f"{i + 1} {safe_text(h)!r} both map to {t!r}", "ambiguous_header", line=1, field=t)
        seen[t] = i
        if h != t:
            mapping[safe_text(h)] = t
    return targets, mapping


def missing_keys(spec: SourceSpec, targets: list[str | None]) -> list[str]:
    """The source's key columns that no header field maps to."""
    return [k for k in spec.key if k not in targets]
