"""Parquet files as typed Arrow batches, columns matched like a CSV header, strings checked for UTF-8."""

from __future__ import annotations

import os
from collections.abc import Iterator

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from beacon.ingest.batches import Batches, batch_rows
from beacon.ingest.decode import looks_like
from beacon.ingest.errors import IngestError, safe_text
from beacon.ingest.readers.header import map_header, missing_keys
from beacon.ingest.spec import SourceSpec

PARQUET_MAGIC = b"PAR1"


def _schema(path: str, fs: fsspec.AbstractFileSystem, location: str) -> pa.Schema:
    """The file's Arrow schema, after checking the PAR1 magic at both ends."""
    with fs.open(path, "rb") as fh:
        head = fh.read(4)
        fh.seek(-4, os.SEEK_END)
        tail = fh.read(4)
        if head != PARQUET_MAGIC or tail != PARQUET_MAGIC:
            what = looks_like(head, 4)
            raise IngestError(f"{location}: not a Parquet file (no PAR1 magic at both ends"
                              + (f"; looks like {what}" if what and what != "Parquet" else "") + ")",
                              "binary_content")
        fh.seek(0)
        return pq.ParquetFile(fh).schema_arrow


def parquet_batches(spec: SourceSpec, path: str, fs: fsspec.AbstractFileSystem, location: str) -> Batches:
    schema = _schema(path, fs, location)
    if len(schema.names) > spec.limits.max_columns:
        raise IngestError(f"{location}: {len(schema.names)} columns, more than max_columns "
                          f"{spec.limits.max_columns}", "too_many_columns")
    targets, mapping = map_header(spec, schema.names, location)
    missing = missing_keys(spec, targets)
    if missing:
        raise IngestError(f"{location}: missing required column(s) {', '.join(missing)}", "missing_column",
                          field=missing[0])
    declared = {c.name for c in spec.columns}
    extras = [t for t in targets if t is not None and t not in declared]
    names = list(schema.names)

    def batches() -> Iterator[pa.Table]:
        first = 1
        with fs.open(path, "rb") as fh:
            for rb in pq.ParquetFile(fh).iter_batches(batch_size=batch_rows(), columns=names):
                check_utf8(rb, location, first)
                t = pa.Table.from_batches([rb]).rename_columns([t or f"_ignored_{i}" for i, t in enumerate(targets)])
                yield t.append_column("_line", pa.array(range(first, first + t.num_rows), pa.int64()))
                first += t.num_rows

    return Batches("arrow", extras, batches(), header_mapping=mapping)


def check_utf8(rb: pa.RecordBatch, location: str, first: int) -> None:
    """Parquet strings are not checked by Arrow on read; invalid UTF-8 would be a fatal error inside
    DuckDB (it invalidates the database). Checked here, naming the column."""
    for name, col in zip(rb.schema.names, rb.columns, strict=True):
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            try:
                col.validate(full=True)
            except pa.ArrowInvalid as exc:
                raise IngestError(f"{location}: column {safe_text(name)!r} holds invalid UTF-8 (rows {first}.."
                                  f"{first + rb.num_rows - 1}): {safe_text(exc, 200)}", "encoding",
                                  field=safe_text(name)) from None
