"""SMS through a Twilio-style HTTP API (POST /2010-04-01/Accounts/{sid}/Messages.json, Basic auth sid:token).

One message per added member, to `phone_e164`, from a short Jinja-free template (`{first_name}` and other
row fields, via str.format_map with blanks for missing ones). Quiet hours are decided on the send's as-of time
(the warehouse clock) in the destination's time zone: inside them every row fails with `quiet_hours`, so the
sync engine retries it on the next run after they end. Governance uses the `sms` consent channel; inbound
STOP/HELP keywords arrive at `beacon serve` (/v1/sms/inbound).
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import pandas as pd
from pydantic import Field, field_validator

from beacon.activation.destinations import Batch, DestinationExtra, RowResult, parse_extra


class SmsExtra(DestinationExtra):
    """Extras of an SMS connection (host = API base URL, login = account sid, password = auth token)."""

    sender: str = Field("", alias="from")
    body: str = "{first_name}, news from us. Reply STOP to opt out."
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    time_zone: str = "UTC"
    batch_size: int = Field(50, ge=1)
    fields: tuple[str, ...] | None = None

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as America/New_York)") from None
        return v


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def in_quiet_hours(at: datetime, start: time, end: time) -> bool:
    """True when `at` (local time) falls in [start, end), a window that may wrap past midnight."""
    t = at.time()
    return (start <= t < end) if start < end else (t >= start or t < end)


class TwilioSms:
    channel = "sms"
    Extra = SmsExtra
    required_any: tuple[str, ...] = ("phone_e164",)
    default_mode = "insert_only"

    def __init__(self, base_url: str, account_sid: str, auth_token: str, sender: str, body: str,
                 quiet_start: str = "21:00", quiet_end: str = "08:00", time_zone: str = "UTC", batch_size: int = 50,
                 fields: tuple[str, ...] | None = None, name: str = "sms"):
        if not (account_sid and auth_token and sender):
            raise ValueError(f"destination {name}: account sid (login), auth token (password) and extra.from are required")
        if "STOP" not in body.upper():
            raise ValueError(f"destination {name}: the SMS body must tell people how to opt out (e.g. 'Reply STOP')")
        self.name, self.base_url, self.sid, self.token, self.sender, self.body = (
            name, base_url.rstrip("/"), account_sid, auth_token, sender, body)
        self.quiet = (time.fromisoformat(quiet_start), time.fromisoformat(quiet_end))
        self.zone = ZoneInfo(time_zone)
        # The phone is not among the sync engine's default fields: an SMS destination maps it itself.
        self.batch_size, self.fields = batch_size, fields or ("phone_e164", "first_name", "last_name")

    @classmethod
    def from_connection(cls, name: str, conn) -> TwilioSms:
        """host = API base URL, login = account sid, password = auth token; extra: from, body, quiet_start,
        quiet_end, time_zone, fields."""
        x = parse_extra(SmsExtra, name, conn)
        base = conn.host if "://" in (conn.host or "") else f"https://{conn.host or 'api.twilio.com'}"
        if conn.port:
            base = f"{base}:{conn.port}"
        return cls(base, conn.login or "", conn.password or "", x.sender, x.body, x.quiet_start.isoformat(),
                   x.quiet_end.isoformat(), x.time_zone, batch_size=x.batch_size, fields=x.fields or None, name=name)

    def plan(self, rows: pd.DataFrame, name: str, meta: dict) -> list[Batch]:
        rows = rows.sort_values("customer_id", kind="stable").reset_index(drop=True)
        return [Batch(name=name, rows=rows.iloc[i:i + self.batch_size].reset_index(drop=True), meta=meta)
                for i in range(0, len(rows), self.batch_size)]

    def send(self, batch: Batch) -> list[RowResult]:
        as_of = batch.meta.get("as_of")
        if as_of is not None:
            t = as_of if isinstance(as_of, datetime) else datetime.fromisoformat(str(as_of))
            local = (t if t.tzinfo else t.replace(tzinfo=ZoneInfo("UTC"))).astimezone(self.zone)
            if in_quiet_hours(local, *self.quiet):
                until = self.quiet[1].strftime("%H:%M")
                return [RowResult(r["customer_id"], "failed", f"quiet_hours: deferred until {until} "
                                  f"{self.zone.key}") for r in batch.rows.to_dict("records")]
        out = []
        url = f"{self.base_url}/2010-04-01/Accounts/{self.sid}/Messages.json"
        with httpx.Client(auth=(self.sid, self.token), timeout=20) as client:
            for r in batch.rows.to_dict("records"):
                if r.get("operation", "add") != "add":  # a text cannot be recalled or updated
                    out.append(RowResult(r["customer_id"], "delivered"))
                    continue
                text = self.body.format_map(_Blank({k: "" if v is None or v != v else v for k, v in r.items()}))
                try:
                    resp = client.post(url, data={"To": r["phone_e164"], "From": self.sender, "Body": text.strip()})
                except httpx.HTTPError as exc:
                    out.append(RowResult(r["customer_id"], "failed", f"{type(exc).__name__}: {exc}"))
                    continue
                ok = resp.status_code in (200, 201)
                out.append(RowResult(r["customer_id"], "delivered" if ok else "failed",
                                     "" if ok else f"HTTP {resp.status_code}: {resp.text[:200]}"))
        return out
