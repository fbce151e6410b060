"""Every route of `beacon serve` declares its authentication rule, and the rule holds on a real server.

The OpenAPI document is walked (`app.openapi()`): a route without `x-beacon-auth`, or with an unknown rule,
fails. A route that changes data (any method but GET/HEAD, or a GET that declares `x-beacon-writes`) may be
`public` only when PUBLIC_WRITES gives the reason. Then every non-public route is called without its
credential on the real server: it must refuse (4xx/5xx) and write nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from beacon.service.app import create_app
from beacon.service.auth import RULES
from beacon.service.config import ServiceConfig

PUBLIC_WRITES = {
    ("post", "/v1/forms/{form}"): "records nothing; sends one signed confirmation to the address typed; rate-limited "
                                  "per address and per client IP, with a honeypot (docs/service.md)",
}
DOCUMENTED = Path(__file__).parents[2] / "docs" / "service.md"


def _operations(tmp_path) -> list[tuple[str, str, dict]]:
    app = create_app(ServiceConfig(landing_dir=tmp_path, write_keys={}))
    return [(m, p, op) for p, ops in app.openapi()["paths"].items() for m, op in ops.items()]


def test_every_route_declares_a_known_rule_and_no_public_route_writes_without_a_reason(tmp_path):
    ops = _operations(tmp_path)
    assert len(ops) >= 17  # collection (7), webhooks, unsubscribe, preferences (2), offers (3), forms (2), sms, health
    missing = [f"{m.upper()} {p}" for m, p, op in ops if op.get("x-beacon-auth") not in RULES]
    assert not missing, f"routes without a declared auth rule: {missing}"
    writes = {(m, p) for m, p, op in ops if m not in ("get", "head") or op.get("x-beacon-writes")}
    public_writes = {(m, p) for m, p, op in ops if (m, p) in writes and op["x-beacon-auth"] == "public"}
    assert public_writes <= set(PUBLIC_WRITES), f"public routes that change data: {public_writes - set(PUBLIC_WRITES)}"
    assert ("get", "/v1/forms/confirm") in writes  # a GET that records consent says so


def test_the_rule_table_in_the_docs_lists_every_route(tmp_path):
    doc = DOCUMENTED.read_text()
    table = dict(re.findall(r"^\| `(\w+ /[^`]*)` \| `(\w+)` \|", doc, re.M))
    for m, p, op in _operations(tmp_path):
        key = f"{m.upper()} {p}"
        if p.startswith("/v1/") and p[4:].split("/")[0] in {"track", "identify", "page", "screen", "group", "alias",
                                                             "batch"}:
            key = "POST /v1/{track,identify,page,screen,group,alias,batch}"
        assert table.get(key) == op["x-beacon-auth"], f"{key}: docs say {table.get(key)}, app {op['x-beacon-auth']}"


def test_without_its_credential_every_non_public_route_refuses_and_writes_nothing(svc, tmp_path):
    before = svc.snapshot()
    for m, p, op in _operations(tmp_path):
        if op["x-beacon-auth"] == "public":
            continue
        url = svc.url + re.sub(r"\{[^}]+\}", lambda g: {"{provider}": "sendgrid"}.get(g.group(0), "c1"), p)
        body = b'{"type": "track", "event": "x", "userId": "c1", "subject": "c1"}'
        r = httpx.request(m.upper(), url, content=body if m != "get" else None,
                          headers={"Content-Type": "application/json"})
        assert r.status_code >= 400, f"{m.upper()} {p} answered {r.status_code} without its credential"
    assert svc.snapshot() == before  # nothing landed
