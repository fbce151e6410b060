"""Where the stack lives: the git-ignored stack folder, its files, and the state kept between runs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from beacon.config import Settings, settings


class StackError(RuntimeError):
    """The stack could not start (a port is taken, a component died): the message says which and why."""


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def pg_data(self) -> Path:
        return self.root / "postgres" / "data"

    @property
    def pg_socket_dir(self) -> Path:
        return self.root / "postgres" / "run"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets.json"

    @property
    def warehouse_key(self) -> Path:
        return self.root / "warehouse.key"

    @property
    def passwords(self) -> Path:
        return self.root / "passwords.json"

    @property
    def state(self) -> Path:
        return self.root / "stack.json"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pid(self, name: str) -> Path:
        return self.run / f"{name}.pid"


def paths(s: Settings | None = None) -> Paths:
    s = s or settings()
    return Paths(s.stack_dir or s.home / ".beacon")


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (secrets, passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def read_state(p: Paths) -> dict:
    """stack.json: the ports in use."""
    return json.loads(p.state.read_text()) if p.state.exists() else {}


def save_state(p: Paths, **values) -> None:
    st = {**read_state(p), **values}
    p.root.mkdir(parents=True, exist_ok=True)
    p.state.write_text(json.dumps(st, indent=2))


def log_tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
