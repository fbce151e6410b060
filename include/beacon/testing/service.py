"""A real `beacon serve` process on loopback for tests and `beacon bench service` (start, wait, kill -9, restart)."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sendgrid_keypair():
    """A P-256 key pair like SendGrid's: (private key, base64 DER public key as SendGrid shows it)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    priv = ec.generate_private_key(ec.SECP256R1())
    der = priv.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return priv, base64.b64encode(der).decode()


def sendgrid_sign(priv, body: bytes, timestamp: str) -> str:
    """What SendGrid puts in X-Twilio-Email-Event-Webhook-Signature."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return base64.b64encode(priv.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


class ServiceProcess:
    """`python -m beacon.cli serve` with its own data folder and configuration file (secrets stay in tmp)."""

    def __init__(self, workdir: Path, config: dict, port: int | None = None, extra_env: dict | None = None):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.config_path = self.workdir / "service-config.json"
        self.config_path.write_text(json.dumps(config))
        os.chmod(self.config_path, 0o600)
        self.log_path = self.workdir / f"service-{self.port}.log"
        self.env = {**os.environ, "BEACON_SERVICE_CONFIG": str(self.config_path),
                    "BEACON_DATA_DIR": str(self.workdir / "data"), **(extra_env or {})}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "beacon.cli", "serve", "--port", str(self.port)],
                                     env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"beacon serve exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"beacon serve did not answer /health within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs (the crash the durability guarantee is about)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "_log", None):
            self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
