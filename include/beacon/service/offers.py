"""Real-time offers: GET /v1/profiles/{id}/offers from an in-memory copy of a published snapshot.

The pipeline publishes a Parquet snapshot after the marts (beacon.activation.offers.publish_offers): one row
per lookup key (customer id, email SHA-256, anonymous id linked by identity resolution) with the customer
id, the offers as JSON and whether the person may be personalized (consent and suppression applied when
it is published). The store loads a new file into a fresh dict and swaps the reference in one assignment,
so a request sees the old snapshot or the new one, never a mix; the file is published by rename.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

SNAPSHOT_COLUMNS = ("key", "customer_id", "offers", "allowed")


@dataclass(frozen=True)
class Snapshot:
    index: dict[str, tuple[str, bytes, bool, bytes]]  # key -> (customer id, offers JSON, allowed, products JSON)
    profiles: int
    version: str


def load_snapshot(path: Path) -> Snapshot:
    """Read a published snapshot into a dict (columns SNAPSHOT_COLUMNS; a missing column is an error)."""
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    missing = [c for c in SNAPSHOT_COLUMNS if c not in t.column_names]
    if missing:
        raise ValueError(f"{path}: offers snapshot lacks column(s) {missing}")
    keys, cids = t.column("key").to_pylist(), t.column("customer_id").to_pylist()
    offers, allowed = t.column("offers").to_pylist(), t.column("allowed").to_pylist()
    # Recommended products are optional (older snapshots have none).
    recs = t.column("recommendations").to_pylist() if "recommendations" in t.column_names else ["[]"] * len(keys)
    index = {k: (c, o.encode(), bool(a), (r or "[]").encode())
             for k, c, o, a, r in zip(keys, cids, offers, allowed, recs, strict=True)}
    st = os.stat(path)
    return Snapshot(index, len(set(cids)), f"{st.st_mtime_ns}-{st.st_size}")


class OfferStore:
    """The current snapshot, reloaded by a background thread when the published file changes."""

    def __init__(self, path: Path | None, poll_seconds: float = 1.0):
        self.path, self.poll_seconds = path, poll_seconds
        self.current: Snapshot | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Load the file when it changed since the current snapshot; True when swapped."""
        if self.path is None or not self.path.exists():
            return False
        st = os.stat(self.path)
        if self.current is not None and self.current.version == f"{st.st_mtime_ns}-{st.st_size}":
            return False
        try:
            snap = load_snapshot(self.path)
        except Exception as exc:  # a bad snapshot keeps the previous one serving
            self.error = str(exc)
            return False
        self.current, self.error = snap, None  # one reference assignment: atomic for readers
        return True

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="beacon-offers", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)


def lookup_keys(profile_id: str) -> list[str]:
    """The keys one id may be stored under: itself, and the SHA-256 of it when it looks like an email."""
    keys = [profile_id]
    if "@" in profile_id:
        keys.append(hashlib.sha256(profile_id.strip().lower().encode()).hexdigest())
    return keys


def router(state, store: OfferStore) -> APIRouter:
    r = APIRouter(tags=["offers"])

    @r.get("/v1/profiles/{profile_id}/offers", summary="Next best offers for on-site personalization",
           description="By customer id, email SHA-256 (or email) or anonymous id. 200 with offers; 200 with an "
                       "empty list for a person who may not be personalized; 404 unknown; 503 no snapshot yet.")
    async def offers(profile_id: str) -> Response:
        snap = store.current
        if snap is None:
            return JSONResponse({"error": "no_snapshot", "detail": "no offers snapshot has been published"},
                                status_code=503, headers={"Retry-After": "60"})  # the next activation run
        hit = next((snap.index[k] for k in lookup_keys(profile_id) if k in snap.index), None)
        if hit is None:
            return JSONResponse({"error": "unknown_profile"}, status_code=404)
        cid, body, allowed, products = hit
        offers_json, products_json = (body, products) if allowed else (b"[]", b"[]")
        return Response(b'{"customer_id":"' + cid.encode() + b'","snapshot":"' + snap.version.encode()
                        + b'","offers":' + offers_json + b',"recommendations":' + products_json + b"}",
                        media_type="application/json")

    return r
