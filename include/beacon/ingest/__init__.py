"""Ingest: connectors (landing files, CRM REST API, email-service webhooks) behind one load engine.

Every connector turns its units (a file, an API page, a webhook batch) into Arrow batches and hands
them to `engine.load_unit`, which owns the raw tables, the load ledger and the quarantine.
"""

from beacon.ingest.core import (
    FileLoad,
    IngestError,
    LoadSummary,
    SourceSpec,
    ensure_raw_schema,
    load_specs,
    load_unit,
)
from beacon.ingest.landing import file_sha256, landing_days, load_file, load_landing

__all__ = ["FileLoad", "IngestError", "LoadSummary", "SourceSpec", "ensure_raw_schema", "file_sha256",
           "landing_days", "load_file", "load_landing", "load_specs", "load_unit"]
