"""Unsubscribe tokens and preference records, shared by the SMTP destination, the service and governance.

The SMTP destination signs each unsubscribe link (`unsubscribe_token`); the service verifies it
(`verify_token`) and writes the person's choice as consent records: a CSV file in the landing day folder
(`consent.csv.pref-<id>`, fsynced), which the consent ingest loads like any consent file. So that an
unsubscribe stops the very next send, before any ingest has run, governance first absorbs these pending
files into `activation.preferences` (`absorb_pending`, idempotent on record_id) and reads them there.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

TOKEN_DAYS = 90  # a link works for this long after the send's as-of time
PREF_PREFIX = "consent.csv.pref-"  # matched by the consent source's `consent.csv*`
FIELDS = ("consent_id", "email", "phone", "channel", "status", "source", "recorded_at", "topic", "customer_id",
          "audience", "proof")


def token_expiry(as_of) -> int:
    """Epoch seconds when a link signed for a send at `as_of` (the warehouse clock) expires."""
    t = as_of if isinstance(as_of, datetime) else datetime.fromisoformat(str(as_of))
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return int((t + timedelta(days=TOKEN_DAYS)).timestamp())


def unsubscribe_token(secret: str, audience: str, customer_id: str, expires: int | None = None) -> str:
    """The link's signature: HMAC-SHA256 over audience, customer and expiry (no lookup table needed)."""
    msg = f"{audience}:{customer_id}" + ("" if expires is None else f":{expires}")
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()[:32]


def verify_token(secret: str, audience: str, customer_id: str, expires: str | int | None, token: str,
                 now: float) -> str | None:
    """None when the token is genuine and current; else the reason (`forged_token` or `expired_token`)."""
    try:
        exp = None if expires in (None, "") else int(expires)
    except (TypeError, ValueError):
        return "forged_token"
    if not hmac.compare_digest(unsubscribe_token(secret, audience, customer_id, exp), str(token)):
        return "forged_token"
    if exp is None or exp < now:  # unsigned expiry (an old-style link) counts as expired
        return "expired_token"
    return None


def record_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def preference_file(records: list[dict]) -> tuple[str, bytes]:
    """The CSV name and bytes of one batch of preference records (named by their ids: a retry lands once)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, FIELDS, lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in FIELDS})
    return PREF_PREFIX + record_id(*(r["consent_id"] for r in records)), buf.getvalue().encode()


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS activation")
    con.execute("""CREATE TABLE IF NOT EXISTS activation.preferences (
        consent_id VARCHAR PRIMARY KEY, customer_id VARCHAR, email VARCHAR, phone VARCHAR, channel VARCHAR,
        topic VARCHAR, audience VARCHAR, status VARCHAR, source VARCHAR, recorded_at TIMESTAMP, file VARCHAR)""")


def pending_files(landing_dir: Path) -> list[Path]:
    """Preference files in the landing day folders (local landing zones only)."""
    root = Path(landing_dir)
    if not root.is_dir():
        return []
    return sorted(root.glob(f"[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]/{PREF_PREFIX}*"))


def absorb_pending(con: duckdb.DuckDBPyConnection, landing_dir: Path | str | None) -> int:
    """Copy not-yet-seen preference records into activation.preferences; the number of new records."""
    ensure_table(con)
    if landing_dir is None or "://" in str(landing_dir):
        return 0
    files = pending_files(Path(landing_dir))
    if not files:
        return 0
    known = {r[0] for r in con.execute("SELECT DISTINCT file FROM activation.preferences").fetchall()}
    rows = []
    for f in files:
        if str(f) in known:
            continue
        for r in csv.DictReader(io.StringIO(f.read_text())):
            rows.append([r["consent_id"], r.get("customer_id") or None, r.get("email") or None,
                         r.get("phone") or None, r["channel"], r.get("topic") or None, r.get("audience") or None,
                         r["status"], r.get("source") or None, r["recorded_at"], str(f)])
    if rows:
        con.executemany("INSERT OR IGNORE INTO activation.preferences VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def now_text(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
