"""Compressed collection bodies: gzip and deflate accepted, limits on the decompressed stream, 415 otherwise."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.bodies import deflate_json, gzip_bomb, gzip_json, inflated_size
from support.service import stored_events

from beacon.service.bodies import Inflater, PayloadError, content_coding

_stored = stored_events


def _post(svc, body: bytes, encoding: str | None, path: str = "batch") -> httpx.Response:
    headers = {"content-type": "application/json"}
    if encoding:
        headers["content-encoding"] = encoding
    return httpx.post(f"{svc.url}/v1/{path}", content=body, headers=headers, auth=(svc.write_key, ""))


def _batch(tag: str) -> dict:
    return {"batch": [{"type": "track", "event": "Order Completed", "userId": "u-gz", "messageId": f"{tag}-1",
                       "properties": {"order_id": f"o-{tag}", "revenue": 42.5, "currency": "EUR",
                                      "products": [{"product_id": "p1", "price": 42.5, "quantity": 1}]}},
                      {"type": "page", "anonymousId": "a-gz", "messageId": f"{tag}-2", "properties": {"url": "https://x/y"}}]}


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", gzip_json), ("x-gzip", gzip_json), ("GZIP", gzip_json), ("deflate", deflate_json),
    ("deflate", lambda d: deflate_json(d, raw=True)),  # raw deflate, as some clients send it
    ("gzip", lambda d: gzip.compress(json.dumps(d).encode()[:10]) + gzip.compress(json.dumps(d).encode()[10:])),
    ("identity", lambda d: json.dumps(d).encode())])
def test_compressed_bodies_are_stored_whole(svc, encoding, encode, request):
    tag = f"enc-{request.node.callspec.id}"
    r = _post(svc, encode(_batch(tag)), encoding)
    assert r.status_code == 200, r.text
    stored = _stored(svc)
    assert stored[f"{tag}-1"]["properties"]["products"][0]["price"] == 42.5
    assert stored[f"{tag}-2"]["properties"]["url"] == "https://x/y"


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, gzip", "compress"])
def test_unknown_encoding_is_415_naming_what_is_accepted(svc, encoding):
    before = set(_stored(svc))
    r = _post(svc, gzip_json(_batch("u415")), encoding)
    assert r.status_code == 415
    body = r.json()
    assert body["code"] == "unsupported_encoding" and encoding in body["message"]
    assert r.headers["accept-encoding"] == "gzip, deflate, identity"
    assert set(_stored(svc)) == before


@pytest.mark.parametrize("what, body, encoding", [
    ("truncated", gzip_json(_batch("trunc"))[:-12], "gzip"),
    ("plain JSON labelled gzip", json.dumps(_batch("hdr")).encode(), "gzip"),
    ("gzip labelled deflate", gzip_json(_batch("hdr2")), "deflate"),
    ("trailing garbage", gzip_json(_batch("garb")) + b"garbage!", "gzip"),
    ("empty", b"", "gzip")])
def test_corrupt_compressed_body_is_400_and_nothing_is_kept(svc, what, body, encoding):
    r = _post(svc, body, encoding)
    assert r.status_code == 400, what
    assert r.json()["code"] == "malformed_body" and r.json()["message"].startswith(f"the body is not valid {encoding}")
    assert not any(k.startswith(("trunc", "hdr", "garb")) for k in _stored(svc))


def test_limit_applies_to_the_decompressed_body(svc):
    # 150 KB of JSON gzips to a few KB: the wire is small, the decompressed body passes the 200 KB limit.
    doc = _batch("big")
    doc["batch"][0]["properties"]["blob"] = "x" * 150_000
    doc["batch"][1]["properties"]["blob"] = "y" * 150_000
    body = gzip_json(doc)
    assert len(body) < 5_000
    r = _post(svc, body, "gzip")
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"
    assert "decompresses to more than the limit of 200000" in r.json()["message"]


@pytest.fixture(scope="module")
def bomb() -> bytes:
    body = gzip_bomb(1024)
    assert inflated_size(body) == 1 << 30  # the claim "1 GiB once decompressed" is checked, not assumed
    return body


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0]) * 1024
    return out


def test_gzip_bomb_is_413_without_taking_memory(tmp_path, bomb):
    """A 1 GiB-decompressing body (1 MB on the wire, no Content-Length: chunked) against the default limits."""
    from support.service import make_config

    from beacon.testing.service import ServiceProcess

    p = ServiceProcess(tmp_path, make_config("wk_bomb", "", "", ("", ""), "", limits={})).start()
    try:
        pid = p.proc.pid
        assert httpx.post(f"{p.url}/v1/track", json={"event": "warm", "userId": "u"}, auth=("wk_bomb", "")).status_code == 200
        rss_before = _status(pid)["VmRSS"]
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS

        def chunks():
            for i in range(0, len(bomb), 65536):
                yield bomb[i:i + 65536]

        r = httpx.post(f"{p.url}/v1/batch", content=chunks(), auth=("wk_bomb", ""),
                       headers={"content-type": "application/json", "content-encoding": "gzip"}, timeout=60)
        assert r.status_code == 413 and r.json()["code"] == "body_too_large"
        assert "decompresses to more than the limit" in r.json()["message"]
        peak = _status(pid)["VmHWM"]
        growth = peak - rss_before
        print(f"gzip bomb (1 GiB decompressed, {len(bomb)} bytes on the wire): server peak RSS "
              f"{peak / 2**20:.1f} MiB, growth {growth / 2**20:.2f} MiB")
        assert growth < 50 << 20
        # With Content-Length the wire size alone is refused before a byte is decompressed.
        r = httpx.post(f"{p.url}/v1/batch", content=bomb, auth=("wk_bomb", ""),
                       headers={"content-type": "application/json", "content-encoding": "gzip"}, timeout=60)
        assert r.status_code == 413
        # The server is unharmed: the next body is accepted.
        assert httpx.post(f"{p.url}/v1/track", json={"event": "after", "userId": "u"}, auth=("wk_bomb", "")).status_code == 200
    finally:
        p.stop()


def test_inflater_on_a_bomb_holds_little_memory(bomb):
    # Even with a 16 MB limit (32x the default), the decoder never holds much more than the limit.
    tracemalloc.start()
    try:
        inf = Inflater("gzip", limit=16 << 20)
        with pytest.raises(PayloadError) as exc:
            for i in range(0, len(bomb), 65536):
                inf.feed(bomb[i:i + 65536])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exc.value.status == 413
    print(f"Inflater, 1 GiB gzip bomb, 16 MiB limit: tracemalloc peak {peak / 2**20:.1f} MiB")
    assert peak < 50 << 20


def test_content_coding_header():
    assert content_coding(None) is None and content_coding("identity") is None and content_coding("") is None
    assert content_coding("x-gzip") == "gzip" and content_coding(" Deflate ") == "deflate"
    assert content_coding("identity, gzip") == "gzip"
    for bad in ("br", "gzip, deflate", "*"):
        with pytest.raises(PayloadError) as exc:
            content_coding(bad)
        assert exc.value.status == 415


def _decode(coding: str, body: bytes, limit: int, step: int) -> bytes:
    inf = Inflater(coding, limit)
    out = b"".join(inf.feed(body[i:i + step]) for i in range(0, len(body), step))
    inf.finish()
    return out


_docs = st.binary(max_size=3_000) | st.text(max_size=500).map(str.encode)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_docs, coding=st.sampled_from(["gzip", "deflate"]), raw=st.booleans(),
       step=st.integers(1, 4096), cut=st.integers(0, 10_000), limit=st.integers(1, 4_000),
       flip=st.one_of(st.none(), st.tuples(st.integers(0, 10_000), st.integers(1, 255))))
def test_fuzz_compressed_bodies(data, coding, raw, step, cut, limit, flip):
    """Any body, whole, truncated, corrupted or over the limit: the original bytes back, or a named 400/413."""
    if coding == "gzip":
        body = gzip.compress(data)
    else:
        c = zlib.compressobj(6, zlib.DEFLATED, -15 if raw else 15)
        body = c.compress(data) + c.flush()
    whole = body
    truncated = cut < len(body)
    body = body[:cut] if truncated else body
    if flip is not None and body:
        at = flip[0] % len(body)
        body = body[:at] + bytes([body[at] ^ flip[1]]) + body[at + 1:]
    intact = flip is None and not truncated
    try:
        out = _decode(coding, body, limit, step)
    except PayloadError as exc:
        assert (exc.status, exc.error) in ((400, "malformed_body"), (413, "body_too_large"))
        if exc.status == 413:
            assert len(data) > limit or flip is not None  # only a body that really inflates past the limit
        else:
            assert not intact, f"a valid {coding} body was refused: {exc.detail}"
        return
    assert len(out) <= limit
    assert not (intact and len(data) > limit), "a body over the limit was accepted"
    if flip is None:
        assert not truncated or body == whole, "a truncated stream decoded as complete"
        assert out == data


@settings(max_examples=50, deadline=None)
@given(mib=st.integers(1, 8), limit=st.integers(1, 16 << 20), step=st.sampled_from([1 << 10, 1 << 16, 1 << 20]))
def test_fuzz_bombs_are_413_past_the_limit(mib, limit, step):
    body = gzip_bomb(mib)
    if limit >= mib << 20:  # a limit at or above what it inflates to: accepted whole
        assert len(_decode("gzip", body, limit, step)) == mib << 20
        return
    with pytest.raises(PayloadError) as exc:
        _decode("gzip", body, limit, step)
    assert exc.value.status == 413


def test_wrong_header_deflate_vs_gzip():
    with pytest.raises(PayloadError) as exc:
        _decode("gzip", zlib.compress(b'{"a": 1}'), 1000, 7)
    assert exc.value.status == 400
    assert _decode("deflate", zlib.compress(b'{"a": 1}'), 1000, 1) == b'{"a": 1}'


def test_a_slow_trickle_of_a_bomb_is_still_cut_at_the_limit():
    # Fed one byte at a time, a bomb never yields more than the limit plus one zlib step.
    inf, body, seen = Inflater("gzip", 100_000), gzip_bomb(2), 0
    with pytest.raises(PayloadError):
        for i in range(len(body)):
            seen += len(inf.feed(body[i:i + 1]))
    assert seen <= 100_000 < inf.size <= 100_000 + (64 << 10)
