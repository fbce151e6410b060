"""Typed connection extras: every destination refuses an unknown key (a typo) with the key and the connection
named, and still builds from a valid connection. The registry's governance overrides go through the same models."""

from __future__ import annotations

import json

import pytest

from beacon.activation.destinations.registry import build, policy_overrides
from beacon.config import ConfigError

SMTP_EXTRA = {"from": "Beacon <news@beacon.example>", "postal_address": "Beacon Inc., 1 Main St",
              "unsubscribe_url": "https://beacon.example/unsubscribe", "unsubscribe_secret": "test-not-real"}
# One valid connection per destination kind, as an operator would write it.
VALID = {
    "file": {"conn_type": "fs", "extra": {"url": "{tmp}/files", "format": "parquet", "fields": ["email"]}},
    "email": {"conn_type": "smtp", "host": "127.0.0.1", "port": 2525, "extra": {**SMTP_EXTRA, "starttls": "false"}},
    "webhook": {"conn_type": "http", "host": "https://crm.example/hook", "password": "tok",
                "extra": {"auth": "bearer", "batch_size": 100, "timeout": 3}},
    "ads": {"conn_type": "customer_match", "extra": {"url": "{tmp}/ads", "platform": "meta", "region": "GB"}},
    "sms": {"conn_type": "sms", "host": "https://sms.example", "login": "AC1", "password": "tok",
            "extra": {"from": "+18005550000", "body": "Hi. Reply STOP to opt out.", "quiet_start": "22:00",
                      "time_zone": "Europe/Paris", "batch_size": 10}},
}
# A typo per kind: the key as mistyped, and the key it should have been.
TYPO = {"file": ("fromat", "format"), "email": ("form", "from"), "webhook": ("batchsize", "batch_size"),
        "ads": ("platfrom", "platform"), "sms": ("time_zome", "time_zone")}


def _set(monkeypatch, tmp_path, name: str, conn: dict) -> None:
    text = json.dumps(conn).replace("{tmp}", str(tmp_path))
    monkeypatch.setenv(f"AIRFLOW_CONN_BEACON_{name.upper()}", text)


@pytest.mark.parametrize("name", sorted(VALID))
def test_a_valid_connection_builds_its_destination(monkeypatch, tmp_path, name):
    _set(monkeypatch, tmp_path, name, VALID[name])
    dest = build(name, str(tmp_path / "exports"))
    assert dest.name == name
    checks = {  # the extras reached the destination, typed
        "file": lambda d: (d.fmt, d.fields, d.base_url) == ("parquet", ("email",), str(tmp_path / "files")),
        "email": lambda d: (d.port, d.starttls, d.sender) == (2525, False, SMTP_EXTRA["from"]),
        "webhook": lambda d: (d.batch_size, d.timeout, d.token) == (100, 3.0, "tok"),
        "ads": lambda d: (d.platform, d.region) == ("meta", "GB"),
        "sms": lambda d: (d.quiet[0].hour, str(d.zone), d.batch_size) == (22, "Europe/Paris", 10),
    }
    assert checks[name](dest)
    assert policy_overrides(name) == {}


@pytest.mark.parametrize("name", sorted(TYPO))
def test_an_unknown_key_is_refused_with_its_name_and_the_connection(monkeypatch, tmp_path, name):
    wrong, right = TYPO[name]
    conn = json.loads(json.dumps(VALID[name]))
    conn["extra"][wrong] = conn["extra"].pop(right, "x")
    _set(monkeypatch, tmp_path, name, conn)
    with pytest.raises(ConfigError) as e:
        build(name, str(tmp_path))
    msg = str(e.value)
    assert f"connection beacon_{name}" in msg and f"unknown key {wrong!r}" in msg and f"did you mean {right!r}" in msg
    with pytest.raises(ConfigError, match=f"unknown key {wrong!r}"):  # governance reads the same typed extras
        policy_overrides(name)


def test_governance_overrides_are_typed_too(monkeypatch, tmp_path):
    conn = json.loads(json.dumps(VALID["webhook"]))
    conn["extra"] |= {"opt_in_required": "true", "frequency_cap": 5, "priority_arbitration": False}
    _set(monkeypatch, tmp_path, "webhook", conn)
    assert policy_overrides("webhook") == {"opt_in_required": True, "frequency_cap": 5, "exclusive": False}
    conn["extra"] |= {"frequency_cap": -1}
    _set(monkeypatch, tmp_path, "webhook", conn)
    with pytest.raises(ConfigError, match=r"connection beacon_webhook: extra\.frequency_cap: .*greater than or equal"):
        policy_overrides("webhook")


@pytest.mark.parametrize("name, key, value, words", [
    ("file", "format", "xlsx", "extra.format"),
    ("webhook", "auth", "basic", "extra.auth"),
    ("ads", "platform", "tiktok", "extra.platform"),
    ("sms", "time_zone", "Mars/Olympus", "unknown time zone"),
    ("sms", "quiet_start", "25:00", "extra.quiet_start"),
    ("email", "batch_size", 0, "extra.batch_size"),
])
def test_a_bad_value_names_its_key(monkeypatch, tmp_path, name, key, value, words):
    conn = json.loads(json.dumps(VALID[name]))
    conn["extra"][key] = value
    _set(monkeypatch, tmp_path, name, conn)
    with pytest.raises(ConfigError) as e:
        build(name, str(tmp_path))
    assert f"connection beacon_{name}" in str(e.value) and words in str(e.value)


def test_a_secret_value_is_never_repeated_in_the_error(monkeypatch, tmp_path):
    conn = json.loads(json.dumps(VALID["email"]))
    conn["extra"]["unsubscribe_secret"] = ["s3cr3t-value"]  # wrong type: the error names the key, not the value
    _set(monkeypatch, tmp_path, "email", conn)
    with pytest.raises(ConfigError) as e:
        build("email", str(tmp_path))
    assert "extra.unsubscribe_secret" in str(e.value) and "s3cr3t" not in str(e.value)
