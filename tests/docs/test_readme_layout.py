"""README.md's layout table names every package folder and every test folder that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _layout_rows() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Layout"):].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        m = re.match(r"\| `([^`]+)` \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_every_beacon_subpackage_has_a_row():
    rows = _layout_rows()
    packages = sorted(p.parent.name for p in (ROOT / "include/beacon").glob("*/__init__.py"))
    assert packages, "no subpackages found: the test looks in the wrong place"
    assert [p for p in packages if f"include/beacon/{p}/" not in rows] == []
    assert [r for r in rows if r.startswith("include/beacon/") and r.count("/") == 3
            and not (ROOT / r).is_dir()] == []  # and no row names a folder that is gone


def test_every_test_folder_is_named():
    tests_row = _layout_rows()["tests/"]
    folders = sorted(p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    assert folders
    assert [f for f in folders if f"`{f}/`" not in tests_row] == []
    assert [f for f in re.findall(r"`([a-z0-9_]+)/`", tests_row) if f not in folders] == []
