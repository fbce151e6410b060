"""All terminal output of the CLI: JSON with --json, otherwise rich tables built by these helpers."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from rich.console import Console
from rich.table import Table

console = Console(stderr=False)
err = Console(stderr=True)


_results: list[IO[str]] = []  # where `emit` writes JSON while standard output is sent to standard error


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to standard output, by this process and by the programs it starts (dbt, Airflow
    task logs, a progress line), to standard error, while `emit` still writes its JSON to the real standard output.

    `beacon` runs every `--json` command inside this, so that `beacon … --json > result.json` is one JSON document."""
    orig = sys.stdout
    orig.flush()
    try:
        on_fd1 = orig.fileno() == 1
    except (AttributeError, OSError, io.UnsupportedOperation):
        on_fd1 = False  # e.g. a test's capture object: writes to it do not go through file descriptor 1
    try:
        saved = os.dup(1)
    except OSError:  # no standard output at all: nothing to keep apart
        yield
        return
    result = os.fdopen(os.dup(saved), "w", encoding="utf-8") if on_fd1 else orig
    _results.append(result)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _results.pop()
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)
        if result is not orig:
            result.close()


def strict(data):
    """`data` with numpy scalars as plain numbers and NaN/Infinity as None, so that it is strict JSON.

    Commands report *why* a figure is missing next to it; this is the last guard, so that no command can print
    `NaN` (which strict JSON parsers reject, losing the whole document)."""
    if isinstance(data, dict):
        return {str(k): strict(v) for k, v in data.items()}
    if isinstance(data, list | tuple | set | frozenset):
        return [strict(v) for v in data]
    if type(data).__module__ == "numpy" and hasattr(data, "item") and getattr(data, "ndim", 1) == 0:
        data = data.item()  # a numpy scalar (numpy is not imported here: the CLI starts without it)
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if type(data).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return None
    return data


def to_json(data, indent: int | None = 2) -> str:
    """Strict JSON text (no NaN or Infinity; anything else unknown as its text form)."""
    return json.dumps(strict(data), indent=indent, default=str, allow_nan=False)


def emit(data, as_json: bool, render: Callable) -> None:
    """Print `data` as strict JSON for scripts, or hand it to `render` for people."""
    if as_json:
        out = _results[-1] if _results else sys.stdout
        out.write(to_json(data) + "\n")
        out.flush()
    else:
        render(data)


def table(title: str, columns: Iterable[str], right: Iterable[str] = ()) -> Table:
    """An empty table with a left-aligned title; columns named in `right` are right-aligned."""
    right = set(right)
    t = Table(title=title, title_justify="left")
    for c in columns:
        if c in right:
            t.add_column(c, justify="right")
        else:
            t.add_column(c)
    return t


def kv_table(title: str, rows: dict) -> Table:
    """Two columns, what and value; integers get thousands separators."""
    t = table(title, ("what", "value"), right=("value",))
    for k, v in rows.items():
        t.add_row(str(k), f"{v:,}" if isinstance(v, int) else str(v))
    return t


def records_table(title: str, records: list[dict]) -> Table:
    """One row per record, one column per key of the first record (None shown empty)."""
    cols = list(records[0].keys())
    t = table(title, cols)
    for r in records:
        t.add_row(*("" if r[c] is None else str(r[c]) for c in cols))
    return t
