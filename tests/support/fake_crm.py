"""A local CRM REST API for tests: bearer auth, pagination, updated_since, 429 with Retry-After, 5xx, invalid JSON."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

TOKEN = "test-token-not-a-secret"


def contacts(n: int, day: str = "2026-01-14") -> list[dict]:
    """n CRM contacts with increasing updated_at (several share a timestamp, as real exports do)."""
    return [{"contact_id": f"C{i:05d}", "company_id": f"A{i % 7:03d}", "first_name": f"First{i}",
             "last_name": f"Last{i}", "email": f"p{i}@example.com", "phone": "+1 555 0100",
             "job_title": "Analyst", "lifecycle_stage": "lead", "lead_source": "webinar", "street": "1 Main St",
             "city": "Springfield", "state": "IL", "postal_code": "62701",
             "created_at": f"{day} 08:00:00", "updated_at": f"{day} {8 + i // 60:02d}:{i % 60:02d}:00"}
            for i in range(n)]


def companies(n: int, day: str = "2026-01-14") -> list[dict]:
    return [{"company_id": f"A{i:03d}", "name": f"Company {i}", "domain": f"co{i}.example", "industry": "retail",
             "employees": 10 + i, "country": "US", "created_at": f"{day} 07:00:00", "updated_at": f"{day} 07:{i:02d}:00"}
            for i in range(n)]


class FakeCrm:
    """Serve `data[resource]` (lists of dicts); `faults[(resource, page)]` lists responses served first, in order."""

    def __init__(self, data: dict[str, list[dict]]):
        self.data = data
        self.faults: dict[tuple[str, int], list] = defaultdict(list)
        self.calls: list[tuple[float, str, dict]] = []
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                u = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(u.query).items()}
                resource = u.path.rstrip("/").rsplit("/", 1)[-1]
                crm.calls.append((time.monotonic(), resource, q))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"error": "unauthorized"})
                page, per = int(q.get("page", 1)), int(q.get("per_page", 100))
                pending = crm.faults.get((resource, page))
                if pending:
                    fault = pending.pop(0)
                    if fault == 429:
                        return self._send(429, {"error": "slow down"}, {"Retry-After": "1"})
                    if isinstance(fault, int):
                        return self._send(fault, {"error": "transient"})
                    return self._send(200, fault)  # a raw (e.g. invalid JSON) body
                def ts(r) -> str:  # malformed test records sort first and always match
                    return str(r.get("updated_at")) if isinstance(r, dict) else ""

                rows = sorted((r for r in crm.data.get(resource, [])
                               if "updated_since" not in q or ts(r) >= q["updated_since"] or ts(r) < "2"),
                              key=lambda r: (ts(r), json.dumps(r, sort_keys=True)))
                chunk = rows[(page - 1) * per: page * per]
                nxt = page + 1 if page * per < len(rows) else None
                self._send(200, {"data": chunk, "next_page": nxt})

            def _send(self, status, body, headers=None):
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeCrm:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
