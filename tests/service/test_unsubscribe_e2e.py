"""End to end: an email sent by the SMTP destination, its one-click link posted to the real server, and the next
send (another audience of the same topic) skips that person, with no ingest run in between."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
from support.activation_world import audience, segment, warehouse

from beacon.activation.destinations.registry import build
from beacon.activation.sync import run_sync
from beacon.config import override_env

NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def test_one_click_unsubscribe_stops_the_next_send(svc, smtp_sink, tmp_path):
    con = warehouse(40)  # people no other test of the shared server touches: c30..c32
    winback, sale = audience("winback", channels=("email",)), audience("spring_sale", channels=("email",))
    segment(con, "winback", ["c30", "c31", "c32"])
    dest = build("email", str(tmp_path))
    with override_env(BEACON_LANDING_DIR=str(svc.landing)):
        assert run_sync(con, winback, [winback, sale], dest, NOW).delivered == 3
        msg = next(m for rcpt, m in smtp_sink.messages if rcpt == ["p31@example.com"])
        url = re.search(r"<(https://[^>]+)>", msg["List-Unsubscribe"]).group(1)
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        # What a mailbox provider does for RFC 8058: POST the header's URL with this body.
        r = httpx.post(f"{svc.url}/v1/unsubscribe", params=query, content=b"List-Unsubscribe=One-Click",
                       headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200
        segment(con, "spring_sale", ["c30", "c31", "c32"])
        s = run_sync(con, sale, [winback, sale], dest, NOW)
    assert s.delivered == 2 and s.suppressed == {"unsubscribed": 1}
    assert sorted(r[0] for r, _ in smtp_sink.messages[3:]) == ["p30@example.com", "p32@example.com"]
