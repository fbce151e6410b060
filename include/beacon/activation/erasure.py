"""Tell the destinations to forget an erased person (issue 27; docs/privacy.md "Destinations").

Every audience and destination whose acknowledged state (`activation.sync_state`) holds the person gets, per its
kind:
- webhook (a mirror sync): a `remove` row for each of the person's customer ids, through the destination's own send
  (the receiver deletes the member: its delete call), with no field besides the key;
- ads (customer match): a remove upload with the hashed e-mail and phone the platform was given (from the stored
  payload), the way a mirror sync removes a member;
- file exports into a folder of this machine: the exported files are rewritten without the person by the erasure
  itself (`beacon.privacy.files`): `erased_with_files`; a file export elsewhere (s3://, gcs://) gets a remove file;
- e-mail and SMS (insert-only: a message sent cannot be recalled): `not_supported`, as Segment reports it.

Run it before `beacon.privacy.erase.erase_subject`: it reads the last payloads from the state that erasure deletes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from beacon.activation.destinations import send_all
from beacon.activation.destinations.registry import NotConfigured, build
from beacon.activation.governance import ensure_tables
from beacon.config import Settings
from beacon.privacy.subject import Subject
from beacon.warehouse import clock, connect, transaction

REMOVED, ERASED_WITH_FILES, NOT_SUPPORTED, NOTHING_HELD = "removed", "erased_with_files", "not_supported", "nothing_held"


def _held(con: duckdb.DuckDBPyConnection, subject: Subject) -> pd.DataFrame:
    """The person's present members per audience and destination, with the last payload each received."""
    return con.execute("""SELECT audience, destination, customer_id, version, payload FROM activation.sync_state
        WHERE present AND customer_id IN (SELECT unnest($c)) ORDER BY audience, destination, customer_id""",
                       {"c": list(subject.customer_ids)}).df()


def _is_local(url: str, s: Settings) -> bool:
    """True when a file destination writes into a folder that erasure cleans (the data or exports folder)."""
    if "://" in url and not url.startswith("file://"):
        return False
    p = Path(url.removeprefix("file://")).resolve()
    return any(p == r or r in p.parents for r in (Path(s.data_dir).resolve(), Path(s.exports_dir).resolve()))


def _removal_rows(members: pd.DataFrame, with_contact: bool) -> pd.DataFrame:
    """Remove rows for the members: the key, and for a customer-match list the e-mail and phone it was given."""
    rows = pd.DataFrame({
        "customer_id": members.customer_id.astype(str), "operation": "remove",
        "version": members.version.fillna(0).astype(int) + 1})
    rows["idempotency_key"] = [hashlib.sha256(f"{a}|{d}|{c}|{v}|erasure".encode()).hexdigest()[:32] for a, d, c, v in
                               zip(members.audience, members.destination, rows.customer_id, rows.version, strict=True)]
    if with_contact:
        docs = [json.loads(p) if isinstance(p, str) and p else {} for p in members.payload]
        rows["email"] = [d.get("email") for d in docs]
        rows["phone_e164"] = [d.get("phone_e164") for d in docs]
    return rows


def _send_removes(con, dest, audience: str, members: pd.DataFrame, day: str) -> str:
    """Send the remove rows of one audience; mark the state absent for what the destination acknowledged."""
    rows = _removal_rows(members, with_contact=dest.channel == "ads")
    meta = {"audience": audience, "destination": dest.name, "run_id": f"erasure:{audience}:{dest.name}",
            "as_of": day, "reason": "erasure"}
    delivered, failed = set(), []
    for _, results in send_all(dest, dest.plan(rows, name=f"{audience}/{day}", meta=meta)):
        for r in results:
            (delivered.add(r.key) if r.status == "delivered" else failed.append(r.error or "failed"))
    if delivered:
        with transaction(con):
            con.execute("""UPDATE activation.sync_state SET present = false WHERE audience = $a AND destination = $d
                AND customer_id IN (SELECT unnest($c))""", {"a": audience, "d": dest.name, "c": sorted(delivered)})
    return REMOVED if not failed else f"failed: {failed[0][:200]}"


def _one_destination(con, s: Settings, name: str, members: pd.DataFrame, day: str) -> str:
    try:
        dest = build(name, str(s.exports_dir))
    except (NotConfigured, ValueError) as exc:
        return f"failed: {exc}"
    try:
        if dest.default_mode == "insert_only":
            return NOT_SUPPORTED
        if dest.channel == "file" and _is_local(getattr(dest, "base_url", ""), s):
            return ERASED_WITH_FILES
        statuses = [_send_removes(con, dest, a, g, day) for a, g in members.groupby("audience", sort=True)]
        return next((x for x in statuses if x != REMOVED), REMOVED)
    except Exception as exc:  # noqa: BLE001 - one destination's failure is its status, the others still run
        return f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        close = getattr(dest, "close", None)
        if close:
            close()


def remove_subject(settings: Settings, subject: Subject) -> dict[str, str]:
    """Destination -> status (`removed`, `erased_with_files`, `not_supported`, `nothing_held`, `failed: <why>`)
    for every destination Beacon has synced to."""
    with connect() as con:
        ensure_tables(con)
        every = [r[0] for r in con.execute("SELECT DISTINCT destination FROM activation.sync_state ORDER BY 1")
                 .fetchall()]
        held = _held(con, subject) if subject.customer_ids else pd.DataFrame(columns=["destination"])
        try:
            day = str(clock(con))[:10]  # names the remove batches' folder, like the sync's own
        except ValueError:  # no marts yet: only a name, the UTC day will do
            day = datetime.now(UTC).date().isoformat()
        out = {}
        for name in every:
            members = held[held.destination == name]
            out[name] = _one_destination(con, settings, name, members, day) if len(members) else NOTHING_HELD
    return out
