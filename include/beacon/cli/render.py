"""All terminal output of the CLI: JSON with --json, otherwise rich tables built by these helpers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from rich.console import Console
from rich.table import Table

console = Console(stderr=False)
err = Console(stderr=True)


def emit(data, as_json: bool, render: Callable) -> None:
    """Print `data` as JSON for scripts, or hand it to `render` for people."""
    if as_json:
        print(json.dumps(data, indent=2, default=str))
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
