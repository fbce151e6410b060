"""Inbound SMS keywords against a real server: Twilio's signature scheme, STOP records an SMS opt-out."""

from __future__ import annotations

import csv
import io
import json

import httpx
from support.service import make_config

from beacon.service.sms import keyword, twilio_signature
from beacon.testing.service import ServiceProcess


def test_twilio_signature_matches_twilios_documented_example():
    # twilio-php's "Validate Incoming Requests" guide: this token, URL and POST parameters give this signature.
    params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
              ("From", "+14158675309"), ("To", "+18005551212")]
    assert twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params) == \
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_keywords():
    assert [keyword(b) for b in ("stop", " Unsubscribe ", "START", "help", "stop please")] == \
        ["STOP", "STOP", "START", "HELP", None]
    # Every keyword docs/service.md lists, in any case and with spaces around it.
    for words, kind in (("STOP STOPALL UNSUBSCRIBE CANCEL END QUIT OPTOUT REVOKE", "STOP"),
                        ("START UNSTOP YES", "START"), ("HELP INFO", "HELP")):
        for w in words.split():
            assert keyword(f"  {w.lower()} ") == keyword(w) == kind, w


def test_stop_records_an_sms_opt_out_and_forged_posts_change_nothing(tmp_path):
    cfg = {**make_config("k", "", "", ("", ""), ""), "sms": {"auth_token": "tok", "help_text": "Beacon: help"}}
    proc = ServiceProcess(tmp_path, cfg)
    cfg["public_base_url"] = proc.url
    proc.config_path.write_text(json.dumps(cfg))
    proc.start()
    landing = tmp_path / "data" / "landing"
    url = f"{proc.url}/v1/sms/inbound"

    def post(params, sig=None):
        return httpx.post(url, data=dict(params), headers={"X-Twilio-Signature": sig or twilio_signature(
            "tok", url, params)})

    try:
        stop = [("From", "+14155550100"), ("To", "+18005551212"), ("Body", "STOP"), ("MessageSid", "SM1")]
        assert post(stop, sig="AAAA").status_code == 403
        assert list(landing.rglob("consent.csv.pref-*")) == []
        r = post(stop)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
        files = list(landing.rglob("consent.csv.pref-*"))
        assert len(files) == 1
        row = next(csv.DictReader(io.StringIO(files[0].read_text())))
        assert (row["phone"], row["channel"], row["status"]) == ("+14155550100", "sms", "opt_out")
        help_ = post([("From", "+14155550100"), ("Body", "help"), ("MessageSid", "SM2")])
        assert "<Message>Beacon: help</Message>" in help_.text
        assert len(list(landing.rglob("consent.csv.pref-*"))) == 1
    finally:
        proc.stop()
