"""Property test: over thousands of random consent / suppression / frequency / priority / holdout situations,
no message is sent that should not be, and every message that should be sent is.

The oracle below re-states the rules in plain Python from the generated facts; it shares no code with
the governance SQL.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta

import pytest
from support.activation_world import AS_OF, audience, segment, warehouse

from beacon.activation.destinations import Batch, RowResult
from beacon.activation.governance import add_suppression, ensure_tables
from beacon.activation.sync import run_sync

PEOPLE = 600
ROUNDS = 3


class Outbox:
    """An email destination that records every message it is asked to send."""

    name, channel, default_mode, fields, required_any = "email", "email", "insert_only", None, ("email",)

    def __init__(self):
        self.sent: list[tuple[str, str]] = []
        self.audience = ""

    def plan(self, rows, name, meta):
        return [Batch(name=name, rows=rows, meta=meta)]

    def send(self, batch):
        self.sent += [(batch.meta["audience"], c) for c in batch.rows.customer_id]
        return [RowResult(c, "delivered") for c in batch.rows.customer_id]


def _held_out(aud: str, cid: str, pct: float) -> bool:
    return int(hashlib.md5(f"{aud}:{cid}".encode()).hexdigest()[:8], 16) % 10000 / 100 < pct


class World:
    """Random facts about people, and the warehouse built from them."""

    def __init__(self, seed: int):
        rng = self.rng = random.Random(seed)
        self.cap = rng.choice([1, 2, 3])
        self.ids = [f"c{i}" for i in range(PEOPLE)]
        self.con = warehouse(PEOPLE)
        ensure_tables(self.con)
        t0 = datetime(2026, 1, 1)

        def when() -> datetime:
            return t0 + timedelta(days=rng.uniform(0, 170))

        self.consent: dict[str, tuple[str, datetime] | None] = {}
        self.unsub: dict[str, datetime] = {}
        self.complained, self.hard, self.erased, self.no_email = set(), set(), set(), set()
        for c in self.ids:
            self.consent[c] = rng.choices([None, ("opt_in", when()), ("opt_out", when())], [15, 65, 20])[0]
            if rng.random() < 0.10:
                self.unsub[c] = when()
            if rng.random() < 0.05:
                self.hard.add(c)
            if rng.random() < 0.03:
                self.complained.add(c)
            if rng.random() < 0.03:
                self.no_email.add(c)
            if rng.random() < 0.04:
                self.erased.add(c)
        self.con.execute("DELETE FROM marts.dim_consent WHERE channel = 'email'")
        self.con.executemany("INSERT INTO marts.dim_consent VALUES (?, 'email', ?, ?)",
                             [[c, s[0], s[1]] for c, s in self.consent.items() if s])
        events = [[c, "unsubscribe", t, None] for c, t in self.unsub.items()]
        events += [[c, "bounce", when(), "hard"] for c in self.hard]
        events += [[c, "bounce", when(), "soft"] for c in self.ids if rng.random() < 0.05]  # soft: no effect
        events += [[c, "complaint", when(), None] for c in self.complained]
        self.con.executemany("INSERT INTO marts.fct_email_events VALUES (?, NULL, ?, ?, ?)", events)
        self.con.executemany("UPDATE marts.dim_customers SET email = NULL WHERE customer_id = ?",
                             [[c] for c in self.no_email])
        for c in sorted(self.erased):  # half by id, half by the email address as typed in a request
            if rng.random() < 0.5 or c in self.no_email:
                add_suppression(self.con, "erased", AS_OF, customer_id=c)
            else:
                add_suppression(self.con, "erased", AS_OF, email=f"  P{c[1:]}@EXAMPLE.com")
        # Messages already sent before these runs (some failed, some on a non-message channel: neither counts).
        self.history: list[tuple[str, datetime]] = []
        prior = []
        for c in self.ids:
            for _ in range(rng.choice([0, 0, 1, 2, 3, 4])):
                at = AS_OF - timedelta(days=rng.randint(0, 12))
                status, channel = rng.choices([("delivered", "email"), ("failed", "email"), ("delivered", "file")],
                                              [80, 10, 10])[0]
                prior.append(["old", "old_aud", "x", channel, c, "add", status, None, None, 1, f"k{len(prior)}", at, at])
                if status == "delivered" and channel == "email":
                    self.history.append((c, at))
        self.con.executemany("INSERT INTO activation.sync_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", prior)
        # Audiences: one competitor delivered only to files (it must not take people off email), ties in priority.
        prios = rng.sample([10, 50, 50, 90], 4)
        self.audiences = [audience(f"aud{i}", priority=p, holdout=rng.choice([0, 10, 25, 50]), channels=("email",))
                          for i, p in enumerate(prios)]
        self.audiences.append(audience("files_only", priority=100, channels=("file",)))
        self.members: dict[str, set[str]] = {}
        for a in self.audiences:
            self.reshuffle(a.name, 1.0)

    def reshuffle(self, name: str, share: float) -> None:
        """Re-draw `share` of the people's membership of one audience."""
        old = self.members.get(name, set())
        new = set()
        for c in self.ids:
            keep = c in old
            new_draw = self.rng.random() < 0.4
            if self.rng.random() < share:
                keep = new_draw
            if keep:
                new.add(c)
        self.members[name] = new
        segment(self.con, name, sorted(new), points=[self.rng.randint(0, 9) for _ in new])

    def flip_consents(self, at: datetime) -> None:
        """Some people change their mind between runs (recorded at the run's time)."""
        for c in self.rng.sample(self.ids, 30):
            status = self.rng.choice(["opt_in", "opt_out"])
            self.consent[c] = (status, at)
            self.con.execute("DELETE FROM marts.dim_consent WHERE customer_id = ? AND channel = 'email'", [c])
            self.con.execute("INSERT INTO marts.dim_consent VALUES (?, 'email', ?, ?)", [c, status, at])

    # ------------------------------------------------------------------------------------------ the oracle

    def may_send(self, a, c: str, as_of: datetime) -> str | None:
        """None if the rules allow sending `a` to `c` at `as_of`, else the first rule that forbids it."""
        if c in self.erased:
            return "erased"
        if c in self.complained:
            return "complained"
        if c in self.hard:
            return "hard_bounced"
        consent = self.consent[c]
        if c in self.unsub and not (consent and consent[0] == "opt_in" and consent[1] > self.unsub[c]):
            return "unsubscribed"
        if consent is None or consent[0] != "opt_in":
            return "no consent"
        if c in self.no_email:
            return "no email"
        for b in self.audiences:
            if b.name != a.name and "email" in b.channels and c in self.members[b.name] and (
                    b.priority > a.priority or (b.priority == a.priority and b.name < a.name)):
                return "lower priority"
        recent = sum(1 for who, at in self.history if who == c and as_of - timedelta(days=7) < at <= as_of)
        if recent >= self.cap:
            return "frequency cap"
        if _held_out(a.name, c, a.holdout_pct):
            return "held out"
        return None


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_no_message_is_sent_that_should_not_be(seed, monkeypatch):
    w = World(seed)
    monkeypatch.setenv("BEACON_FREQUENCY_CAP", str(w.cap))
    ever_sent: set[tuple[str, str]] = set()
    checked = 0
    seen_reasons: set[str] = set()
    for r in range(ROUNDS):
        as_of = AS_OF + timedelta(days=2 * r)
        if r:
            for a in w.audiences:
                w.reshuffle(a.name, 0.2)
            w.flip_consents(as_of - timedelta(hours=1))
        order = [a for a in w.audiences if "email" in a.channels]
        w.rng.shuffle(order)  # the order audiences sync in must not matter
        for a in order:
            out = Outbox()
            # Decide before sending what the rules allow, from the facts as they are now.
            verdicts = {c: w.may_send(a, c, as_of) for c in w.members[a.name]}
            allowed = {c for c, v in verdicts.items() if v is None}
            seen_reasons |= {v for v in verdicts.values() if v}
            run_sync(w.con, a, w.audiences, out, as_of)
            sent = {c for _, c in out.sent}
            wrong = {c: w.may_send(a, c, as_of) for c in sent - allowed}
            assert not wrong, f"seed {seed} round {r} {a.name}: sent against the rules: {wrong}"
            assert not sent & {c for aud, c in ever_sent if aud == a.name}, "insert-only sent a member twice"
            missing = allowed - sent - {c for aud, c in ever_sent if aud == a.name}
            assert not missing, f"seed {seed} round {r} {a.name}: allowed but not sent: {sorted(missing)[:5]}"
            ever_sent |= {(a.name, c) for c in sent}
            w.history += [(c, as_of) for c in sent]
            checked += len(w.members[a.name])
    assert checked > 2000 and len(ever_sent) > 100  # thousands of situations, and real sends among them
    # Every rule was put to the test (forbade someone) in this world.
    assert seen_reasons == {"erased", "complained", "hard_bounced", "unsubscribed", "no consent", "no email",
                            "lower priority", "frequency cap", "held out"}, seen_reasons
