"""Double opt-in forms against a real server and a local SMTP server: consent only after the confirmation."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from urllib.parse import urlencode

import httpx
from support.service import make_config
from support.smtp import smtp_server

from beacon.service.forms import confirm_token
from beacon.testing.service import ServiceProcess


def _prefs(landing):
    return sorted(p for p in landing.rglob("consent.csv.pref-*"))


def test_double_opt_in_records_consent_with_proof_only_after_confirmation(tmp_path):
    with smtp_server() as (sink, port):
        _double_opt_in(tmp_path, sink, port)


def _double_opt_in(tmp_path, sink, port) -> None:
    secret = "form-secret-for-test"
    cfg = {**make_config("k", "", "", ("", ""), ""), "form_secret": secret,
           "smtp": {"host": "127.0.0.1", "port": port, "from": "news@beacon.example"}}
    proc = ServiceProcess(tmp_path, cfg)
    cfg["public_base_url"] = proc.url
    proc.config_path.write_text(json.dumps(cfg))
    proc.start()
    landing = tmp_path / "data" / "landing"
    try:
        r = httpx.post(f"{proc.url}/v1/forms/newsletter", data={"email": "  Lead@Example.com", "topic": "product_updates"})
        assert r.status_code == 202
        assert _prefs(landing) == []  # nothing recorded before the person confirms
        assert len(sink.messages) == 1 and sink.messages[0][0] == ["lead@example.com"]
        link = re.search(r"(http://\S+)", sink.messages[0][1].get_content()).group(1)
        assert httpx.post(f"{proc.url}/v1/forms/newsletter", data={"email": "not-an-email"}).status_code == 400
        bad = link.replace("product_updates", "marketing")  # topics changed after signing
        assert httpx.get(bad).status_code == 403 and _prefs(landing) == []
        old = int(time.time()) - 49 * 3600
        expired = {"f": "newsletter", "m": "lead@example.com", "p": "product_updates", "i": old,
                   "t": confirm_token(secret, "newsletter", "lead@example.com", "product_updates", old)}
        assert httpx.get(f"{proc.url}/v1/forms/confirm?{urlencode(expired)}").status_code == 410
        assert _prefs(landing) == []
        page = httpx.get(link)
        assert page.status_code == 200 and "Subscription confirmed" in page.text
        assert httpx.get(link).status_code == 200  # a second click records nothing new
        files = _prefs(landing)
        assert len(files) == 1
        rows = list(csv.DictReader(io.StringIO(files[0].read_text())))
        assert {(r["channel"], r["topic"], r["status"]) for r in rows} == {("email", "", "opt_in"),
                                                                           ("email", "product_updates", "opt_in")}
        proof = json.loads(rows[0]["proof"])
        assert proof["method"] == "double_opt_in" and proof["form"] == "newsletter"
        assert proof["requested_at"] <= proof["confirmed_at"] and len(proof["token_sha256"]) == 64
        assert all(r["email"] == "lead@example.com" and r["source"] == "form:newsletter" for r in rows)
    finally:
        proc.stop()
