"""One reader per landing format; each turns a file into the load engine's Batches.

A reader is `(spec, path, fs, location) -> Batches`; it raises IngestError for a file it cannot read at
all and marks a row it cannot read (with its reason, message and payload) for the quarantine.
"""

from __future__ import annotations

from collections.abc import Callable

import fsspec

from beacon.ingest.batches import Batches
from beacon.ingest.readers.csv_reader import csv_batches
from beacon.ingest.readers.jsonl_reader import jsonl_batches
from beacon.ingest.readers.parquet_reader import parquet_batches
from beacon.ingest.spec import SourceSpec

Reader = Callable[[SourceSpec, str, fsspec.AbstractFileSystem, str], Batches]
READERS: dict[str, Reader] = {"csv": csv_batches, "jsonl": jsonl_batches, "parquet": parquet_batches}

__all__ = ["READERS", "Reader", "csv_batches", "jsonl_batches", "parquet_batches"]
