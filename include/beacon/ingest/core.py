"""The load engine's public names, where connectors and tests have always imported them from.

The engine itself lives in modules of one job each: `spec` (sources.yml), `errors` (IngestError and
messages), `results` (FileLoad, LoadSummary), `ddl` (the raw schema), `sqlgen` (staging and
classification SQL), `batches` (the reader contract), `ledger` (loaded content and failures) and
`engine` (`load_unit`: one transaction per unit).
"""

from __future__ import annotations

from beacon.ingest.batches import Batches, batch_rows
from beacon.ingest.ddl import ensure_raw_schema
from beacon.ingest.decode import json_depth_exceeds
from beacon.ingest.engine import load_unit
from beacon.ingest.errors import MAX_MESSAGE_CHARS, IngestError, failure_message, safe_text
from beacon.ingest.files import regular_file_size
from beacon.ingest.ledger import already_loaded, record_failure
from beacon.ingest.results import FileLoad, LoadSummary
from beacon.ingest.spec import META_COLUMNS, SPEC_FILE, Column, Limits, SourceSpec, column_name, load_specs

__all__ = ["MAX_MESSAGE_CHARS", "META_COLUMNS", "SPEC_FILE", "Batches", "batch_rows", "Column", "FileLoad",
           "IngestError", "Limits", "LoadSummary", "SourceSpec", "already_loaded", "column_name",
           "ensure_raw_schema", "failure_message", "json_depth_exceeds", "load_specs", "load_unit",
           "record_failure", "regular_file_size", "safe_text"]
