"""Audiences are dbt models under models/segments with `meta.audience`; this module discovers them
from the dbt manifest and checks the contract, naming the file and field of any mistake."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

# The delivery channels an audience may name (meta.audience.channels): the one list. Governance has a
# policy per channel and the destination registry a connection kind per channel.
CHANNELS = ("file", "email", "webhook", "ads", "sms")
REFRESH = frozenset({"hourly", "daily", "weekly"})
REQUIRED = ("name", "description", "owner", "channels", "priority", "holdout_pct", "refresh")
# Keys an audience takes from its dbt model when meta.audience leaves them out (meta key -> model key).
FROM_MODEL = {"name": "name", "description": "description"}


class ContractError(ValueError):
    """A segment whose audience contract is malformed."""


@dataclass(frozen=True)
class Audience:
    """One deliverable audience: a segment table plus its delivery settings."""

    name: str
    description: str
    owner: str
    channels: tuple[str, ...]
    priority: int
    holdout_pct: float
    refresh: str
    relation: str  # schema.table in the warehouse
    model: str
    path: str
    # The subscription group a person can leave on its own (preference centre, SendGrid group_unsubscribe);
    # meta.audience.topic, default "marketing".
    topic: str = "marketing"


def _check(meta: dict, where: str) -> None:
    for key in REQUIRED:
        if key not in meta:
            hint = f" (and the model has no {FROM_MODEL[key]} to default to)" if key in FROM_MODEL else ""
            raise ContractError(f"{where}: meta.audience.{key} is missing{hint}")
    if not isinstance(meta["channels"], list) or not meta["channels"]:
        raise ContractError(f"{where}: meta.audience.channels must be a non-empty list")
    unknown = [c for c in meta["channels"] if c not in CHANNELS]
    if unknown:
        raise ContractError(f"{where}: meta.audience.channels has unknown channel(s) {unknown}; known: {sorted(CHANNELS)}")
    if not isinstance(meta["priority"], int):
        raise ContractError(f"{where}: meta.audience.priority must be an integer")
    hp = meta["holdout_pct"]
    if not isinstance(hp, int | float) or not 0 <= hp < 100:
        raise ContractError(f"{where}: meta.audience.holdout_pct must be a number in [0, 100), got {hp!r}")
    if meta["refresh"] not in REFRESH:
        raise ContractError(f"{where}: meta.audience.refresh must be one of {sorted(REFRESH)}")
    topic = meta.get("topic", "marketing")
    if not isinstance(topic, str) or not re.fullmatch(r"[a-z0-9_]{1,64}", topic):
        raise ContractError(f"{where}: meta.audience.topic must be a lower-case name ([a-z0-9_]), got {topic!r}")


def discover(manifest_path: Path) -> list[Audience]:
    """All audiences in the manifest, sorted by priority (highest first) then name.

    Parsed once per content of the file (its digest): an activation run asks for every audience of every
    destination, and each call parsed the whole manifest (1.4 MB of JSON) again."""
    text = Path(manifest_path).read_bytes()
    key = hashlib.blake2b(text, digest_size=16).digest()
    if key not in _DISCOVERED:
        if len(_DISCOVERED) >= 4:
            _DISCOVERED.clear()
        _DISCOVERED[key] = _discover(text)
    return list(_DISCOVERED[key])


_DISCOVERED: dict[bytes, tuple[Audience, ...]] = {}  # manifest digest -> its audiences (Audience is frozen)


def _discover(text: bytes) -> tuple[Audience, ...]:
    manifest = json.loads(text)
    found: dict[str, Audience] = {}
    for node in manifest["nodes"].values():
        if node.get("resource_type") != "model" or not node["original_file_path"].startswith("models/segments/"):
            continue
        meta = (node.get("config", {}).get("meta") or node.get("meta") or {}).get("audience")
        where = f"{node['original_file_path']} (model {node['name']})"
        if meta is None:
            raise ContractError(f"{where}: segment has no meta.audience block in its YAML")
        # The model's name and description are the audience's unless meta.audience says otherwise: one
        # description, in dbt docs and at the destinations.
        meta = {**{k: node.get(m) for k, m in FROM_MODEL.items() if node.get(m)}, **meta}
        _check(meta, where)
        if "customer_id" not in node.get("columns", {}):
            raise ContractError(f"{where}: the key column customer_id is not declared in the YAML")
        if meta["name"] in found:
            raise ContractError(f"{where}: meta.audience.name {meta['name']!r} is already used by {found[meta['name']].path}")
        found[meta["name"]] = Audience(
            name=meta["name"], description=meta["description"], owner=meta["owner"], channels=tuple(meta["channels"]),
            priority=int(meta["priority"]), holdout_pct=float(meta["holdout_pct"]), refresh=meta["refresh"],
            relation=f"{node['schema']}.{node.get('alias') or node['name']}", model=node["name"],
            path=node["original_file_path"], topic=meta.get("topic", "marketing"),
        )
    return tuple(sorted(found.values(), key=lambda a: (-a.priority, a.name)))


def find_audience(manifest_path: Path, name: str) -> tuple[Audience, list[Audience]]:
    """The audience called `name` and all audiences (priority needs them all)."""
    audiences = discover(manifest_path)
    match = [a for a in audiences if a.name == name]
    if not match:
        raise ValueError(f"no audience named {name!r}; known: {', '.join(a.name for a in audiences)}")
    return match[0], audiences


# ---------------------------------------------------------------------------------------------- membership


def _ensure_membership(con) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS audiences")
    con.execute("""CREATE TABLE IF NOT EXISTS audiences.membership_events (
        audience VARCHAR, customer_id VARCHAR, change VARCHAR, as_of DATE, qualifying JSON)""")


def _previous_members_sql() -> str:
    """The members of audience $audience before day $as_of: each person's latest change there is an entry (on
    one day an exit counts after an entry, as it always has). One hash aggregate over the audience's changes,
    which grow with churn, not with the days."""
    return """SELECT customer_id FROM audiences.membership_events
        WHERE audience = $audience AND as_of < $as_of::DATE
        GROUP BY customer_id
        HAVING arg_max(change, date_diff('day', DATE '1970-01-01', as_of) * 2 + (change <> 'entered')::INTEGER)
            = 'entered'"""


def record_membership(con, audience: Audience, as_of: str) -> dict:
    """Record who entered and who left `audience` on `as_of` (re-running a day rewrites that day).

    Entries keep the row that qualified the person, so "why did this person get this" has an answer. The diff
    runs inside DuckDB and only the changes are written (and only entries are serialized): a day's cost follows
    the audience's size and its changes, not a copy of every member through Python."""
    from beacon.warehouse import (
        transaction,  # here, not at the top: DAG files import this module at parse time
    )

    _ensure_membership(con)
    p = {"audience": audience.name, "as_of": as_of}
    try:
        with transaction(con):
            con.execute(f"CREATE OR REPLACE TEMP TABLE _members_before AS {_previous_members_sql()}", p)
            con.execute("DELETE FROM audiences.membership_events WHERE audience = $audience AND as_of = $as_of::DATE",
                        p)
            entered = con.execute(f"""INSERT INTO audiences.membership_events
                SELECT $audience, s.customer_id, 'entered', $as_of::DATE, to_json(s)::VARCHAR::JSON
                FROM {audience.relation} s
                WHERE NOT EXISTS (SELECT 1 FROM _members_before b WHERE b.customer_id = s.customer_id)""",
                                  p).fetchall()[0][0]
            exited = con.execute(f"""INSERT INTO audiences.membership_events
                SELECT $audience, b.customer_id, 'exited', $as_of::DATE, NULL FROM _members_before b
                WHERE NOT EXISTS (SELECT 1 FROM {audience.relation} s WHERE s.customer_id = b.customer_id)
                ORDER BY b.customer_id""", p).fetchall()[0][0]
            size = con.execute(f"SELECT count(DISTINCT customer_id) FROM {audience.relation}").fetchall()[0][0]
    finally:
        con.execute("DROP TABLE IF EXISTS _members_before")
    return {"audience": audience.name, "as_of": as_of, "size": int(size), "entered": int(entered),
            "exited": int(exited)}


def membership_changes(con, audience: str | None = None) -> list[dict]:
    """Entries and exits per audience and day, newest first."""
    _ensure_membership(con)
    where = "WHERE audience = ?" if audience else ""
    rows = con.execute(f"""
        SELECT audience, as_of, count(*) FILTER (WHERE change = 'entered'), count(*) FILTER (WHERE change = 'exited')
        FROM audiences.membership_events {where} GROUP BY 1, 2 ORDER BY 2 DESC, 1""",
                       [audience] if audience else []).fetchall()
    return [{"audience": a, "as_of": str(d), "entered": e, "exited": x} for a, d, e, x in rows]


# ---------------------------------------------------------------------------------------------- analyst views


def status(con, audiences: list[Audience]) -> list[dict]:
    """Each audience's contract with its current size (None: not built yet) and its last recorded refresh."""
    from beacon.warehouse import table_exists

    has_events = table_exists(con, "audiences", "membership_events")
    rows = []
    for a in audiences:
        schema, table = a.relation.split(".")
        size = con.execute(f"SELECT count(*) FROM {a.relation}").fetchall()[0][0] if table_exists(con, schema, table) else None
        last = None
        if has_events:
            last = con.execute("SELECT max(as_of) FROM audiences.membership_events WHERE audience = ?",
                               [a.name]).fetchall()[0][0]
        rows.append({"name": a.name, "owner": a.owner, "size": size, "channels": list(a.channels),
                     "last_refresh": str(last) if last else None,
                     "priority": a.priority, "holdout_pct": a.holdout_pct, "refresh": a.refresh, "path": a.path})
    return rows


def preview(con, audience: Audience, others: list[Audience], sample: int = 10) -> dict:
    """Size, a sample of members with the columns that qualified them, and overlap with every other audience."""
    size = con.execute(f"SELECT count(*) FROM {audience.relation}").fetchall()[0][0]
    rows = con.execute(f"SELECT * FROM {audience.relation} ORDER BY customer_id LIMIT ?", [sample]).df()
    overlap = []
    for o in others:
        if o.name == audience.name:
            continue
        try:
            n = con.execute(f"SELECT count(*) FROM {audience.relation} a JOIN {o.relation} b USING (customer_id)").fetchall()[0][0]
        except Exception:  # noqa: BLE001 - an audience not built yet has no overlap to show
            continue
        overlap.append({"audience": o.name, "shared": n, "share_of_this": round(n / size, 4) if size else 0.0})
    return {"audience": audience.name, "size": size, "sample": json.loads(rows.to_json(orient="records", date_format="iso")),
            "overlap": sorted(overlap, key=lambda r: -r["shared"])}

