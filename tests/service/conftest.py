"""A real `beacon serve` (uvicorn, loopback) for the service tests, with secrets generated per session."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.service import make_config
from support.smtp import email_connection, smtp_server

from beacon.testing.service import ServiceProcess, sendgrid_keypair

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Svc:
    proc: ServiceProcess
    write_key: str
    sendgrid_private: object
    mailgun_key: str
    postmark: tuple[str, str]
    unsubscribe_secret: str

    @property
    def url(self) -> str:
        return self.proc.url

    @property
    def landing(self) -> Path:
        return self.proc.workdir / "data" / "landing"

    def files(self) -> set[Path]:
        """Every file under the landing zone (spool included): what a refused request must not change."""
        return {p for p in self.landing.rglob("*") if p.is_file()} if self.landing.exists() else set()

    def snapshot(self) -> dict[Path, int]:
        return {p: p.stat().st_size for p in self.files()}


@pytest.fixture(scope="session")
def svc(tmp_path_factory) -> Svc:
    work = tmp_path_factory.mktemp("service")
    priv, pub = sendgrid_keypair()
    s = Svc(proc=None, write_key="wk_" + secrets.token_hex(8), sendgrid_private=priv,  # type: ignore[arg-type]
            mailgun_key="mg_" + secrets.token_hex(16), postmark=("pm_user", "pm_" + secrets.token_hex(8)),
            unsubscribe_secret="us_" + secrets.token_hex(16))
    s.proc = ServiceProcess(work, make_config(s.write_key, pub, s.mailgun_key, s.postmark, s.unsubscribe_secret))
    s.proc.start()
    yield s
    s.proc.stop()


@pytest.fixture()
def smtp_sink(monkeypatch, svc):
    """A real SMTP server (aiosmtpd) as the `email` channel's connection, with the service's unsubscribe secret."""
    with smtp_server() as (sink, port):
        monkeypatch.setenv("AIRFLOW_CONN_BEACON_EMAIL", email_connection(
            port, unsubscribe_url="https://beacon.example/v1/unsubscribe", unsubscribe_secret=svc.unsubscribe_secret))
        yield sink
