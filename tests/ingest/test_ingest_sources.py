"""Landing files from S3 (moto's server) and email-service webhook batches load like local files."""

from __future__ import annotations

import gzip
import json
import socket
from pathlib import Path

import duckdb
import pytest

from beacon.generate import GenConfig, generate
from beacon.ingest import load_landing
from beacon.ingest.landing import landing_from_connection
from beacon.ingest.webhooks import land_webhook

DAY = "2026-06-30"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    generate(GenConfig(people=500, seed=11), out)
    return out


@pytest.fixture()
def s3(monkeypatch):
    from moto.server import ThreadedMotoServer

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_s3_landing_loads_like_local_and_reloads_nothing(world, s3, tmp_path, monkeypatch):
    import boto3

    client = boto3.client("s3", endpoint_url=s3)
    client.create_bucket(Bucket="landing")
    day = world / "landing" / DAY
    for p in sorted(day.iterdir()):
        if p.name == "consent.csv":  # one gzipped object as well
            client.put_object(Bucket="landing", Key=f"in/{DAY}/{p.name}.gz", Body=gzip.compress(p.read_bytes()))
        else:
            client.upload_file(str(p), "landing", f"in/{DAY}/{p.name}")
    # The landing zone as the DAG finds it: an Airflow connection (secrets in the connection, not in code).
    monkeypatch.setenv("AIRFLOW_CONN_BEACON_LANDING", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"url": "s3://landing/in", "endpoint_url": s3, "skip_instance_cache": True}}))
    root, opts = landing_from_connection()
    assert root == "s3://landing/in" and opts["key"] == "testing"
    remote = load_landing(root, warehouse=tmp_path / "s3.duckdb", storage_options=opts)
    local = load_landing(world / "landing", warehouse=tmp_path / "local.duckdb")
    assert remote.totals()["files_loaded"] == 9 and remote.totals()["files_failed"] == 0
    assert remote.totals() == local.totals() and remote.reasons() == local.reasons()
    for f in remote.files:
        assert f.file.startswith("s3://landing/in/") and f.rows_read == f.rows_loaded + f.rows_quarantined
    again = load_landing("s3://landing/in", warehouse=tmp_path / "s3.duckdb", storage_options=opts)
    assert again.totals()["rows_loaded"] == 0 and again.totals()["files_skipped"] == 9
    con = duckdb.connect(str(tmp_path / "s3.duckdb"))
    src = con.execute("SELECT DISTINCT _source_file FROM raw.consent").fetchall()
    assert src == [(f"s3://landing/in/{DAY}/consent.csv.gz",)]


SENDGRID = [
    {"email": "ann@example.com", "timestamp": 1782777600, "event": "delivered", "sg_event_id": "sg-1",
     "sg_message_id": "m-1", "campaign_id": "cmp-1"},
    {"email": "ann@example.com", "timestamp": 1782781200, "event": "open", "sg_event_id": "sg-2", "sg_message_id": "m-1"},
    {"email": "ann@example.com", "timestamp": 1782781300, "event": "click", "sg_event_id": "sg-3",
     "sg_message_id": "m-1", "url": "https://shop.example/p/1"},
    {"email": "bob@example.com", "timestamp": 1782777700, "event": "bounce", "type": "bounce", "sg_event_id": "sg-4",
     "sg_message_id": "m-2"},
    {"email": "cy@example.com", "timestamp": 1782777800, "event": "spamreport", "sg_event_id": "sg-5"},
    {"email": "dee@example.com", "timestamp": 1782777900, "event": "unsubscribe", "sg_event_id": "sg-6"},
    {"email": "eve@example.com", "timestamp": 1782778000, "event": "teleported", "sg_event_id": "sg-7"},  # unknown
]
MAILGUN = {"signature": {"token": "t", "timestamp": "1782777600", "signature": "s"},
           "event-data": {"event": "failed", "severity": "permanent", "timestamp": 1782777650.25, "id": "mg-1",
                          "recipient": "fay@example.com", "message": {"headers": {"message-id": "m-3"}},
                          "user-variables": {"campaign_id": "cmp-2"}}}
POSTMARK = {"RecordType": "SubscriptionChange", "MessageID": "m-4", "Recipient": "gus@example.com",
            "ChangedAt": "2026-06-30T10:00:00Z", "SuppressSending": True, "ID": 991}


def test_webhook_batches_map_each_provider_and_quarantine_unknown_events(world, tmp_path):
    landing = tmp_path / "landing"
    body = json.dumps(SENDGRID).encode()
    p1 = land_webhook(body, "sendgrid", str(landing), DAY)
    assert land_webhook(body, "sendgrid", str(landing), DAY) == p1  # a retried post lands once
    land_webhook(json.dumps(MAILGUN).encode(), "mailgun", str(landing), DAY)
    land_webhook(json.dumps(POSTMARK).encode(), "postmark", str(landing), DAY)
    land_webhook(b'[{"event": "open", ', "sendgrid", str(landing), DAY)  # truncated body
    wh = tmp_path / "wh.duckdb"
    s = load_landing(landing, warehouse=wh)
    by = {Path(f.file).name.split("-")[0] + ("-bad" if f.status == "failed" else ""): f for f in s.files}
    assert (by["sendgrid"].rows_read, by["sendgrid"].rows_loaded, by["sendgrid"].rows_quarantined) == (7, 6, 1)
    assert by["sendgrid-bad"].status == "failed" and "not valid JSON" in by["sendgrid-bad"].error
    assert by["mailgun"].rows_loaded == 1 and by["postmark"].rows_loaded == 1
    con = duckdb.connect(str(wh))
    got = con.execute("""SELECT event_id, event, bounce_type, _source, epoch(event_at)::BIGINT FROM raw.email_events
                         ORDER BY event_id""").fetchall()
    assert ("sg-4", "bounce", "hard", "webhook:sendgrid", 1782777700) in got
    assert ("sg-5", "complaint", None, "webhook:sendgrid", 1782777800) in got
    assert ("mg-1", "bounce", "hard", "webhook:mailgun", 1782777650) in got
    assert ("991", "unsubscribe", None, "webhook:postmark", 1782813600) in got
    q = con.execute("SELECT reason, message, payload FROM raw._quarantine").fetchall()
    assert q[0][0] == "malformed" and "teleported" in q[0][1] and "sg-7" in q[0][2]
    con.close()
    assert load_landing(landing, warehouse=wh).totals()["rows_loaded"] == 0
