"""Email over SMTP: Jinja2 templates per audience, multipart text + HTML, one-click unsubscribe, postal footer.

Templates are `<audience>.subject.j2`, `<audience>.txt.j2` and `<audience>.html.j2` in the templates
folder, falling back to `default.*`; they run in Jinja2's sandbox, a missing value renders empty (write
`{{ first_name or "there" }}` for a fallback), and HTML is autoescaped. The footer with the postal
address and the unsubscribe link is appended by the destination, so no template can leave it out.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import urlencode

import pandas as pd
from jinja2 import TemplateError
from markupsafe import escape as _escape
from pydantic import Field

from beacon.activation import preferences
from beacon.activation.destinations import Batch, DestinationExtra, RowResult, parse_extra
from beacon.personalize.render import PACKAGE_TEMPLATES, TemplateFieldError, make_environment

__all__ = ["PACKAGE_TEMPLATES", "SmtpEmail", "SmtpExtra"]


class SmtpExtra(DestinationExtra):
    """Extras of an SMTP connection (host, port, login and password are the connection's own fields)."""

    sender: str | None = Field(None, alias="from")
    postal_address: str | None = None
    unsubscribe_url: str | None = None
    unsubscribe_secret: str | None = None
    unsubscribe_mailto: str | None = None
    starttls: bool = False
    ssl: bool = False
    templates_dir: str | None = None
    batch_size: int = Field(20, ge=1)
    fields: tuple[str, ...] | None = None


class SmtpEmail:
    """Sends one message per added member; an email cannot be updated or recalled, so the default mode is insert-only."""

    channel = "email"
    Extra = SmtpExtra
    required_any: tuple[str, ...] = ("email",)
    default_mode = "insert_only"

    def __init__(self, host: str, port: int, sender: str, postal_address: str, unsubscribe_url: str,
                 unsubscribe_secret: str, unsubscribe_mailto: str | None = None, username: str | None = None,
                 password: str | None = None, starttls: bool = False, use_ssl: bool = False,
                 templates_dir: str | None = None, batch_size: int = 20, timeout: float = 30.0,
                 fields: tuple[str, ...] | None = None, name: str = "email"):
        if not postal_address or not postal_address.strip():
            raise ValueError(f"destination {name}: a physical postal address is required in every marketing email")
        if not unsubscribe_url.startswith("https://"):
            raise ValueError(f"destination {name}: unsubscribe_url must be an https:// URL (RFC 8058 one-click)")
        if not unsubscribe_secret:
            raise ValueError(f"destination {name}: unsubscribe_secret is required to sign unsubscribe links")
        self.name, self.host, self.port, self.sender = name, host, port, sender
        self.postal_address, self.unsubscribe_url, self.unsubscribe_mailto = postal_address.strip(), unsubscribe_url, \
            unsubscribe_mailto
        self._secret = unsubscribe_secret
        self.username, self.password, self.starttls, self.use_ssl = username, password, starttls, use_ssl
        self.batch_size, self.timeout, self.fields = batch_size, timeout, fields
        # The same sandbox as beacon.personalize (journeys' messages), with the old lenient missing-value rule.
        self.env = make_environment([templates_dir] if templates_dir else [], strict=False)
        self.journey_messages = None  # set by the journeys engine for one sync (see use_journey_messages)

    @classmethod
    def from_connection(cls, name: str, conn) -> SmtpEmail:
        """host/port/login/password; extra: from, postal_address, unsubscribe_url, unsubscribe_secret, starttls, ssl, templates_dir."""
        x = parse_extra(SmtpExtra, name, conn)
        missing = [k for k, v in (("from", x.sender), ("postal_address", x.postal_address),
                                  ("unsubscribe_url", x.unsubscribe_url), ("unsubscribe_secret", x.unsubscribe_secret))
                   if not v]
        if missing:
            raise ValueError(f"connection beacon_{name}: extra is missing {missing}")
        return cls(conn.host or "localhost", int(conn.port or 25), x.sender, x.postal_address, x.unsubscribe_url,
                   x.unsubscribe_secret, unsubscribe_mailto=x.unsubscribe_mailto, username=conn.login or None,
                   password=conn.password or None, starttls=x.starttls, use_ssl=x.ssl, templates_dir=x.templates_dir,
                   batch_size=x.batch_size, fields=x.fields or None, name=name)

    def plan(self, rows: pd.DataFrame, name: str, meta: dict) -> list[Batch]:
        """Batches of messages sent over one SMTP session each."""
        rows = rows.sort_values("customer_id", kind="stable").reset_index(drop=True)
        return [Batch(name=name, rows=rows.iloc[i:i + self.batch_size].reset_index(drop=True), meta=meta)
                for i in range(0, len(rows), self.batch_size)]

    def use_journey_messages(self, messages) -> None:
        """Rows with a `journey_template` are rendered by `messages.render(row)` (subject, text, html): the journey's
        own template with beacon.personalize's context (beacon.journeys.messages); None restores the audience templates."""
        self.journey_messages = messages

    def unsubscribe_token(self, audience: str, customer_id: str, expires: int | None = None) -> str:
        """A signature the unsubscribe endpoint (beacon serve) verifies without a lookup table."""
        return preferences.unsubscribe_token(self._secret, audience, customer_id, expires)

    def render(self, audience: str, row: dict, meta: dict) -> tuple[str, str, str]:
        """Subject, text and HTML for one person (the footer is appended here, not left to the template)."""
        if self.journey_messages is not None and isinstance(row.get("journey_template"), str):
            subject, text, html = self.journey_messages.render(row)
        else:
            ctx = {**row, "audience": audience, "audience_description": meta.get("description", "")}

            def pick(kind: str):
                return self.env.select_template([f"{audience}.{kind}.j2", f"default.{kind}.j2"])

            subject = " ".join(pick("subject").render(ctx).split())
            text, html = pick("txt").render(ctx), pick("html").render(ctx)
        link = self.unsubscribe_link(audience, row["customer_id"], _expiry(meta))
        text += f"\n--\n{self.postal_address}\nUnsubscribe: {link}\n"
        footer = (f'<hr><p style="font-size:12px">{_escape(self.postal_address)}<br>'
                  f'<a href="{_escape(link)}">Unsubscribe</a></p>')
        html = html.replace("</body>", footer + "</body>") if "</body>" in html else html + footer
        return subject, text, html

    def unsubscribe_link(self, audience: str, customer_id: str, expires: int | None = None) -> str:
        q = {"a": audience, "u": customer_id, **({} if expires is None else {"e": expires}),
             "t": self.unsubscribe_token(audience, customer_id, expires)}
        q = urlencode(q)
        return f"{self.unsubscribe_url}{'&' if '?' in self.unsubscribe_url else '?'}{q}"

    def message(self, audience: str, row: dict, meta: dict) -> EmailMessage:
        """The multipart message with List-Unsubscribe (RFC 2369) and one-click (RFC 8058) headers."""
        subject, text, html = self.render(audience, row, meta)
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = row["email"]
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        domain = self.sender.rsplit("@", 1)[-1].strip(">")
        msg["Message-ID"] = f"<{row['idempotency_key']}@{domain}>"  # the same change keeps the same id
        expires = _expiry(meta)
        targets = [f"<{self.unsubscribe_link(audience, row['customer_id'], expires)}>"]
        if self.unsubscribe_mailto:
            token = self.unsubscribe_token(audience, row["customer_id"], expires)
            targets.append(f"<mailto:{self.unsubscribe_mailto}?subject=unsubscribe-{token}>")
        msg["List-Unsubscribe"] = ", ".join(targets)
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg["X-Beacon-Audience"] = audience
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        return msg

    def _connect(self) -> smtplib.SMTP:
        cls = smtplib.SMTP_SSL if self.use_ssl else smtplib.SMTP
        smtp = cls(self.host, self.port, timeout=self.timeout)
        if self.starttls and not self.use_ssl:
            smtp.starttls()
        if self.username:
            smtp.login(self.username, self.password or "")
        return smtp

    def send(self, batch: Batch) -> list[RowResult]:
        """One message per add/update row over one session; removes need no message. Per-row results."""
        session: list = [None]
        try:
            return [r for _, r in self._deliver(batch, session)]
        finally:
            self._close(session)

    def send_many(self, batches: list[Batch]) -> Iterator[tuple[Batch, list[RowResult]]]:
        """One session for all batches, answering message by message: the engine commits each acknowledged
        message as soon as it can, so a crash can repeat only the few messages acknowledged but not yet committed."""
        session: list = [None]
        try:
            for batch in batches:
                for i, result in self._deliver(batch, session):
                    one = Batch(name=batch.name, rows=batch.rows.iloc[i:i + 1].reset_index(drop=True), meta=batch.meta)
                    yield one, [result]
        finally:
            self._close(session)

    def _deliver(self, batch: Batch, session: list) -> Iterator[tuple[int, RowResult]]:
        """Send each row's message on the shared session (`session[0]`, reconnected once if dropped)."""
        audience = batch.meta.get("audience", "default")
        for i, row in enumerate(batch.rows.to_dict(orient="records")):
            key = str(row["customer_id"])
            if row.get("operation") == "remove":
                yield i, RowResult(key=key, status="delivered")
                continue
            try:
                msg = self.message(audience, row, batch.meta)
            except (TemplateError, TemplateFieldError, KeyError, TypeError) as exc:
                # TemplateFieldError's message names template, field and customer; the others still get sent.
                yield i, RowResult(key=key, status="failed", error=f"template: {type(exc).__name__}: {exc}")
                continue
            for attempt in (1, 2):  # one reconnect if the server dropped the session
                try:
                    session[0] = session[0] or self._connect()
                    session[0].send_message(msg)
                    yield i, RowResult(key=key, status="delivered")
                    break
                except smtplib.SMTPRecipientsRefused as exc:
                    yield i, RowResult(key=key, status="failed", error=f"recipient refused: {exc.recipients}")
                    break
                except (smtplib.SMTPServerDisconnected, ConnectionError, OSError) as exc:
                    session[0] = None
                    if attempt == 2:
                        yield i, RowResult(key=key, status="failed", error=f"{type(exc).__name__}: {exc}")
                except smtplib.SMTPException as exc:
                    yield i, RowResult(key=key, status="failed", error=f"{type(exc).__name__}: {exc}")
                    break

    @staticmethod
    def _close(session: list) -> None:
        if session[0] is not None:
            try:
                session[0].quit()
            except smtplib.SMTPException:
                pass


def _expiry(meta: dict) -> int | None:
    """Links expire TOKEN_DAYS after the send's as-of time (the warehouse clock, so a resend is identical)."""
    return preferences.token_expiry(meta["as_of"]) if meta.get("as_of") is not None else None
