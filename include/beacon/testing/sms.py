"""A local Twilio-style SMS API for tests: POST /2010-04-01/Accounts/{sid}/Messages.json with Basic auth."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class FakeSmsProvider:
    """Records accepted messages; answers 401 on wrong credentials and 400 without To/From/Body, like Twilio."""

    def __init__(self, sid: str = "AC00000000000000000000000000000000", token: str = "test-token"):
        self.sid, self.token = sid, token
        self.messages: list[dict] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                expected = "Basic " + base64.b64encode(f"{provider.sid}:{provider.token}".encode()).decode()
                if self.headers.get("authorization") != expected:
                    return self._answer(401, {"code": 20003, "message": "Authenticate"})
                if self.path != f"/2010-04-01/Accounts/{provider.sid}/Messages.json":
                    return self._answer(404, {"code": 20404, "message": "Not found"})
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                if not all(form.get(k) for k in ("To", "From", "Body")):
                    return self._answer(400, {"code": 21604, "message": "A 'To', 'From' and 'Body' are required"})
                sid = f"SM{len(provider.messages):032d}"
                provider.messages.append({**form, "sid": sid})
                return self._answer(201, {"sid": sid, "status": "queued", "to": form["To"]})

            def _answer(self, status: int, doc: dict):
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSmsProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
