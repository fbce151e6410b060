"""Destinations told to forget an erased person (beacon.activation.erasure): a remove through the webhook's own send,
a remove upload for customer match, the local file export left to the file erasure, e-mail `not_supported`."""

from __future__ import annotations

import json

import pandas as pd
from support.smtp import email_connection

from beacon.activation.erasure import remove_subject
from beacon.activation.governance import ensure_tables
from beacon.config import settings
from beacon.privacy.subject import Subject
from beacon.testing.receiver import FaultyReceiver
from beacon.warehouse import connect


def _state(rows: list[tuple]) -> None:
    with connect() as con:
        ensure_tables(con)
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute("CREATE OR REPLACE TABLE marts.warehouse_as_of AS SELECT TIMESTAMP '2026-06-30 12:00' AS as_of_at")
        for audience, dest, cid, payload in rows:
            con.execute("INSERT INTO activation.sync_state VALUES (?, ?, ?, 'h', 1, true, 'r', now(), ?)",
                        [audience, dest, cid, json.dumps(payload)])


def test_each_destination_gets_its_remove_or_a_status(tmp_path, monkeypatch):
    monkeypatch.setenv("BEACON_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("BEACON_EXPORTS_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("AIRFLOW_CONN_BEACON_ADS", json.dumps(
        {"conn_type": "customer_match", "extra": {"url": str(tmp_path / "ads"), "platform": "google"}}))
    monkeypatch.setenv("AIRFLOW_CONN_BEACON_EMAIL", email_connection(2525))  # never reached: nothing to recall
    payload = {"email": "ann.lee@example.com", "phone_e164": "+14155550100", "first_name": "Ann"}
    with FaultyReceiver() as r:
        monkeypatch.setenv("AIRFLOW_CONN_BEACON_WEBHOOK", json.dumps({"conn_type": "http", "host": r.url,
                                                                      "extra": {"auth": "none"}}))
        _state([("vip", "webhook", "cus_ann0001", payload), ("vip", "ads", "cus_ann0001", payload),
                ("vip", "file", "cus_ann0001", payload), ("vip", "email", "cus_ann0001", payload),
                ("vip", "webhook", "cus_bob0002", {"email": "bob@example.com"}),
                ("other", "sms", "cus_bob0002", {"email": "bob@example.com"})])
        out = remove_subject(settings(), Subject(given={"email": ("ann.lee@example.com",)},
                                                 customer_ids=("cus_ann0001",)))
        applied = list(r.applied.values())
    assert out == {"ads": "removed", "email": "not_supported", "file": "erased_with_files", "sms": "nothing_held",
                   "webhook": "removed"}
    # The webhook's delete: one remove row for Ann, with the key only (no e-mail sent back out).
    assert [(a["customer_id"], a["operation"], a["fields"]) for a in applied] == [("cus_ann0001", "remove", {})]
    uploads = list((tmp_path / "ads").rglob("vip-remove-*.csv"))
    assert len(uploads) == 1
    up = pd.read_csv(uploads[0])
    assert list(up.columns) == ["Email", "Phone"] and up.Email[0] != "ann.lee@example.com" and len(up.Email[0]) == 64
    with connect() as con:
        left = con.execute("SELECT destination, present FROM activation.sync_state WHERE customer_id = 'cus_ann0001' "
                           "ORDER BY 1").fetchall()
    assert left == [("ads", False), ("email", True), ("file", True), ("webhook", False)]
