"""Landing-zone connector: CSV, JSON lines and Parquet files (gzip too) from a local folder or any fsspec URL.

Its public names, where the DAGs, the CLI and the tests import them from. The work is done in `run`
(the run loop over dated folders), `readers/` (one reader per format), `decode` (encodings, binary
content), `files` (sizes, hashes) and `connection` (the Airflow connection naming the landing root).
"""

from __future__ import annotations

from beacon.ingest.connection import LANDING_CONN_ID, landing_from_connection
from beacon.ingest.files import file_sha256
from beacon.ingest.readers.jsonl_reader import DRIFT_SAMPLE_LINES
from beacon.ingest.run import landing_days, load_file, load_landing, max_event_time_for

__all__ = ["DRIFT_SAMPLE_LINES", "LANDING_CONN_ID", "file_sha256", "landing_days", "landing_from_connection",
           "load_file", "load_landing", "max_event_time_for"]
