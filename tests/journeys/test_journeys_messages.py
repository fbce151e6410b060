"""Journey sends render the send node's own template (beacon.personalize) and arrive at a real SMTP server."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from support.activation_world import segment, warehouse
from support.journeys_world import journey
from support.smtp import Sink, smtp_server

from beacon.activation.destinations.smtp import SmtpEmail
from beacon.audiences import Audience
from beacon.journeys.engine import Env, advance, ensure_tables

T = datetime(2026, 6, 30, 15, 0)  # 10:00 in Chicago (the test people live in IL)
JOURNEY_TEMPLATES = Path(__file__).resolve().parents[2] / "journeys" / "templates"


@pytest.fixture()
def sink():
    with smtp_server() as (s, port):
        s.port = port
        yield s


@pytest.fixture()
def con():
    c = warehouse(4)
    ensure_tables(c)
    c.execute("CREATE SCHEMA IF NOT EXISTS ml; CREATE SCHEMA IF NOT EXISTS staging")
    c.execute("""CREATE TABLE ml.recommendations AS SELECT * FROM (VALUES
        ('c1', 1, 'p9', 0.9, 'v1'), ('c1', 2, 'p7', 0.5, 'v1'), ('c2', 1, 'p7', 0.8, 'v1'))
        t(customer_id, rank, product_id, score, model_version)""")
    c.execute("""CREATE TABLE staging.stg_shop__products AS SELECT * FROM (VALUES
        ('p9', 'Trail Shoe', 'footwear', 89.5), ('p7', 'Wool Socks', 'apparel', 12.0))
        t(product_id, product_name, category, price)""")
    c.execute("""CREATE TABLE ml.scores AS SELECT * FROM (VALUES
        ('c1', 'lead_score', 'v1', 0.81, 9, TIMESTAMP '2026-06-29', 'recent_visits', 'opened_email', NULL),
        ('c2', 'lead_score', 'v1', 0.20, 2, TIMESTAMP '2026-06-29', 'no_orders', NULL, NULL))
        t(customer_id, model, version, score, decile, scored_at, reason_1, reason_2, reason_3)""")
    return c


def smtp(sink: Sink) -> SmtpEmail:
    return SmtpEmail("127.0.0.1", sink.port, "Beacon <news@beacon.example>", "Beacon Inc., 1 Main St",
                     "https://beacon.example/unsubscribe", "test-secret-not-real")


def run(con, j, dest, tdir, audiences=()):
    env = Env(destination=lambda ch: dest, audiences=list(audiences), templates_dir=tdir)
    return advance(con, j, T, env, lock_path=f"/tmp/beacon-journeys-messages-{os.getpid()}.lock")


def one_send(template: str, entry: str = "members") -> object:
    return journey(name="xsell", version=1, entry={"audience": entry}, start="s",
                   nodes=[{"id": "s", "type": "send", "channel": "email", "template": template, "next": "done"},
                          {"id": "done", "type": "exit"}])


def bodies(sink: Sink) -> dict[str, tuple[str, str, str]]:
    out = {}
    for rcpt, msg in sink.messages:
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        out[rcpt[0]] = (msg["Subject"], text, html)
    return out


def test_a_journey_send_arrives_rendered_from_the_journeys_own_template(con, sink):
    segment(con, "members", ["c1", "c2", "c3"])
    j = one_send("cross_sell_recommendations")
    r = run(con, j, smtp(sink), JOURNEY_TEMPLATES)
    assert (r.sent, r.failed, r.errors) == (3, 0, [])
    got = bodies(sink)
    subject, text, html = got["p1@example.com"]
    assert text.startswith("Hi Ann1,")
    # Recommendations from ml.recommendations with the product's name, category and price, best first.
    assert "1. Trail Shoe (footwear) - $89.50" in text and "2. Wool Socks (apparel) - $12.00" in text
    assert text.index("Trail Shoe") < text.index("Wool Socks")
    assert "Trail Shoe" in html and "Unsubscribe" in html  # the HTML alternative, footer appended by the destination
    assert "Beacon Inc., 1 Main St" in text  # the postal footer is still the destination's
    assert "Trail Shoe" not in got["p2@example.com"][1] and "Wool Socks" in got["p2@example.com"][1]
    assert "best sellers" in got["p3@example.com"][1]  # no recommendations: the template's fallback
    assert "{{" not in subject and subject
    # Exactly once: the next run sends nothing new.
    assert run(con, j, smtp(sink), JOURNEY_TEMPLATES).sent == 0 and len(sink.messages) == 3


def test_scores_reasons_and_blocks_by_branch_or_segment_and_one_render_error_does_not_stop_the_others(con, sink,
                                                                                                        tmp_path):
    (tmp_path / "blocks" / "hero").mkdir(parents=True)
    (tmp_path / "hi.subject.j2").write_text("For {{ first_name }}")
    (tmp_path / "hi.txt.j2").write_text(
        "Hi {{ first_name }}, tier {{ loyalty_tier }}.\n{{ block_for('hero') }}\n"
        "lead decile {{ scores.lead.decile | default('n/a') }} because {{ scores.lead.reasons | default([]) | join(', ') }}")
    (tmp_path / "blocks" / "hero" / "vip.txt.j2").write_text("HERO-VIP")
    (tmp_path / "blocks" / "hero" / "default.txt.j2").write_text("HERO-DEFAULT")
    con.execute("ALTER TABLE marts.dim_customers ADD COLUMN loyalty_tier VARCHAR")
    con.execute("UPDATE marts.dim_customers SET loyalty_tier = 'gold' WHERE customer_id <> 'c2'")
    segment(con, "members", ["c1", "c2", "c3"])
    segment(con, "vip", ["c1"])
    vip = Audience(name="vip", description="", owner="t", channels=("email",), priority=1, holdout_pct=0.0,
                   refresh="daily", relation="segments.vip", model="vip", path="x")
    r = run(con, one_send("hi"), smtp(sink), tmp_path, audiences=[vip])
    assert (r.sent, r.failed) == (2, 1)
    # The failure names the template, the field and the person, in the run's errors and the sync log.
    assert any("hi.txt.j2" in e and "'loyalty_tier'" in e and "c2" in e for e in r.errors), r.errors
    err = con.execute("SELECT error FROM activation.sync_log WHERE customer_id = 'c2' AND status = 'failed'").fetchone()
    assert "hi.txt.j2" in err[0] and "loyalty_tier" in err[0]
    got = bodies(sink)
    assert set(got) == {"p1@example.com", "p3@example.com"}
    s1, t1, h1 = got["p1@example.com"]
    assert s1 == "For Ann1"
    assert "tier gold" in t1 and "HERO-VIP" in t1 and "lead decile 9 because recent_visits, opened_email" in t1
    assert "HERO-DEFAULT" in got["p3@example.com"][1] and "lead decile n/a" in got["p3@example.com"][1]
    assert "HERO-VIP" in h1  # no hi.html.j2: the HTML part is the rendered text
    # Fixed (the field is filled in): the failed person is retried and sent at the next run, the others not again.
    con.execute("UPDATE marts.dim_customers SET loyalty_tier = 'silver' WHERE customer_id = 'c2'")
    r2 = run(con, one_send("hi"), smtp(sink), tmp_path, audiences=[vip])
    assert (r2.sent, r2.failed) == (1, 0)
    assert [m[0] for m in sink.messages][-1] == ["p2@example.com"] and len(sink.messages) == 3


def test_best_time_moves_the_send_to_the_persons_learned_local_hour_outside_quiet_hours(con):
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from support.journeys_world import Outboxes

    # c1 reads at 18:00 Chicago (23:00 UTC), c2 at 23:00 Chicago (inside the quiet hours 21:00-08:00); 30 days each.
    rows = [(c, "open", T - timedelta(days=d) + timedelta(hours=h)) for d in range(1, 31)
            for c, h in (("c1", 8), ("c2", 13))]
    con.executemany("INSERT INTO marts.fct_email_events VALUES (?, NULL, ?, ?, NULL)", [list(r) for r in rows])
    segment(con, "members", ["c1", "c2", "c3"])
    j = journey(name="bt", version=1, entry={"audience": "members"}, start="s",
                nodes=[{"id": "s", "type": "send", "channel": "email", "template": "t", "best_time": True,
                        "quiet_hours": {"start": "21:00", "end": "08:00"}, "next": "done"}, {"id": "done", "type": "exit"}])
    boxes = Outboxes()
    env = Env(destination=boxes)
    lock = f"/tmp/beacon-journeys-bt-{os.getpid()}.lock"
    r = advance(con, j, T, env, lock_path=lock)
    due = dict(con.execute("""SELECT customer_id, due_at FROM journeys.current
        WHERE transition = 'deferred' AND detail = 'best_time'""").fetchall())
    assert r.sent + len(due) == 3 and {"c1", "c2"} <= set(due)
    chicago = ZoneInfo("America/Chicago")

    def local(ts):
        return ts.replace(tzinfo=ZoneInfo("UTC")).astimezone(chicago)

    assert local(due["c1"]).hour in (17, 18) and local(due["c1"]).minute == 0  # an email shortly before they read
    assert local(due["c2"]).hour == 8  # their hour is quiet: the first allowed hour instead
    assert all(T < d <= T + timedelta(days=1) for d in due.values())
    # Nothing is sent before the hour; at the hour it is sent, once.
    assert advance(con, j, due["c1"] - timedelta(minutes=15), env, lock_path=lock).sent == 0
    advance(con, j, due["c1"], env, lock_path=lock)
    sent = [c for _, c, _ in boxes.sent()]
    assert "c1" in sent and "c2" not in sent  # c3 (no history of their own) may share the others' hour
    advance(con, j, T + timedelta(days=1), env, lock_path=lock)
    advance(con, j, T + timedelta(days=2), env, lock_path=lock)
    assert sorted(c for _, c, _ in boxes.sent()) == ["c1", "c2", "c3"]
