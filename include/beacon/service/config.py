"""The service's configuration: paths from `beacon.config.Settings`, secrets from a file or an Airflow connection.

Secrets (write keys, webhook keys, the unsubscribe key) are never in code or committed config: they come
from the JSON file named by BEACON_SERVICE_CONFIG (kept outside the repository), or else from the extras
of the Airflow connection `beacon_service` (same keys). docs/service.md lists the keys.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from beacon.activation.offers import snapshot_path
from beacon.config import Settings, settings

CONN_ID = "beacon_service"
_TOPIC = re.compile(r"^[a-z0-9_]{1,64}$")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 500_000  # Segment: a batch request is at most 500 KB
    max_event_bytes: int = 32 << 10  # Segment: one event is at most 32 KB (32,768 bytes, as its libraries count)
    max_batch_events: int = 2_500
    rate_events_per_second: float = 20_000.0  # per write key (token bucket)
    rate_burst: float = 40_000.0
    webhook_tolerance_seconds: int = 300  # a signed timestamp older (or newer) than this is a replay


@dataclass(frozen=True)
class ServiceConfig:
    landing_dir: Path
    write_keys: dict[str, str]  # write key -> source name
    sendgrid_public_key: str | None = None  # base64 DER of SendGrid's ECDSA P-256 verification key
    mailgun_signing_key: str | None = None
    postmark_user: str | None = None
    postmark_password: str | None = None
    unsubscribe_secret: str | None = None  # the SMTP destination's unsubscribe_secret
    topics: dict[str, str] = field(default_factory=lambda: {"marketing": "News and offers"})  # name -> label
    offers_snapshot: Path | None = None
    form_secret: str | None = None  # signs double opt-in confirmation links
    smtp: dict | None = None  # {"host", "port", "from", "username", "password"}: confirmation emails
    sms: dict | None = None  # {"auth_token", "help_text"}: inbound SMS keywords (Twilio-style signature)
    public_base_url: str = "http://127.0.0.1:8765"  # how people reach this service (confirmation links)
    limits: Limits = field(default_factory=Limits)
    rotate_seconds: float = 2.0
    rotate_bytes: int = 16 << 20

    def __repr__(self) -> str:  # secrets never reach a log through a repr
        return f"ServiceConfig(landing_dir={self.landing_dir!s}, sources={sorted(set(self.write_keys.values()))})"


def _from_connection() -> dict | None:
    try:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:  # pragma: no cover - Airflow is locked in
        return None
    try:
        return dict(BaseHook.get_connection(CONN_ID).extra_dejson or {})
    except (AirflowNotFoundException, RuntimeError):
        return None


def from_dict(doc: dict, s: Settings, where: str) -> ServiceConfig:
    """Validate one configuration document (errors name the key)."""
    keys = doc.get("write_keys") or {}
    if not isinstance(keys, dict) or not all(isinstance(k, str) and k and isinstance(v, str) for k, v in keys.items()):
        raise ValueError(f"{where}: write_keys must map each write key to its source name")
    limits = doc.get("limits") or {}
    unknown = set(limits) - set(Limits.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{where}: limits: unknown key(s) {sorted(unknown)}")
    topics = doc.get("topics") or {"marketing": "News and offers"}
    bad = [t for t in topics if not _TOPIC.match(t)]
    if bad:
        raise ValueError(f"{where}: topics: names must match {_TOPIC.pattern}: {bad}")
    snap = doc.get("offers_snapshot")
    return ServiceConfig(
        landing_dir=Path(doc["landing_dir"]) if doc.get("landing_dir") else s.landing_dir,
        write_keys=dict(keys), sendgrid_public_key=doc.get("sendgrid_public_key"),
        mailgun_signing_key=doc.get("mailgun_signing_key"), postmark_user=doc.get("postmark_user"),
        postmark_password=doc.get("postmark_password"), unsubscribe_secret=doc.get("unsubscribe_secret"),
        topics=dict(topics),
        offers_snapshot=Path(snap) if snap else snapshot_path(s),
        form_secret=doc.get("form_secret"), smtp=doc.get("smtp"), sms=doc.get("sms"),
        public_base_url=str(doc.get("public_base_url", "http://127.0.0.1:8765")).rstrip("/"),
        limits=Limits(**limits), rotate_seconds=float(doc.get("rotate_seconds", 2.0)),
        rotate_bytes=int(doc.get("rotate_bytes", 16 << 20)))


def load_config(s: Settings | None = None) -> ServiceConfig:
    """The configuration from BEACON_SERVICE_CONFIG, else the `beacon_service` connection."""
    s = s or settings()
    if s.service_config:
        p = Path(s.service_config)
        try:
            doc = json.loads(p.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"BEACON_SERVICE_CONFIG={p}: no such file") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"BEACON_SERVICE_CONFIG={p}: not valid JSON ({exc})") from None
        return from_dict(doc, s, str(p))
    doc = _from_connection()
    if doc is None:
        raise ValueError(f"no service configuration: set BEACON_SERVICE_CONFIG to a JSON file or define the Airflow "
                         f"connection {CONN_ID} (docs/service.md)")
    return from_dict(doc, s, f"connection {CONN_ID}")
