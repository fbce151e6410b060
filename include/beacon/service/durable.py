"""Durable landing writes for the request path: an event is acknowledged only once it is on disk.

`DurableLog` appends JSON lines to an open file in `<landing>/_spool/` and fsyncs them in group commits
(every request waiting at that moment shares one fsync, so throughput does not pay one fsync per event).
A file is closed after `rotate_seconds` or `rotate_bytes` and renamed into the landing day folder, where
the ingest finds it: the loader never sees a half-written file, so it never loads one twice as it grows.
After a crash, `recover()` renames what the spool holds (cut after its last complete line: a line is
acknowledged only after its fsync, so a torn tail was never acknowledged).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

from beacon.fsio import fsync_dir, write_durably

SPOOL = "_spool"  # not a date: landing_days() never lists it
__all__ = ["SPOOL", "DurableLog", "fsync_dir", "utc_day", "write_durably"]


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


class DurableLog:
    """Append-only JSON-lines spool with group-commit fsync and rotation into the landing zone."""

    def __init__(self, landing_dir: Path, prefix: str = "collected_events-", rotate_seconds: float = 2.0,
                 rotate_bytes: int = 16 << 20):
        self.landing, self.prefix = Path(landing_dir), prefix
        self.spool = self.landing / SPOOL
        self.rotate_seconds, self.rotate_bytes = rotate_seconds, rotate_bytes
        self._cv = threading.Condition()
        self._pending: list[tuple[bytes, Future]] = []
        self._fh = None
        self._name = ""
        self._opened = 0.0
        self._size = 0
        self._seq = 0
        self._stop = False
        self.closed_files: list[Path] = []  # files renamed into the landing zone (newest last)
        self._thread: threading.Thread | None = None
        # Closing, renaming and directory fsyncs are slow (tens of ms): a helper thread does them and keeps
        # the next file ready (created, its directory entry fsynced), so a rotation never stalls a request.
        self._handoff: queue.Queue = queue.Queue()
        self._ready: queue.Queue = queue.Queue(maxsize=1)
        self._helper: threading.Thread | None = None

    def start(self) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        self.recover()
        self._helper = threading.Thread(target=self._help, name="beacon-durable-log-helper", daemon=True)
        self._helper.start()
        self._thread = threading.Thread(target=self._run, name="beacon-durable-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        if self._thread:
            self._thread.join(timeout=30)
        self._rotate()
        self._handoff.put(None)  # after the last file: the helper publishes it, then stops
        if self._helper:
            self._helper.join(timeout=30)
        else:
            self._help()
        while not self._ready.empty():  # the spare file was never written: remove it
            fh, name = self._ready.get_nowait()
            fh.close()
            (self.spool / name).unlink(missing_ok=True)

    def submit(self, data: bytes) -> Future:
        """Queue complete lines (ending in a newline); the future resolves once they are fsynced."""
        fut: Future = Future()
        with self._cv:
            if self._stop:
                raise RuntimeError("the collector is shutting down")
            self._pending.append((data, fut))
            self._cv.notify()
        return fut

    def recover(self) -> list[Path]:
        """Move what a crashed process left in the spool into the landing zone (complete lines only)."""
        out = []
        for part in sorted(self.spool.glob(f"{self.prefix}*.part")):
            data = part.read_bytes()
            keep = data[:data.rfind(b"\n") + 1]
            if keep:
                if len(keep) != len(data):
                    with open(part, "r+b") as fh:
                        fh.truncate(len(keep))
                        os.fsync(fh.fileno())
                out.append(self._publish(part))
            else:
                part.unlink()
        fsync_dir(self.spool)
        return out

    def _publish(self, part: Path) -> Path:
        # The name carries the day the file was opened: <prefix><YYYYmmddTHHMMSSffffff>-<pid>-<seq>.jsonl.part
        stamp = part.name[len(self.prefix):].split("-", 1)[0]
        day = f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}"
        dest = self.landing / day / part.name[:-len(".part")]
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, dest)
        fsync_dir(dest.parent)
        self.closed_files.append(dest)
        return dest

    def _create(self) -> tuple:
        """A new spool file whose directory entry is durable (before anything acknowledged is written to it)."""
        with self._cv:
            self._seq += 1
            seq = self._seq
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{self.prefix}{stamp}-{os.getpid()}-{seq:06d}.jsonl.part"
        fh = open(self.spool / name, "ab")
        fsync_dir(self.spool)
        return fh, name

    def _open(self) -> None:
        try:
            self._fh, self._name = self._ready.get_nowait()
        except queue.Empty:
            self._fh, self._name = self._create()
        self._opened, self._size = time.time(), 0
        self._handoff.put("prepare")

    def _rotate(self) -> None:
        if self._fh is None:
            return
        self._handoff.put((self._fh, self._name, self._size))
        self._fh = None

    def _help(self) -> None:
        while True:
            job = self._handoff.get()
            if job is None:
                return
            if job == "prepare":
                if self._ready.empty():
                    self._ready.put(self._create())
                continue
            fh, name, size = job
            fh.close()
            if size:
                self._publish(self.spool / name)
            else:
                (self.spool / name).unlink(missing_ok=True)

    def _run(self) -> None:
        while True:
            with self._cv:
                if not self._pending and not self._stop:
                    wait = self.rotate_seconds if self._fh is None else max(
                        0.01, self._opened + self.rotate_seconds - time.time())
                    self._cv.wait(timeout=wait)
                batch, self._pending = self._pending, []
                stopping = self._stop
            if batch:
                try:
                    if self._fh is None:
                        self._open()
                    data = b"".join(d for d, _ in batch)
                    self._fh.write(data)
                    self._fh.flush()
                    os.fsync(self._fh.fileno())
                    self._size += len(data)
                except BaseException as exc:  # disk full, I/O error: no acknowledgement, the client retries
                    for _, f in batch:
                        f.set_exception(exc)
                    self._fh = None  # a failed file stays in the spool; recover() publishes its complete lines
                    continue
                for _, f in batch:
                    f.set_result(None)
            if self._fh is not None and (self._size >= self.rotate_bytes
                                         or time.time() - self._opened >= self.rotate_seconds):
                self._rotate()
            if stopping and not self._pending:
                return
