"""Build a destination by name from its Airflow connection `beacon_<name>` (AIRFLOW_CONN_BEACON_<NAME> works too).

The connection type picks the class: fs/file -> file export, smtp/email -> SMTP, http/https/webhook ->
webhook, ads/customer_match -> customer-match upload, sms -> a Twilio-style SMS API. Without a connection, only `file` has a default
(the local exports folder); any other destination is reported as not configured.
"""

from __future__ import annotations

from beacon.activation.destinations import Destination
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


def policy_overrides(name: str) -> dict:
    """Governance settings a destination's connection may override (extra: opt_in_required, frequency_cap,
    counts_as_message, priority_arbitration)."""
    conn = connection(f"beacon_{name}")
    extra = conn.extra_dejson if conn is not None else {}
    out = {k: extra[k] for k in ("opt_in_required", "frequency_cap", "counts_as_message") if k in extra}
    if "priority_arbitration" in extra:
        out["exclusive"] = bool(extra["priority_arbitration"])
    return out


def build(name: str, default_exports_url: str) -> Destination:
    """The destination called `name`, configured from connection `beacon_<name>`."""
    from beacon.activation.destinations.ads import CustomerMatch
    from beacon.activation.destinations.file import FileExport
    from beacon.activation.destinations.sms import TwilioSms
    from beacon.activation.destinations.smtp import SmtpEmail
    from beacon.activation.destinations.webhook import Webhook

    conn_id = f"beacon_{name}"
    conn = connection(conn_id)
    if conn is None:
        if name == "file":
            return FileExport(default_exports_url, name="file")
        raise NotConfigured(f"destination {name!r} has no Airflow connection {conn_id!r} "
                            f"(set AIRFLOW_CONN_{conn_id.upper()} or add it in the Airflow UI)")
    kind = conn.extra_dejson.get("kind") or KINDS.get((conn.conn_type or "").lower()) or name
    if kind == "file":
        return FileExport.from_connection(name, conn, default_exports_url)
    if kind == "email":
        return SmtpEmail.from_connection(name, conn)
    if kind == "webhook":
        return Webhook.from_connection(name, conn)
    if kind == "sms":
        return TwilioSms.from_connection(name, conn)
    if kind == "ads":
        return CustomerMatch.from_connection(name, conn, default_exports_url)
    raise ValueError(f"connection {conn_id}: cannot tell the destination kind from conn_type {conn.conn_type!r}; "
                     f"set extra.kind to one of {', '.join(CHANNELS)}")
