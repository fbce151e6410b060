"""Ad-platform customer match: normalized, SHA-256-hashed emails and phones as an upload file (adds and removes).

Preparation follows the platforms' published rules:
- Google Ads Customer Match: trim and lowercase emails, and drop the dots before the domain of gmail.com
  and googlemail.com addresses; phones in E.164 with the leading `+`; SHA-256, lowercase hex.
- Meta custom audiences: trim and lowercase emails; phones as digits only with the country code (no `+`,
  no leading zeros); SHA-256, lowercase hex.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import pandas as pd
import phonenumbers

from beacon.activation.destinations import Batch, RowResult, StorageExtra, parse_extra
from beacon.activation.destinations.file import batch_id, storage_options_from, write_with_manifest

PLATFORMS = ("google", "meta")
COLUMNS = {"google": ("Email", "Phone"), "meta": ("EMAIL", "PHONE")}


class AdsExtra(StorageExtra):
    """Extras of a customer-match connection."""

    platform: Literal["google", "meta"] = "google"
    region: str = "US"  # default phone region for numbers without a country code


def sha256(value: str | None) -> str | None:
    """Lowercase hex SHA-256 of the UTF-8 value (None stays None)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest() if value else None


def normalize_email(email: str | None, platform: str) -> str | None:
    """Trim and lowercase; Google also drops the dots of gmail.com / googlemail.com local parts."""
    if not isinstance(email, str):
        return None
    e = email.strip().lower()
    if e.count("@") != 1:
        return None
    local, domain = e.split("@")
    if not local or "." not in domain:
        return None
    if platform == "google" and domain in ("gmail.com", "googlemail.com"):
        local = local.replace(".", "")
    return f"{local}@{domain}"


def normalize_phone(phone: str | None, platform: str, region: str = "US") -> str | None:
    """E.164 (`+14155550100`) for Google, digits with country code (`14155550100`) for Meta; None if not a valid number."""
    if not isinstance(phone, str) or not phone.strip():
        return None
    try:
        n = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(n):
        return None
    e164 = phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
    return e164 if platform == "google" else e164.lstrip("+")


class CustomerMatch:
    """Writes `<audience>-add-<id>.csv` and `<audience>-remove-<id>.csv` upload files with a manifest each."""

    channel = "ads"
    required_any: tuple[str, ...] = ("email", "phone_e164")
    default_mode = "mirror"
    fields: tuple[str, ...] | None = ("email", "phone_e164")
    Extra = AdsExtra

    def __init__(self, base_url: str, platform: str = "google", region: str = "US",
                 storage_options: dict | None = None, name: str = "ads"):
        if platform not in PLATFORMS:
            raise ValueError(f"customer match platform must be one of {PLATFORMS}, not {platform!r}")
        self.name, self.base_url, self.platform, self.region = name, base_url.rstrip("/"), platform, region
        self.storage_options = storage_options or {}

    @classmethod
    def from_connection(cls, name: str, conn, default_url: str) -> CustomerMatch:
        """extra: url (folder or fsspec URL), platform (google | meta), region (default phone region)."""
        x = parse_extra(AdsExtra, name, conn)
        return cls(x.url or conn.host or default_url, platform=x.platform, region=x.region,
                   storage_options=storage_options_from(conn, x), name=name)

    def prepare(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Normalized and hashed identifiers per row (what the platform receives); the raw values never leave."""
        email_col, phone_col = COLUMNS[self.platform]
        return pd.DataFrame({
            "customer_id": rows.customer_id.astype(str),
            email_col: [sha256(normalize_email(e, self.platform)) for e in rows.get("email", [None] * len(rows))],
            phone_col: [sha256(normalize_phone(p, self.platform, self.region))
                        for p in rows.get("phone_e164", [None] * len(rows))],
        })

    def plan(self, rows: pd.DataFrame, name: str, meta: dict) -> list[Batch]:
        """One upload per operation: adds and updates go to the add list, removes to the remove list."""
        rows = rows.sort_values("customer_id", kind="stable").reset_index(drop=True)
        out = []
        for op, mask in (("add", rows.operation != "remove"), ("remove", rows.operation == "remove")):
            part = rows[mask].reset_index(drop=True)
            if len(part):
                out.append(Batch(name=name, rows=part, meta={**meta, "list_operation": op, "batch_id": batch_id(part)}))
        return out

    def send(self, batch: Batch) -> list[RowResult]:
        """Write the upload file; rows with neither a valid email nor a valid phone fail with the reason."""
        prepared = self.prepare(batch.rows)
        email_col, phone_col = COLUMNS[self.platform]
        ok = prepared[email_col].notna() | prepared[phone_col].notna()
        stem = f"{batch.meta.get('audience', 'audience')}-{batch.meta['list_operation']}-{batch.meta['batch_id']}"
        # The upload holds hashed e-mails and phones: still personal data (pseudonymous), listed in the manifest.
        meta = {**batch.meta, "platform": self.platform, "hashing": "sha256",
                "pii_columns": {email_col: "email", phone_col: "phone"}}
        if ok.any():
            write_with_manifest(self.base_url, batch.name, stem, prepared.loc[ok, [email_col, phone_col]], "csv", meta,
                                self.storage_options)
        return [RowResult(key=k, status="delivered") if good else
                RowResult(key=k, status="failed", error="invalid: no valid email or phone after normalization")
                for k, good in zip(prepared.customer_id, ok, strict=True)]
