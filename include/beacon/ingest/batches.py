"""The contract between a reader and the load engine: a unit's rows as Arrow batches of one shape."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from beacon.config import settings


def batch_rows() -> int:
    """Rows per batch a reader hands over (BEACON_INGEST_BATCH_ROWS): several JSON chunks, so DuckDB scans a batch
    on all cores, and few enough that the batches in flight stay small (docs/scale.md, Memory)."""
    return settings().ingest_batch_rows


@dataclass
class Batches:
    """A unit's rows: their shape ('text' | 'json' | 'arrow'), the extra fields found, and the batches."""

    shape: str
    extra_columns: list[str]
    batches: Iterator[pa.Table]
    header_mapping: dict[str, str] = field(default_factory=dict)
    encoding: str = ""


def prefetch(batches: Iterator[pa.Table], depth: int = 2) -> Iterator[pa.Table]:
    """Read the next batches in a thread while DuckDB classifies the current one (Arrow releases the GIL). At most
    `depth` batches wait in the queue, and one more is being read: depth + 2 batches in memory at most."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done, stop = object(), threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for b in batches:
                if not put(b):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it in the loading thread
            put(exc)

    threading.Thread(target=work, daemon=True).start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # the consumer stopped (done or failed): let the reader thread end
