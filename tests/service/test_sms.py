"""The SMS destination against a local Twilio-style provider: sms consent, an inbound STOP, quiet hours."""

from __future__ import annotations

import json
from datetime import datetime

import httpx
from support.activation_world import audience, consent, segment, warehouse
from support.service import make_config

from beacon.activation.destinations.registry import build
from beacon.activation.destinations.sms import in_quiet_hours
from beacon.activation.sync import run_sync
from beacon.config import override_env
from beacon.service.sms import twilio_signature
from beacon.testing.service import ServiceProcess
from beacon.testing.sms import FakeSmsProvider

NOON = datetime(2026, 6, 30, 12, 0)  # UTC; 08:00 in New York
NIGHT = datetime(2026, 7, 1, 3, 0)  # UTC; 23:00 in New York, inside the default 21:00-08:00 quiet hours


def test_quiet_hours_wrap_past_midnight():
    from datetime import time as t

    assert in_quiet_hours(datetime(2026, 1, 1, 23, 0), t(21), t(8))
    assert in_quiet_hours(datetime(2026, 1, 1, 7, 59), t(21), t(8))
    assert not in_quiet_hours(datetime(2026, 1, 1, 8, 0), t(21), t(8))


def test_sms_needs_consent_honours_stop_and_waits_for_quiet_hours_to_end(monkeypatch, tmp_path):
    con = warehouse(6)
    for c in ("c0", "c1", "c2", "c3"):
        consent(con, c, "sms", "opt_in")
    a = audience("flash_sale", channels=("sms",))
    segment(con, "flash_sale", ["c0", "c1", "c2", "c3", "c4"])  # c4 never opted in to SMS
    phone = con.execute("SELECT phone_e164 FROM marts.dim_customers WHERE customer_id = 'c1'").fetchone()[0]
    cfg = {**make_config("k", "", "", ("", ""), ""), "sms": {"auth_token": "tok"}}
    proc = ServiceProcess(tmp_path, cfg)
    cfg["public_base_url"] = proc.url
    proc.config_path.write_text(json.dumps(cfg))
    proc.start()
    try:
        params = [("From", phone), ("Body", "Stop"), ("MessageSid", "SM9")]  # c1 texts STOP
        url = f"{proc.url}/v1/sms/inbound"
        r = httpx.post(url, data=dict(params), headers={"X-Twilio-Signature": twilio_signature("tok", url, params)})
        assert r.status_code == 200
    finally:
        proc.stop()
    with FakeSmsProvider() as provider:
        monkeypatch.setenv("AIRFLOW_CONN_BEACON_SMS", json.dumps({
            "conn_type": "sms", "host": provider.url, "login": provider.sid, "password": provider.token,
            "extra": {"from": "+18005550000", "body": "Hi {first_name}: 20% off today. Reply STOP to opt out.",
                      "time_zone": "America/New_York"}}))
        dest = build("sms", str(tmp_path))
        with override_env(BEACON_LANDING_DIR=str(tmp_path / "data" / "landing")):
            night = run_sync(con, a, [a], dest, NIGHT)
            assert night.delivered == 0 and night.failed == 3 and provider.messages == []  # quiet hours
            day = run_sync(con, a, [a], dest, NOON.replace(day=1, month=7, hour=13))  # 09:00 in New York
        assert day.delivered == 3 and day.suppressed == {"unsubscribed": 1, "no_consent": 1}
        assert phone not in {m["To"] for m in provider.messages} and len(provider.messages) == 3
        assert all(m["From"] == "+18005550000" and "Reply STOP" in m["Body"] and m["Body"].startswith("Hi Ann")
                   for m in provider.messages)
