"""Build a destination by name from its Airflow connection `beacon_<name>` (AIRFLOW_CONN_BEACON_<NAME> works too).

The connection type picks the class: fs/file -> file export, smtp/email -> SMTP, http/https/webhook ->
webhook, ads/customer_match -> customer-match upload, sms -> a Twilio-style SMS API. Without a connection, only `file` has a default
(the local exports folder); any other destination is reported as not configured.
"""

from __future__ import annotations

from beacon.activation.destinations import Destination, parse_extra
from beacon.audiences import CHANNELS

# Connection type -> destination kind; each channel's own name is a kind too.
KINDS = {"fs": "file", "smtp": "email", "http": "webhook", "https": "webhook", "customer_match": "ads",
         **{c: c for c in CHANNELS}}


class NotConfigured(LookupError):
    """No Airflow connection for a destination that needs one."""


def connection(conn_id: str):
    """The Airflow connection, or None when it is not defined (env var, secrets backend or metadata DB)."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return Connection.get(conn_id)
    except AirflowNotFoundException:
        return None


def is_configured(name: str) -> bool:
    """True when the destination can be built: it has a connection, or it is `file` (the exports folder)."""
    return name == "file" or connection(f"beacon_{name}") is not None


def _class_for(kind: str):
    """The destination class of a kind (imported here: each pulls its own libraries)."""
    from beacon.activation.destinations.ads import CustomerMatch
    from beacon.activation.destinations.file import FileExport
    from beacon.activation.destinations.sms import TwilioSms
    from beacon.activation.destinations.smtp import SmtpEmail
    from beacon.activation.destinations.webhook import Webhook

    return {"file": FileExport, "email": SmtpEmail, "webhook": Webhook, "sms": TwilioSms, "ads": CustomerMatch}.get(kind)


def _kind(name: str, conn) -> str:
    """The destination kind of connection `beacon_<name>`: extra.kind, else its conn_type, else the name."""
    kind = (conn.extra_dejson or {}).get("kind") or KINDS.get((conn.conn_type or "").lower()) or name
    if _class_for(kind) is None:
        raise ValueError(f"connection beacon_{name}: cannot tell the destination kind from conn_type "
                         f"{conn.conn_type!r}; set extra.kind to one of {', '.join(CHANNELS)}")
    return kind


def policy_overrides(name: str) -> dict:
    """Governance settings a destination's connection may override (extra: opt_in_required, frequency_cap,
    counts_as_message, priority_arbitration), read through the destination's typed extras (unknown keys fail)."""
    conn = connection(f"beacon_{name}")
    if conn is None:
        return {}
    x = parse_extra(_class_for(_kind(name, conn)).Extra, name, conn)
    out = {k: getattr(x, k) for k in ("opt_in_required", "frequency_cap", "counts_as_message")
           if getattr(x, k) is not None}
    if x.priority_arbitration is not None:
        out["exclusive"] = x.priority_arbitration
    return out


def build(name: str, default_exports_url: str) -> Destination:
    """The destination called `name`, configured from connection `beacon_<name>` (its extras typed: an unknown
    key raises beacon.config.ConfigError naming the key and the connection)."""
    conn_id = f"beacon_{name}"
    conn = connection(conn_id)
    if conn is None:
        if name == "file":
            return _class_for("file")(default_exports_url, name="file")
        raise NotConfigured(f"destination {name!r} has no Airflow connection {conn_id!r} "
                            f"(set AIRFLOW_CONN_{conn_id.upper()} or add it in the Airflow UI)")
    kind = _kind(name, conn)
    cls = _class_for(kind)
    if kind in ("file", "ads"):
        return cls.from_connection(name, conn, default_exports_url)
    return cls.from_connection(name, conn)
