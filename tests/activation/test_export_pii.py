"""Exports list the personal data they carry, and a destination receives only the columns it maps."""

from __future__ import annotations

import json

import pandas as pd
from support.activation_world import AS_OF, audience, segment, warehouse

from beacon.activation.destinations import Batch, RowResult
from beacon.activation.destinations.ads import CustomerMatch
from beacon.activation.destinations.file import FileExport
from beacon.activation.sync import run_sync


def _manifest(folder) -> tuple[dict, pd.DataFrame]:
    [data] = [p for p in folder.iterdir() if p.suffix in (".csv", ".parquet")]
    manifest = json.loads(data.with_name(data.stem + ".manifest.json").read_text())
    return manifest, pd.read_csv(data)


def test_file_manifest_lists_the_pii_columns_of_the_file(tmp_path):
    con = warehouse(10)
    a = audience()
    segment(con, a.name, ["c0", "c1"], note=["a", "b"])
    run_sync(con, a, [a], FileExport(str(tmp_path)), AS_OF)
    manifest, df = _manifest(tmp_path / a.name / "2026-06-30")
    # default mapping: the segment's columns plus email, first and last name, lead decile (none for these people)
    assert list(df.columns) == ["customer_id", "operation", "note", "email", "first_name", "last_name", "lead_decile"]
    assert manifest["pii_columns"] == {"customer_id": "identifier", "email": "email", "first_name": "name",
                                       "last_name": "name"}


def test_a_file_destination_with_fields_receives_and_writes_only_those(tmp_path):
    con = warehouse(10)
    a = audience()
    segment(con, a.name, ["c0", "c1", "c2"], note=["a", "b", "c"])
    received: list[list[str]] = []

    class Spy(FileExport):
        def send(self, batch: Batch) -> list[RowResult]:
            received.append(list(batch.rows.columns))
            return super().send(batch)

    run_sync(con, a, [a], Spy(str(tmp_path), fields=("email",)), AS_OF)
    # what the engine hands over: the key, the operation, its own bookkeeping and the mapped field; no phone, names
    assert received == [["customer_id", "operation", "version", "idempotency_key", "email"]]
    manifest, df = _manifest(tmp_path / a.name / "2026-06-30")
    assert list(df.columns) == ["customer_id", "operation", "email"]
    assert manifest["pii_columns"] == {"customer_id": "identifier", "email": "email"}


def test_ads_upload_manifest_lists_its_hashed_columns(tmp_path):
    con = warehouse(5)
    a = audience(channels=("ads",))
    segment(con, a.name, ["c0", "c1"])
    run_sync(con, a, [a], CustomerMatch(str(tmp_path)), AS_OF)
    [m] = list((tmp_path / a.name / "2026-06-30").glob("*.manifest.json"))
    assert json.loads(m.read_text())["pii_columns"] == {"Email": "email", "Phone": "phone"}
