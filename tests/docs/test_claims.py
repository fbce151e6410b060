"""Docs claim only what a test holds, and name tests that exist.

- A claim marked `<!-- tested: tests/<file>.py::<test> -->` in README.md or docs/ names a test that exists,
  and it is listed in docs/testing.md ("Claims and the tests that hold them") with that test.
- Every `tests/<file>.py`, `tests/<file>.py::<test>` and `test_<file>.py::<test>` cited in README.md, docs/ or a
  test file exists, so a renamed or deleted test shows up as drift here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!--\s*tested:\s*([^>]*?)\s*-->")
NODE_ID = re.compile(r"(tests/[A-Za-z0-9_/]+\.py)::([A-Za-z0-9_]+)")
FILE = re.compile(r"(?<![A-Za-z0-9_.-])(tests/[A-Za-z0-9_/]+\.py)\b")
SHORT_ID = re.compile(r"(?<![A-Za-z0-9_/])(test_[a-z0-9_]+)\.py::(test_[a-z0-9_]+)")


def _tests() -> tuple[set[tuple[str, str]], set[str], set[str]]:
    """(file, function) of every test function; every test function name; every test module stem."""
    ids, names, modules = set(), set(), set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        rel = path.relative_to(ROOT).as_posix()
        modules.add(path.stem)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                ids.add((rel, node.name))
                names.add(node.name)
    return ids, names, modules


def markers() -> list[tuple[str, int, str]]:
    """(doc, line, test id) for every `<!-- tested: ... -->` marker (several ids: comma-separated)."""
    out = []
    for doc in DOCS:
        for i, line in enumerate(doc.read_text().splitlines(), 1):
            for m in MARKER.finditer(line):
                out += [(doc.relative_to(ROOT).as_posix(), i, t.strip()) for t in m.group(1).split(",") if t.strip()]
    return out


def test_every_marked_claim_names_an_existing_test():
    ids, _, _ = _tests()
    found = markers()
    assert len(found) >= 30  # the scan finds the markers (README and docs carry dozens)
    missing = [(d, n, t) for d, n, t in found if tuple(t.split("::", 1)) not in ids]
    assert missing == [], f"claims marked as tested by tests that do not exist: {missing}"


def test_every_marked_claim_is_in_the_claims_table_of_docs_testing():
    table = (ROOT / "docs" / "testing.md").read_text().split("## Claims and the tests that hold them", 1)[1]
    table = table.split("\n## ", 1)[0]
    rows = {(m.group(1), m.group(2)) for m in re.finditer(r"^\|[^|]*\|\s*`?([\w/.-]+\.md)`?\s*\|\s*`?([^|`]+?)`?\s*\|",
                                                          table, re.M)}
    marked = {(d, t) for d, _, t in markers() if d != "docs/testing.md"}
    assert marked - rows == set(), "marked claims missing from the table in docs/testing.md"
    assert rows - marked == set(), "rows of the table whose marker is gone from the doc"


def test_cited_tests_exist():
    ids, names, modules = _tests()
    bad = []
    for path in [*DOCS, *sorted((ROOT / "tests").rglob("*.py"))]:
        text = path.read_text()
        bad += [(path.relative_to(ROOT).as_posix(), m.group(1)) for m in FILE.finditer(text)
                if not (ROOT / m.group(1)).exists()]
        for m in NODE_ID.finditer(text):
            if (m.group(1), m.group(2)) not in ids and m.group(2) not in modules:
                bad.append((path.relative_to(ROOT).as_posix(), m.group(0)))
        for m in SHORT_ID.finditer(text):  # a file and test named without the folder
            if m.group(1) not in modules or m.group(2) not in names:
                bad.append((path.relative_to(ROOT).as_posix(), m.group(0)))
    assert bad == [], f"citations of tests that do not exist: {bad}"
