"""A local SMTP server (aiosmtpd) for the tests that send email: its handler, a free port, the server itself and
the Airflow connection that points the `email` destination at it."""

from __future__ import annotations

import email
import email.policy
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """aiosmtpd handler: keeps every message, refuses the addresses in `refuse` (550)."""

    def __init__(self):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's naming
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[Sink, int]]:
    """A real SMTP server (aiosmtpd) on a free loopback port: yields its Sink and the port; stopped on exit."""
    from aiosmtpd.controller import Controller

    sink, port = Sink(), _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def email_connection(port: int, **extra: str) -> str:
    """AIRFLOW_CONN_BEACON_EMAIL for that server: an SMTP connection with the sender, postal address and
    unsubscribe settings the email destination requires (test values; `extra` overrides or adds)."""
    return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port,
                       "extra": {"from": "Beacon <news@beacon.example>",
                                 "postal_address": "Beacon Inc., 1 Main St, Springfield, IL 62701",
                                 "unsubscribe_url": "https://beacon.example/unsubscribe",
                                 "unsubscribe_secret": "test-secret-not-real", **extra}})
