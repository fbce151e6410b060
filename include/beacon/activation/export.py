"""Deliver one audience to the file destination: members -> governance -> destination -> delivery log."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import duckdb
import pandas as pd

from beacon.activation.destinations.file import FileExport
from beacon.audiences import Audience

# Which consent channel a delivery channel needs. A file export carries email addresses that
# marketers mail, so it needs email consent too.
CONSENT_CHANNEL = {"email": "email", "file": "email", "webhook": "email", "ads": "ads"}


@dataclass
class DeliverySummary:
    audience: str
    destination: str
    as_of: str
    source_rows: int = 0
    delivered: int = 0
    held_out: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    location: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def governed_members(con: duckdb.DuckDBPyConnection, audience: Audience, channel: str) -> pd.DataFrame:
    """Segment members with the lead score, consent state and a deterministic holdout flag."""
    consent_channel = CONSENT_CHANNEL[channel]
    has_scores = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'ml' "
                             "AND table_name = 'scores'").fetchall()[0][0] > 0
    scores = ("LEFT JOIN ml.scores sc ON sc.customer_id = s.customer_id AND sc.model = 'lead_score'"
              if has_scores else "LEFT JOIN (SELECT NULL::VARCHAR AS customer_id, NULL::DOUBLE AS score, "
                                 "NULL::INTEGER AS decile) sc ON false")
    return con.execute(f"""
        SELECT s.*, sc.score AS lead_score, sc.decile AS lead_decile,
            CASE WHEN c.status = 'opt_in' THEN NULL
                 WHEN c.status = 'opt_out' THEN 'opted_out' ELSE 'no_consent' END AS suppression_reason,
            -- Stable hash of (audience, customer): the same person is always in or out of the control group.
            (('0x' || substr(md5(? || ':' || s.customer_id), 1, 8))::UBIGINT % 10000) / 100.0 < ? AS held_out
        FROM {audience.relation} s
        LEFT JOIN marts.dim_consent c ON c.customer_id = s.customer_id AND c.channel = ?
        {scores}
        ORDER BY s.customer_id
    """, [audience.name, audience.holdout_pct, consent_channel]).df()


def ensure_log(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS activation")
    con.execute("""CREATE TABLE IF NOT EXISTS activation.deliveries (
        run_key VARCHAR, audience VARCHAR, destination VARCHAR, customer_id VARCHAR, status VARCHAR,
        reason VARCHAR, as_of DATE)""")


def export_audience(con: duckdb.DuckDBPyConnection, audience: Audience, exports_url: str, as_of: str,
                    fmt: str = "csv") -> DeliverySummary:
    """Export the sendable members of `audience` for day `as_of`; re-running the day rewrites the same file."""
    dest = FileExport(exports_url, fmt=fmt)
    members = governed_members(con, audience, "file")
    summary = DeliverySummary(audience=audience.name, destination=dest.name, as_of=as_of, source_rows=len(members))
    suppressed = members[members.suppression_reason.notna()]
    held = members[members.suppression_reason.isna() & members.held_out]
    send = members[members.suppression_reason.isna() & ~members.held_out].drop(columns=["suppression_reason", "held_out"])
    summary.suppressed = suppressed.suppression_reason.value_counts().sort_index().to_dict()
    summary.held_out = len(held)
    meta = {"audience": audience.name, "as_of": as_of, "owner": audience.owner, "description": audience.description,
            "held_out": len(held), "suppressed": summary.suppressed}
    results = []
    for batch in dest.plan(send, name=f"{audience.name}/{as_of}", meta=meta):
        results += dest.send(batch)
    summary.delivered = sum(r.status == "delivered" for r in results)
    summary.location = f"{exports_url.rstrip('/')}/{audience.name}/{as_of}"
    log = pd.concat([
        pd.DataFrame({"customer_id": [r.key for r in results], "status": [r.status for r in results], "reason": None}),
        pd.DataFrame({"customer_id": held.customer_id, "status": "held_out", "reason": "holdout"}),
        pd.DataFrame({"customer_id": suppressed.customer_id, "status": "suppressed", "reason": suppressed.suppression_reason}),
    ], ignore_index=True)
    run_key = f"{audience.name}:{dest.name}:{as_of}"
    ensure_log(con)
    con.register("_log", log)
    con.execute("BEGIN TRANSACTION")
    con.execute("DELETE FROM activation.deliveries WHERE run_key = ?", [run_key])
    con.execute("INSERT INTO activation.deliveries SELECT ?, ?, ?, customer_id, status, reason, ?::DATE FROM _log",
                [run_key, audience.name, dest.name, as_of])
    con.execute("COMMIT")
    con.unregister("_log")
    return summary
