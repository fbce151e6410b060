"""The service's configuration is typed: an unknown key (top level or nested) is refused with its name and the
place it was read from; a valid document still loads, from the JSON file or the `beacon_service` connection."""

from __future__ import annotations

import json

import pytest
from support.service import make_config

from beacon.config import ConfigError, override_env, settings
from beacon.service.config import from_dict, load_config


def test_a_valid_document_loads():
    doc = make_config("k1", "pub", "mg", ("u", "p"), "unsub", form_secret="f",
                      smtp={"host": "127.0.0.1", "port": 2525, "from": "news@beacon.example"},
                      sms={"auth_token": "tok"}, public_base_url="https://beacon.example/")
    cfg = from_dict(doc, settings(), "cfg.json")
    assert cfg.write_keys == {"k1": "website"} and cfg.limits.max_batch_events == 500
    assert cfg.smtp == {"host": "127.0.0.1", "port": 2525, "from": "news@beacon.example"}  # as forms.py reads it
    assert cfg.sms == {"auth_token": "tok"} and cfg.public_base_url == "https://beacon.example"
    assert cfg.limits.rate_burst == 40_000.0  # an unset limit keeps its default


@pytest.mark.parametrize("doc, words", [
    ({"write_key": {"k": "web"}}, "unknown key 'write_key' (did you mean 'write_keys'?)"),
    ({"limits": {"max_bodyy": 1}}, "limits: unknown key 'max_bodyy' (did you mean 'max_body_bytes'?)"),
    ({"smtp": {"host": "h", "from": "a@b", "user": "x"}}, "smtp: unknown key 'user' (did you mean"),
    ({"sms": {"auth_tokn": "t"}}, "sms: unknown key 'auth_tokn' (did you mean 'auth_token'?)"),
    ({"smtp": {"host": "h"}}, "smtp.from is required"),
    ({"topics": {"Bad Topic": "x"}}, "topics"),
    ({"rotate_seconds": 0}, "rotate_seconds"),
])
def test_a_bad_key_is_named(doc, words):
    with pytest.raises(ConfigError) as e:
        from_dict(doc, settings(), "cfg.json")
    assert str(e.value).startswith("cfg.json: ") and words in str(e.value)


def test_the_file_and_the_connection_are_named(tmp_path, monkeypatch):
    path = tmp_path / "service.json"
    path.write_text(json.dumps({"write_keys": {"k": "web"}, "unsubscribe_secrett": "x"}))
    with override_env(BEACON_SERVICE_CONFIG=str(path)):
        with pytest.raises(ConfigError, match=f"{path}: unknown key 'unsubscribe_secrett'"):
            load_config()
    monkeypatch.delenv("BEACON_SERVICE_CONFIG", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_BEACON_SERVICE", json.dumps({"conn_type": "generic", "extra": {
        "write_keys": {"k": "web"}, "topicss": {}}}))
    with pytest.raises(ConfigError, match="connection beacon_service: unknown key 'topicss'"):
        load_config()
    monkeypatch.setenv("AIRFLOW_CONN_BEACON_SERVICE", json.dumps({"conn_type": "generic", "extra": {
        "write_keys": {"k": "web"}}}))
    assert load_config().write_keys == {"k": "web"}
