"""HTTP/webhook destination: JSON batches, bearer or HMAC-signed, rate-limited, retried with backoff and jitter.

Each request carries an `Idempotency-Key` header (the batch's id, derived from its rows' keys) and each
row its own `idempotency_key`, so a receiver can drop anything it has already applied.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from email.utils import parsedate_to_datetime
from typing import ClassVar, Literal

import httpx
import pandas as pd
from pydantic import Field

from beacon.activation.destinations import Batch, DestinationExtra, RowResult, parse_extra
from beacon.activation.destinations.file import batch_id

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class RateLimiter:
    """At most `rate` requests per second across threads (evenly spaced slots)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class WebhookExtra(DestinationExtra):
    """Extras of a webhook connection (host = the URL, password = the bearer token or the HMAC secret)."""

    TUNING: ClassVar[tuple[str, ...]] = ("batch_size", "rate_limit", "max_retries", "timeout", "concurrency",
                                         "backoff_base", "backoff_max")
    path: str = ""  # appended to schema://host:port when host is not a full URL
    auth: Literal["bearer", "hmac", "none"] = "bearer"
    fields: tuple[str, ...] | None = None
    batch_size: int | None = Field(None, ge=1)
    rate_limit: float | None = Field(None, gt=0)
    max_retries: int | None = Field(None, ge=0)
    timeout: float | None = Field(None, gt=0)
    concurrency: int | None = Field(None, ge=1)
    backoff_base: float | None = Field(None, ge=0)
    backoff_max: float | None = Field(None, ge=0)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>" (the timestamp lets receivers refuse replays)."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class Webhook:
    """POSTs JSON batches of changes to one URL."""

    channel = "webhook"
    Extra = WebhookExtra
    required_any: tuple[str, ...] = ()
    default_mode = "mirror"

    def __init__(self, url: str, token: str | None = None, hmac_secret: str | None = None, batch_size: int = 500,
                 rate_limit: float = 50.0, max_retries: int = 8, timeout: float = 10.0, concurrency: int = 4,
                 backoff_base: float = 0.2, backoff_max: float = 30.0, fields: tuple[str, ...] | None = None,
                 name: str = "webhook", seed: int | None = None):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https://, got {url!r}")
        if batch_size < 1:
            raise ValueError("webhook batch_size must be at least 1")
        self.name, self.url, self.token, self.hmac_secret = name, url, token, hmac_secret
        self.batch_size, self.max_retries, self.timeout = batch_size, max_retries, timeout
        self.concurrency, self.backoff_base, self.backoff_max = max(1, concurrency), backoff_base, backoff_max
        self.fields = fields
        self.limiter = RateLimiter(rate_limit)
        self._rng = random.Random(seed)
        self._client = httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=self.concurrency))
        self.stats = {"requests": 0, "retries": 0, "timeouts": 0, "waited_retry_after": 0.0}
        self._stats_lock = threading.Lock()

    @classmethod
    def from_connection(cls, name: str, conn) -> Webhook:
        """host = the full URL (or schema/host/port + extra.path); password = bearer token or HMAC secret (extra.auth)."""
        x = parse_extra(WebhookExtra, name, conn)
        url = conn.host or ""
        if not url.startswith(("http://", "https://")):
            url = f"{conn.schema or 'https'}://{url}{':' + str(conn.port) if conn.port else ''}{x.path}"
        tuning = x.model_dump(include=set(WebhookExtra.TUNING), exclude_none=True)
        return cls(url, token=conn.password if x.auth == "bearer" else None,
                   hmac_secret=conn.password if x.auth == "hmac" else None, fields=x.fields or None, name=name,
                   **tuning)

    def plan(self, rows: pd.DataFrame, name: str, meta: dict) -> list[Batch]:
        """Fixed-size batches in key order: the same changes give the same batches and batch ids."""
        rows = rows.sort_values("customer_id", kind="stable").reset_index(drop=True)
        out = []
        for start in range(0, len(rows), self.batch_size):
            chunk = rows.iloc[start:start + self.batch_size].reset_index(drop=True)
            out.append(Batch(name=name, rows=chunk, meta={**meta, "batch_id": batch_id(chunk)}))
        return out

    def body(self, batch: Batch) -> bytes:
        """The JSON document for one batch."""
        fields = [c for c in batch.rows.columns if c not in ("customer_id", "operation", "idempotency_key", "version")]
        values = json.loads(batch.rows[fields].to_json(orient="records", date_format="iso")) if fields else [{}] * len(
            batch.rows)
        rows = [{"customer_id": c, "operation": o, "idempotency_key": k, "fields": v}
                for c, o, k, v in zip(batch.rows.customer_id, batch.rows.operation, batch.rows.idempotency_key, values,
                                      strict=True)]
        doc = {"audience": batch.meta.get("audience"), "destination": self.name, "batch_id": batch.meta["batch_id"],
               "rows": rows}
        return json.dumps(doc, separators=(",", ":"), default=str).encode()

    def _headers(self, batch: Batch, body: bytes) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Idempotency-Key": batch.meta["batch_id"], "User-Agent": "beacon"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if self.hmac_secret:
            ts = str(int(time.time()))
            h["X-Beacon-Timestamp"] = ts
            h["X-Beacon-Signature"] = sign(self.hmac_secret, ts, body)
        return h

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full-jitter exponential backoff, never shorter than the server's Retry-After."""
        with self._stats_lock:
            jitter = self._rng.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** attempt))
        return max(jitter, retry_after or 0.0)

    def _count(self, key: str, n: float = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def send(self, batch: Batch) -> list[RowResult]:
        """POST one batch until acknowledged, retrying 429/5xx/timeouts; per-row results (rejections named by the receiver)."""
        body = self.body(batch)
        keys = [str(k) for k in batch.rows.customer_id]
        error = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
            self.limiter.wait()
            self._count("requests")
            retry_after = None
            try:
                resp = self._client.post(self.url, content=body, headers=self._headers(batch, body))
            except httpx.TimeoutException as exc:
                self._count("timeouts")
                error = f"timeout: {exc}"
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= resp.status_code < 300:
                    return self._results(keys, batch, resp)
                error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                if resp.status_code not in RETRY_STATUS:
                    break  # 4xx other than 408/425/429: retrying the same request cannot succeed
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
            if attempt < self.max_retries:
                delay = self._backoff(attempt, retry_after)
                if retry_after:
                    self._count("waited_retry_after", delay)
                time.sleep(delay)
        return [RowResult(key=k, status="failed", error=error) for k in keys]

    @staticmethod
    def _results(keys: list[str], batch: Batch, resp: httpx.Response) -> list[RowResult]:
        """Rows the receiver lists under `rejected` (by idempotency key) failed; the rest were delivered."""
        try:
            doc = resp.json()
        except ValueError:
            doc = {}
        rejected = {r.get("idempotency_key"): r.get("error", "rejected") for r in (doc or {}).get("rejected", [])}
        by_key = dict(zip(batch.rows.idempotency_key, keys, strict=True))
        bad = {by_key[k]: e for k, e in rejected.items() if k in by_key}
        return [RowResult(key=k, status="failed", error=f"rejected: {bad[k]}") if k in bad
                else RowResult(key=k, status="delivered") for k in keys]

    def send_many(self, batches: list[Batch]) -> Iterator[tuple[Batch, list[RowResult]]]:
        """Send up to `concurrency` batches at once, yielding each as soon as it is acknowledged (or given up)."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self.send, b): b for b in batches}
            for f in as_completed(futures):
                yield futures[f], f.result()

    def close(self) -> None:
        self._client.close()
