"""The service's configuration: paths from `beacon.config.Settings`, secrets from a file or an Airflow connection.

Secrets (write keys, webhook keys, the unsubscribe key) are never in code or committed config: they come
from the JSON file named by BEACON_SERVICE_CONFIG (kept outside the repository), or else from the extras
of the Airflow connection `beacon_service` (same keys). docs/service.md lists the keys; a key the document
does not declare (a typo) is refused with its name and where it was read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from beacon.activation.offers import snapshot_path
from beacon.config import Settings, StrictConfig, parse_config, settings

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
    form_per_address: int = 3  # confirmations per address (keyed hash) per form window
    form_per_client: int = 20  # form posts per client IP per form window
    form_window_seconds: int = 3600


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
    offers_keys: dict[str, str] = field(default_factory=dict)  # server-side offers key -> site name
    offers_token_secret: str | None = None  # signs short-lived visitor tokens (GET /v1/offers)
    admin_keys: dict[str, str] = field(default_factory=dict)  # admin key -> operator name (privacy requests)
    privacy_key: str | None = field(default=None, repr=False)  # BEACON_PRIVACY_KEY (Settings): keyed hashes
    privacy_due_days: int = 30
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


class _Smtp(StrictConfig):
    """`smtp`: the server that sends double opt-in confirmation emails."""

    host: str
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field(alias="from")
    username: str | None = None
    password: str | None = None


class _Sms(StrictConfig):
    """`sms`: inbound SMS keywords (Twilio-style signature)."""

    auth_token: str | None = None
    help_text: str | None = None


class _Limits(StrictConfig):
    max_body_bytes: int = Field(Limits.max_body_bytes, ge=1)
    max_event_bytes: int = Field(Limits.max_event_bytes, ge=1)
    max_batch_events: int = Field(Limits.max_batch_events, ge=1)
    rate_events_per_second: float = Field(Limits.rate_events_per_second, gt=0)
    rate_burst: float = Field(Limits.rate_burst, gt=0)
    webhook_tolerance_seconds: int = Field(Limits.webhook_tolerance_seconds, ge=1)
    form_per_address: int = Field(Limits.form_per_address, ge=1)
    form_per_client: int = Field(Limits.form_per_client, ge=1)
    form_window_seconds: int = Field(Limits.form_window_seconds, ge=1)


class ServiceDoc(StrictConfig):
    """The configuration document (the JSON file or the connection's extras): every key declared, so a typo
    is refused with its name (docs/service.md lists the keys)."""

    write_keys: dict[str, str] = Field(default_factory=dict)  # write key -> source name
    sendgrid_public_key: str | None = None
    mailgun_signing_key: str | None = None
    postmark_user: str | None = None
    postmark_password: str | None = None
    unsubscribe_secret: str | None = None
    topics: dict[str, str] | None = None
    offers_snapshot: str | None = None
    offers_keys: dict[str, str] = Field(default_factory=dict)  # offers key -> site name
    offers_token_secret: str | None = Field(None, min_length=32)
    admin_keys: dict[str, str] = Field(default_factory=dict)  # admin key -> operator name
    form_secret: str | None = None
    smtp: _Smtp | None = None
    sms: _Sms | None = None
    public_base_url: str = "http://127.0.0.1:8765"
    limits: _Limits | None = None
    rotate_seconds: float = Field(2.0, gt=0)
    rotate_bytes: int = Field(16 << 20, ge=1)
    landing_dir: str | None = None

    @field_validator("write_keys")
    @classmethod
    def _keys(cls, v: dict[str, str]) -> dict[str, str]:
        if not all(k and src for k, src in v.items()):
            raise ValueError("must map each write key to its source name")
        return v

    @field_validator("offers_keys")
    @classmethod
    def _offers_keys(cls, v: dict[str, str]) -> dict[str, str]:
        if not all(len(k) >= 16 and site for k, site in v.items()):
            raise ValueError("must map each offers key (at least 16 characters) to its site name")
        return v

    @field_validator("admin_keys")
    @classmethod
    def _admin_keys(cls, v: dict[str, str]) -> dict[str, str]:
        if not all(len(k) >= 24 and name for k, name in v.items()):
            raise ValueError("must map each admin key (at least 24 characters) to the operator's name")
        return v

    @model_validator(mode="after")
    def _no_shared_keys(self) -> ServiceDoc:
        if set(self.offers_keys) & set(self.write_keys):
            raise ValueError("offers_keys: a write key cannot be an offers key (write keys ship in pages and apps)")
        if set(self.admin_keys) & (set(self.write_keys) | set(self.offers_keys)):
            raise ValueError("admin_keys: an admin key cannot also be a write or an offers key")
        return self

    @field_validator("topics")
    @classmethod
    def _topics(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        bad = [t for t in v or {} if not _TOPIC.match(t)]
        if bad:
            raise ValueError(f"names must match {_TOPIC.pattern}: {bad}")
        return v


def from_dict(doc: dict, s: Settings, where: str) -> ServiceConfig:
    """Validate one configuration document (errors name the key; an unknown key is refused)."""
    d = parse_config(ServiceDoc, doc, where)
    return ServiceConfig(
        landing_dir=Path(d.landing_dir) if d.landing_dir else s.landing_dir,
        write_keys=dict(d.write_keys), sendgrid_public_key=d.sendgrid_public_key,
        mailgun_signing_key=d.mailgun_signing_key, postmark_user=d.postmark_user,
        postmark_password=d.postmark_password, unsubscribe_secret=d.unsubscribe_secret,
        topics=dict(d.topics or {"marketing": "News and offers"}),
        offers_snapshot=Path(d.offers_snapshot) if d.offers_snapshot else snapshot_path(s),
        offers_keys=dict(d.offers_keys), offers_token_secret=d.offers_token_secret,
        admin_keys=dict(d.admin_keys), privacy_key=s.privacy_key, privacy_due_days=s.privacy_due_days,
        form_secret=d.form_secret,
        smtp=d.smtp.model_dump(by_alias=True, exclude_none=True) if d.smtp else None,
        sms=d.sms.model_dump(exclude_none=True) if d.sms else None,
        public_base_url=d.public_base_url.rstrip("/"),
        limits=Limits(**(d.limits.model_dump() if d.limits else {})), rotate_seconds=d.rotate_seconds,
        rotate_bytes=d.rotate_bytes)


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
