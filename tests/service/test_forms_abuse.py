"""Forms cannot be used to mail-bomb an address: per-address and per-client limits, and a honeypot field
(a real server, a real SMTP server)."""

from __future__ import annotations

import httpx
from support.service import make_config
from support.smtp import smtp_server

from beacon.service.forms import HONEYPOT
from beacon.testing.service import ServiceProcess


def test_forms_limit_each_address_and_client_and_a_filled_honeypot_sends_nothing(tmp_path):
    with smtp_server() as (sink, port):
        cfg = {**make_config("k", "", "", ("", ""), ""), "form_secret": "form-secret-for-test",
               "smtp": {"host": "127.0.0.1", "port": port, "from": "news@beacon.example"},
               "limits": {"form_per_address": 2, "form_per_client": 6, "form_window_seconds": 600}}
        proc = ServiceProcess(tmp_path, cfg).start()
        landing = tmp_path / "data" / "landing"
        post = lambda data: httpx.post(f"{proc.url}/v1/forms/newsletter", data=data)  # noqa: E731
        try:
            trapped = post({"email": "bot-target@example.com", HONEYPOT: "http://spam.example"})
            assert trapped.status_code == 202 and sink.messages == []  # the same answer, nothing sent ...
            real = post({"email": "lead@example.com", HONEYPOT: ""})  # an empty honeypot is a person
            assert real.status_code == 202 and real.content == trapped.content  # ... indistinguishable
            assert post({"email": "  Lead@Example.COM"}).status_code == 202  # the same address, normalized
            assert [m[0] for m in sink.messages] == [["lead@example.com"], ["lead@example.com"]]
            third = post({"email": "lead@example.com"})  # the N+1th for one address in the window
            assert third.status_code == 429 and int(third.headers["retry-after"]) > 0
            assert third.json()["error"] == "rate_limited" and len(sink.messages) == 2  # not sent
            # JSON bodies go through the same limits and honeypot.
            r = httpx.post(f"{proc.url}/v1/forms/newsletter", json={"email": "lead@example.com"})
            assert r.status_code == 429 and len(sink.messages) == 2
            assert httpx.post(f"{proc.url}/v1/forms/newsletter",
                              json={"email": "j@example.com", HONEYPOT: "x"}).status_code == 202
            assert len(sink.messages) == 2
            # One client, many addresses: the 7th post from this IP in the window is refused.
            client = post({"email": "other@example.com"})
            assert client.status_code == 429 and int(client.headers["retry-after"]) > 0
            assert len(sink.messages) == 2
            assert not any(landing.rglob("consent.csv.pref-*"))  # nothing recorded before a confirmation
            log = proc.log_text()
            assert "429" in log and "lead@example.com" not in log and "bot-target" not in log
        finally:
            proc.stop()
