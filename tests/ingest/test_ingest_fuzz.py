"""Fuzzing the landing-file ingest: whatever a file holds, the run goes on (issue 14).

Hypothesis mutates a valid landing file of every source and format (byte flips, truncation, re-encoding,
inserted delimiters, quotes and newlines, deep nesting, huge fields, duplicated and reordered columns,
NUL bytes, random binary, gzip) and loads it next to a valid file of another source, in one run. For
every input: no exception escapes, rows read = loaded + quarantined for every file, a failed file keeps
no rows, Python memory stays under a cap, and the valid file loads.

CI runs a bounded, derandomized set (BEACON_FUZZ_EXAMPLES, default 40 per format); set it higher for a
longer run. `make fuzz` (BEACON_FUZZ=1) runs it randomized, with a new seed each time, printed. tests/ingest/corpus/ keeps inputs that ever failed (each a landing day's files), replayed on
every run; BEACON_FUZZ_RECORD=1 saves a newly failing input there.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import json
import os
import shutil
import tempfile
import tracemalloc
from dataclasses import replace
from functools import cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beacon.generate import GenConfig, generate
from beacon.ingest import load_landing, load_specs
from beacon.ingest.core import Limits

EXAMPLES = int(os.environ.get("BEACON_FUZZ_EXAMPLES", "40"))
CORPUS = Path(__file__).with_name("corpus")
DAY = "2026-06-30"
# Python allocations (tracemalloc) during one run: with the small fuzzing caps, and with the project's
# 16 MiB line cap (a chunk, the line carried over and its copy are held at once).
MEMORY_CAP = {"fuzz": 64 << 20, "project": 256 << 20}
# Small caps, so that the mutations reach every limit quickly.
FUZZ_LIMITS = Limits(max_file_bytes=4 << 20, max_line_bytes=64 << 10, max_json_depth=32, max_columns=60)
FORMATS = {"csv": ["crm_contacts.csv", "crm_companies.csv", "shop_customers.csv", "consent.csv"],
           "jsonl": ["web_events.jsonl", "email_events.jsonl"],
           "parquet": ["shop_orders.parquet", "shop_order_items.parquet"],
           "webhook": ["webhooks/sendgrid-seed.json", "webhooks/mailgun-seed.json", "webhooks/postmark-seed.json"]}
FUZZ = settings(max_examples=EXAMPLES, derandomize=os.environ.get("BEACON_FUZZ") != "1", database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@cache
def seeds() -> dict[str, bytes]:
    """Small valid landing files of every source (the first rows of a generated world) and webhooks."""
    out = Path(tempfile.mkdtemp(prefix="beacon-fuzz-seed-"))
    try:
        generate(GenConfig(people=40, seed=5, bad_rate=0.0), out)
        day = next(p for p in (out / "landing").iterdir() if p.is_dir())
        files: dict[str, bytes] = {}
        for name in FORMATS["csv"] + FORMATS["jsonl"]:
            files[name] = b"".join((day / name).read_bytes().splitlines(keepends=True)[:30])
        for name in FORMATS["parquet"]:
            files[name] = _parquet(pq.read_table(day / name).slice(0, 30))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    files["webhooks/sendgrid-seed.json"] = json.dumps([
        {"sg_event_id": "e1", "event": "delivered", "email": "a@b.co", "timestamp": 1782813600, "sg_message_id": "m1"},
        {"sg_event_id": "e2", "event": "bounce", "type": "blocked", "email": "c@d.co", "timestamp": 1782813601}]).encode()
    files["webhooks/mailgun-seed.json"] = json.dumps({"event-data": {
        "id": "g1", "event": "opened", "recipient": "a@b.co", "timestamp": 1782813600.5,
        "message": {"headers": {"message-id": "m1"}}, "user-variables": {"campaign_id": "c1"}}}).encode()
    files["webhooks/postmark-seed.json"] = json.dumps({
        "RecordType": "Bounce", "ID": 7, "Type": "HardBounce", "Email": "a@b.co",
        "BouncedAt": "2026-06-30T10:00:00+02:00", "MessageID": "m1"}).encode()
    return files


def _parquet(t: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(t, buf)
    return buf.getvalue()


@cache
def fuzz_specs() -> dict:
    return {k: replace(v, limits=FUZZ_LIMITS) for k, v in load_specs().items()}


# ------------------------------------------------------------------ mutations: (name, data, draw) -> (name, data)


def _pos(draw, data: bytes) -> int:
    return draw(st.integers(0, len(data)))


def flip(name, data, draw):
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 20))):
        if b:
            i = draw(st.integers(0, len(b) - 1))
            b[i] ^= draw(st.integers(1, 255))
    return name, bytes(b)


def truncate(name, data, draw):
    return name, data[: _pos(draw, data)]


def reencode(name, data, draw):
    codec = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252", "utf-8-sig"]))
    text = data.decode("utf-8", "replace")
    out = text.encode(codec, "replace")
    if draw(st.booleans()) and codec in ("utf-16-le", "utf-16-be"):  # with the matching mark
        out = (codecs.BOM_UTF16_LE if codec.endswith("le") else codecs.BOM_UTF16_BE) + out
    return name, out


TOKENS = [b",", b'"', b"\n", b"\r", b"\r\n", b"{", b"[", b"}", b"]", b"\\", b"\x00", b";", b"\t", b'""', b":",
          b"\xef\xbb\xbf", b"\xff", b"\xc3", b"\xed\xa0\x80", b"null", b"1e999", b"-", b"+02:00", b"Z"]


def insert(name, data, draw):
    for _ in range(draw(st.integers(1, 10))):
        tok = draw(st.sampled_from(TOKENS)) * draw(st.integers(1, 40))
        i = _pos(draw, data)
        data = data[:i] + tok + data[i:]
    return name, data


def nest(name, data, draw):
    n = draw(st.sampled_from([31, 33, 100, 5_000, 60_000]))
    i = _pos(draw, data)
    inner = draw(st.sampled_from([b"[" * n + b"]" * n, b'{"a":' * n + b"1" + b"}" * n, b"[" * n]))
    if name.endswith(".jsonl") and draw(st.booleans()):  # a whole deep line
        return name, data[:i] + b"\n" + b'{"messageId":"x","anonymousId":"y","p":' + inner + b"}\n" + data[i:]
    return name, data[:i] + inner + data[i:]


def huge(name, data, draw):
    n = draw(st.sampled_from([1_000, 70_000, 300_000]))
    i = _pos(draw, data)
    return name, data[:i] + draw(st.sampled_from([b"x", b"\xc3\xa9", b",", b'"', b"\n"])) * n + data[i:]


def columns(name, data, draw):
    """Reorder and duplicate columns (CSV: every line split naively on commas; Parquet: the table)."""
    if name.endswith(".parquet"):
        try:
            t = pq.read_table(io.BytesIO(data))
        except Exception:
            return name, data
        order = draw(st.permutations(range(t.num_columns)))
        t = t.select(list(order))
        if t.num_columns and draw(st.booleans()):
            c = draw(st.integers(0, t.num_columns - 1))
            dup = draw(st.sampled_from([t.column_names[c], t.column_names[c].upper(), " " + t.column_names[c]]))
            t = t.append_column(dup, t.column(c))
        return name, _parquet(t)
    if not name.endswith(".csv"):
        return name, data
    rows = [r.split(b",") for r in data.split(b"\n")]
    width = max((len(r) for r in rows), default=0)
    if width == 0:
        return name, data
    order = list(draw(st.permutations(range(width))))
    if draw(st.booleans()):
        order.append(draw(st.integers(0, width - 1)))  # a duplicated column
    case = draw(st.sampled_from([bytes.upper, bytes.lower, lambda b: b" " + b + b" ", lambda b: b]))
    out = []
    for k, r in enumerate(rows):
        cells = [r[j] if j < len(r) else b"" for j in order]
        out.append(b",".join(case(c) for c in cells) if k == 0 else b",".join(cells))
    return name, b"\n".join(out)


def binary(name, data, draw):
    magic = draw(st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"PK\x03\x04", b"PAR1", b"\x1f\x8b\x08\x00", b"%PDF-1.7"]))
    return name, magic + draw(st.binary(min_size=0, max_size=4096))


def nul(name, data, draw):
    i = _pos(draw, data)
    return name, data[:i] + b"\x00" * draw(st.integers(1, 8)) + data[i:]


def compress(name, data, draw):
    if name.startswith("webhooks/") or name.endswith(".parquet"):
        return name, data
    z = gzip.compress(data)
    return name + ".gz", z[: draw(st.integers(len(z) // 2, len(z)))] if draw(st.booleans()) else z


MUTATIONS = [flip, truncate, reencode, insert, nest, huge, columns, binary, nul, compress]


@st.composite
def mutated(draw, fmt: str) -> tuple[str, bytes]:
    name = draw(st.sampled_from(FORMATS[fmt]))
    data = seeds()[name]
    for op in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        name, data = op(name, data, draw)
    return name, data


# ------------------------------------------------------------------ the invariants, for one landing day


def check_run(files: dict[str, bytes], warehouse: Path, specs: dict, tag: str, cap: int = MEMORY_CAP["fuzz"]) -> None:
    """Land `files` plus one valid products file in a fresh landing day, load, and assert the invariants."""
    root = Path(tempfile.mkdtemp(prefix="beacon-fuzz-"))
    try:
        day = root / DAY
        for rel, data in files.items():
            (day / rel).parent.mkdir(parents=True, exist_ok=True)
            (day / rel).write_bytes(data)
        # The rest of the run: a valid file whose content is new each time (so it is never skipped).
        (day / "shop_products.csv").write_text(f"product_id,name,category,product_line,price\nSKU-{tag},Mug,home,x,4.5\n")
        tracemalloc.start()
        try:
            summary = load_landing(root, warehouse=warehouse, specs=specs)  # must not raise
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < cap, f"Python memory peak {peak:,} bytes"
        names = {Path(f.file).name: f for f in summary.files}
        for rel in files:
            assert Path(rel).name in names, f"{rel} was not loaded, skipped or rejected: {list(names)}"
        prod = names["shop_products.csv"]
        assert (prod.status, prod.rows_loaded) == ("loaded", 1), prod
        con = duckdb.connect(str(warehouse))
        try:
            for f in summary.files:
                assert f.rows_read == f.rows_loaded + f.rows_quarantined, f
                kept = con.execute(f"SELECT count(*) FROM raw.{f.source} WHERE _source_file = ?", [f.file]).fetchall()[0][0]
                if f.status == "failed":
                    assert kept == 0 and f.reason and f.error, f  # no partial rows; a named reason
                    assert con.execute("SELECT count(*) FROM raw._load_ledger WHERE file = ? AND status = 'failed'",
                                       [f.file]).fetchall()[0][0] >= 1
                elif f.status == "loaded":
                    assert kept == f.rows_loaded, (kept, f)
        finally:
            con.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _record(files: dict[str, bytes]) -> None:
    """Keep a failing input as a regression case (only when asked: tests do not write into the repo)."""
    if os.environ.get("BEACON_FUZZ_RECORD") != "1":
        return
    h = hashlib.sha256(b"".join(k.encode() + v for k, v in sorted(files.items()))).hexdigest()[:12]
    for rel, data in files.items():
        p = CORPUS / f"fuzz-{h}" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "wh.duckdb"


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_fuzzed_landing_files_never_stop_the_run(fmt, warehouse):
    counter = iter(range(10**9))

    @FUZZ
    @given(case=mutated(fmt))
    def run(case):
        name, data = case
        files = {name: data}
        try:
            check_run(files, warehouse, fuzz_specs(), f"{fmt}-{next(counter)}")
        except BaseException:
            _record(files)
            raise

    run()


def corpus_cases() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_dir()) if CORPUS.exists() else []


@pytest.mark.parametrize("case", corpus_cases(), ids=lambda p: p.name)
@pytest.mark.parametrize("limits", ["project", "fuzz"])
def test_corpus_inputs_that_once_failed_still_load_or_are_rejected_cleanly(case, limits, tmp_path):
    files = {str(p.relative_to(case)): p.read_bytes() for p in sorted(case.rglob("*")) if p.is_file()}
    assert files, case
    specs = load_specs() if limits == "project" else fuzz_specs()
    check_run(files, tmp_path / "wh.duckdb", specs, case.name, MEMORY_CAP[limits])


def test_the_corpus_covers_the_classes_of_the_issue():
    names = {p.name for p in corpus_cases()}
    for cls in ("deep-json", "utf16", "binary", "extreme-header", "ambiguous-header", "utc-offset",
                "long-line-gzip"):
        assert any(cls in n for n in names), cls
