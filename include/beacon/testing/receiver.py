"""A local webhook receiver that injects faults and counts what it received (for tests and the benchmark).

It applies each row at most once per idempotency key, like a well-behaved API, and counts separately
what arrived again (redeliveries) so a test can tell "sent twice" from "applied twice".
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from beacon.activation.destinations.webhook import sign

FAULTS = ("429", "500", "503", "timeout")


class FaultyReceiver:
    """Start with `with FaultyReceiver(...) as r:`; POST to `r.url`."""

    def __init__(self, fault_rate: float = 0.0, faults: tuple[str, ...] = FAULTS, seed: int = 7, token: str | None = None,
                 hmac_secret: str | None = None, timeout_sleep: float = 1.0, retry_after: str = "1",
                 reject: dict[str, int] | None = None, latency: float = 0.0,
                 on_applied: Callable[[int], None] | None = None, script: list[str | None] | None = None):
        self.fault_rate, self.faults, self.token, self.hmac_secret = fault_rate, faults, token, hmac_secret
        self.timeout_sleep, self.retry_after, self.latency = timeout_sleep, retry_after, latency
        self.reject = dict(reject or {})  # customer_id -> how many more times to reject it
        self.on_applied = on_applied  # called with the number of requests applied so far, before answering
        self.script = list(script or [])  # faults for the first requests, in order (None = no fault); then random
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.applied: dict[str, dict] = {}  # idempotency_key -> row
        self.requests = 0
        self.requests_applied = 0
        self.faults_injected: Counter = Counter()
        self.redelivered = 0  # rows that arrived again under a key already applied
        self.rows_received = 0
        self.unauthorized = 0
        self.headers: list[dict] = []
        self.times: list[float] = []  # monotonic arrival time of each request
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------------------------------ counts

    @property
    def duplicates_applied(self) -> int:
        """Applications beyond the first of the same (member, operation, payload): must be 0."""
        seen = Counter((r["customer_id"], r["operation"], json.dumps(r.get("fields"), sort_keys=True))
                       for r in self.applied.values())
        return sum(n - 1 for n in seen.values() if n > 1)

    def summary(self) -> dict:
        return {"requests": self.requests, "faults_injected": dict(self.faults_injected),
                "rows_received": self.rows_received, "rows_applied": len(self.applied),
                "redelivered_rows_dropped": self.redelivered, "duplicates_applied": self.duplicates_applied,
                "unauthorized": self.unauthorized}

    # ------------------------------------------------------------------------------------------ server

    def _authorized(self, headers, body: bytes) -> bool:
        if self.token and headers.get("Authorization") != f"Bearer {self.token}":
            return False
        if self.hmac_secret:
            ts = headers.get("X-Beacon-Timestamp", "")
            return headers.get("X-Beacon-Signature") == sign(self.hmac_secret, ts, body)
        return True

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length", 0)))
        with self._lock:
            self.requests += 1
            self.headers.append(dict(h.headers))
            self.times.append(time.monotonic())
            if self.script:
                fault = self.script.pop(0)
            else:
                fault = self._rng.choice(self.faults) if self._rng.random() < self.fault_rate else None
        if self.latency:
            time.sleep(self.latency)
        if not self._authorized(h.headers, body):
            with self._lock:
                self.unauthorized += 1
            return self._reply(h, 401, {"error": "bad credentials"})
        if fault in ("429", "500", "503"):
            with self._lock:
                self.faults_injected[fault] += 1
            extra = {"Retry-After": self.retry_after} if fault == "429" else {}
            return self._reply(h, int(fault), {"error": "injected"}, extra)
        try:
            doc = json.loads(body)
            rows = doc["rows"]
        except (ValueError, KeyError):
            return self._reply(h, 400, {"error": "body must be JSON with rows"})
        rejected = []
        with self._lock:
            for r in rows:
                self.rows_received += 1
                key = r["idempotency_key"]
                if key in self.applied:
                    self.redelivered += 1
                    continue
                if self.reject.get(r["customer_id"], 0) > 0:
                    self.reject[r["customer_id"]] -= 1
                    rejected.append({"idempotency_key": key, "error": "invalid record"})
                    continue
                self.applied[key] = r
            self.requests_applied += 1
            n = self.requests_applied
        if self.on_applied:
            self.on_applied(n)
        if fault == "timeout":  # applied, but the answer comes too late: the client must retry, and we drop the repeat
            with self._lock:
                self.faults_injected[fault] += 1
            time.sleep(self.timeout_sleep)
        self._reply(h, 200, {"accepted": len(rows) - len(rejected), "rejected": rejected})

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, doc: dict, headers: dict | None = None) -> None:
        out = json.dumps(doc).encode()
        try:
            h.send_response(status)
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(out)))
            h.end_headers()
            h.wfile.write(out)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout); it will retry

    def __enter__(self) -> FaultyReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's naming
                receiver._handle(self)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
