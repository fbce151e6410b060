"""Property test: random journeys x random event streams x a moving clock, the engine against a simple oracle.

The oracle (pure Python, one person at a time, written from docs/journeys.md, not from the SQL) replays the same
runs and predicts every send, skip, deferral, arm and exit. The engine's log must match it exactly, and on top of
that the invariants the issue names are checked directly on the engine's output: no step twice per entry, waits
end at the first run at or after their due time, nothing is sent after a goal or exit was seen, re-entry rules,
consent, quiet hours and the frequency cap.

CI runs a dozen examples; `--hypothesis-profile=journeys-thorough` runs 2000.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.activation_world import consent, segment, warehouse
from support.journeys_world import Outboxes, env, events, journey

from beacon.journeys.engine import STATE_TZ, advance

# CI: a dozen examples (derandomized: the same ones every run); `--hypothesis-profile=journeys-thorough`
# (registered in tests/conftest.py): 2000 random ones.
THOROUGH = settings.default.max_examples >= 1000
EXAMPLES = settings.default.max_examples if THOROUGH else 12

PEOPLE = 12
T0 = datetime(2026, 6, 29, 6, 0)
STATES = ["IL", "NY", "CA", "HI"]
CAP = 3  # the house frequency cap per 7 days (BEACON_FREQUENCY_CAP default)
DUR = {"1h": timedelta(hours=1), "3h": timedelta(hours=3), "1d": timedelta(days=1), "7d": timedelta(days=7)}

# ------------------------------------------------------------------------------------------------ strategies


@st.composite
def journeys(draw):
    """A chain of 2-5 steps ending at an exit; branches and splits jump forward (no loops)."""
    n = draw(st.integers(2, 5))
    kinds = draw(st.lists(st.sampled_from(["send", "send", "wait", "wait_for", "branch", "split"]), min_size=n,
                          max_size=n))
    ids = [f"n{i}" for i in range(n)] + ["done"]
    nodes = []
    for i, k in enumerate(kinds):
        nxt = ids[i + 1]
        later = st.sampled_from(ids[i + 1:])
        if k == "send":
            node = {"id": ids[i], "type": "send", "channel": "email", "template": "t", "next": nxt}
            if draw(st.booleans()):
                node["quiet_hours"] = {"start": draw(st.sampled_from(["20:00", "22:00"])),
                                       "end": draw(st.sampled_from(["07:00", "09:00"])),
                                       "fallback": draw(st.sampled_from(["next_slot", "skip"]))}
        elif k == "wait":
            node = {"id": ids[i], "type": "wait", "duration": draw(st.sampled_from(list(DUR))), "next": nxt}
        elif k == "wait_for":
            node = {"id": ids[i], "type": "wait_for", "event": "email_click", "timeout": draw(st.sampled_from(list(DUR))),
                    "next": nxt, "on_timeout": draw(later)}
        elif k == "branch":
            node = {"id": ids[i], "type": "branch", "rules": [{"when": {"segment": "vips"}, "next": draw(later)}],
                    "default": nxt}
        else:
            node = {"id": ids[i], "type": "split", "arms": [{"name": "a", "weight": draw(st.integers(1, 3)),
                                                              "next": nxt}]}
            if draw(st.booleans()):
                node["control"] = {"name": "c", "weight": 1, "next": draw(later)}
        nodes.append(node)
    nodes.append({"id": "done", "type": "exit"})
    entry_kind = draw(st.sampled_from(["audience", "event"]))
    re_entry = draw(st.sampled_from(["never", "after_exit", "cooldown"] + (["once_per_event_key"]
                                                                           if entry_kind == "event" else [])))
    entry = {"audience": "members"} if entry_kind == "audience" else {"event": {"name": "product_added"}}
    entry["re_entry"] = re_entry
    if re_entry == "cooldown":
        entry["cooldown"] = draw(st.sampled_from(["3h", "1d"]))
    doc = {"name": "prop", "version": 1, "entry": entry, "start": "n0", "nodes": nodes,
           "exit_when": ["unsubscribed"]}
    if draw(st.booleans()):
        doc["goal"] = {"event": "order_completed", "within": draw(st.sampled_from(["3h", "1d", "7d"]))}
    return doc


@st.composite
def worlds(draw):
    runs = sorted(set(draw(st.lists(st.integers(0, 4 * 48), min_size=3, max_size=7))))  # 15-min slots, 2 days
    clocks = [T0 + timedelta(minutes=15 * r) for r in runs]
    horizon = clocks[-1]

    def at():
        return T0 - timedelta(hours=1) + timedelta(minutes=draw(st.integers(0, int((horizon - T0).total_seconds()
                                                                                    // 60) + 60)))

    evs = []
    for _ in range(draw(st.integers(0, 25))):
        evs.append((f"c{draw(st.integers(0, PEOPLE - 1))}",
                    draw(st.sampled_from(["product_added", "product_added", "order_completed", "email_click",
                                          "email_unsubscribe"])), at(), draw(st.sampled_from(["k1", "k2"]))))
    # Membership of the entry audience and of `vips` per run; consent flips per run.
    members = [draw(st.sets(st.integers(0, PEOPLE - 1), max_size=PEOPLE)) for _ in clocks]
    vips = draw(st.sets(st.integers(0, PEOPLE - 1)))
    opt_out = [draw(st.sets(st.integers(0, PEOPLE - 1), max_size=3)) for _ in clocks]
    states = [draw(st.sampled_from(STATES)) for _ in range(PEOPLE)]
    return {"clocks": clocks, "events": evs, "members": members, "vips": vips, "opt_out": opt_out, "states": states}


# ------------------------------------------------------------------------------------------------ the oracle


@dataclass
class Entry:
    no: int
    key: str | None
    entered_at: datetime
    node: str
    due: datetime
    arrived_at: datetime
    arm: str | None = None
    exited_at: datetime | None = None
    done: set = field(default_factory=set)  # send nodes passed (sent or skipped)


def _u(name: str, node: str, cid: str) -> float:
    return int(hashlib.md5(f"{name}:{node}:{cid}".encode()).hexdigest()[:8], 16) / 4294967296.0


def _slot(t: datetime, tz: str, start: str, end: str) -> datetime:
    """First instant >= t outside quiet hours [start, end) local (start > end: the quiet spans midnight)."""
    z = ZoneInfo(tz)
    local = t.replace(tzinfo=ZoneInfo("UTC")).astimezone(z).replace(tzinfo=None)
    a, b = (datetime.strptime(end, "%H:%M").time(), datetime.strptime(start, "%H:%M").time())  # allowed [a, b)
    if a <= local.time() < b:
        return t
    day = local.date() if local.time() < a else local.date() + timedelta(days=1)
    nxt = datetime.combine(day, a).replace(tzinfo=z).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    return nxt


class Oracle:
    def __init__(self, doc: dict, world: dict):
        self.doc, self.w = doc, world
        self.nodes = {n["id"]: n for n in doc["nodes"]}
        self.entries: dict[str, list[Entry]] = {f"c{i}": [] for i in range(PEOPLE)}
        self.sends: list[tuple[str, int, str, datetime]] = []  # (customer, entry, node, at)
        self.skips: list[tuple[str, int, str, str]] = []
        self.exits: list[tuple[str, int, str]] = []
        self.last_clock: datetime | None = None

    def ev(self, cid, name, lo, hi):
        return [e for e in self.w["events"] if e[0] == cid and e[1] == name and lo < e[2] <= hi]

    def arrive(self, e: Entry, node: str, t: datetime, cid: str) -> None:
        n = self.nodes[node]
        e.node, e.arrived_at = node, t
        e.due = t + DUR[n["duration"]] if n["type"] == "wait" else t + DUR[n["timeout"]] if n["type"] == "wait_for" \
            else t
        if n["type"] == "exit":
            e.exited_at = t
            self.exits.append((cid, e.no, "exit_node"))

    def run(self, k: int, T: datetime) -> None:
        doc = self.doc
        members = {f"c{i}" for i in self.w["members"][k]}
        vips = {f"c{i}" for i in self.w["vips"]}
        opted_out = {f"c{i}" for i in self.w["opt_out"][k]}
        for cid, es in self.entries.items():
            for e in es:
                if e.exited_at:
                    continue
                goal = doc.get("goal")
                if goal and self.ev(cid, goal["event"], e.entered_at, min(e.entered_at + DUR[goal["within"]], T)):
                    e.exited_at = T
                    self.exits.append((cid, e.no, "goal"))
                elif self.ev(cid, "email_unsubscribe", e.entered_at, T):
                    e.exited_at = T
                    self.exits.append((cid, e.no, "unsubscribed"))
        ent = doc["entry"]
        for cid, es in self.entries.items():
            if "audience" in ent:
                if cid not in members:
                    continue
                key = None
            else:
                lo = self.last_clock or T - timedelta(days=1)
                evs = sorted(self.ev(cid, "product_added", lo, T), key=lambda x: (x[2], x[3]))
                if not evs:
                    continue
                key = evs[0][3]
            if any(not e.exited_at for e in es):
                continue
            rule = ent["re_entry"]
            if rule == "never" and es:
                continue
            if rule == "cooldown" and any(e.exited_at > T - DUR[ent["cooldown"]] for e in es):
                continue
            if rule == "once_per_event_key" and any(e.key == key for e in es):
                continue
            es.append(Entry(no=len(es) + 1, key=key, entered_at=T, node=doc["start"], due=T, arrived_at=T))
            self.arrive(es[-1], doc["start"], T, cid)
        for _ in range(len(self.nodes) + 2):
            moved = False
            due = [(cid, e) for cid, es in self.entries.items() for e in es if not e.exited_at and (
                e.due <= T or (self.nodes[e.node]["type"] == "wait_for"
                               and self.ev(cid, self.nodes[e.node]["event"], e.arrived_at, T)))
                   and not getattr(e, "failed", False)]
            for cid, e in due:
                moved = True
                n = self.nodes[e.node]
                t = n["type"]
                if t == "wait":
                    self.arrive(e, n["next"], T, cid)
                elif t == "wait_for":
                    happened = self.ev(cid, n["event"], e.arrived_at, T)
                    self.arrive(e, n["next"] if happened else n["on_timeout"], T, cid)
                elif t == "branch":
                    self.arrive(e, n["rules"][0]["next"] if cid in vips else n["default"], T, cid)
                elif t == "split":
                    arms = [(a["name"], a["weight"], a["next"]) for a in n["arms"]]
                    if "control" in n:
                        arms.append(("control", n["control"]["weight"], n["control"]["next"]))
                    total, acc, u = sum(w for _, w, _ in arms), 0.0, _u(doc["name"], n["id"], cid)
                    for i, (name, w, nxt) in enumerate(arms):
                        acc += w / total
                        if u < acc or i == len(arms) - 1:
                            e.arm = name
                            self.arrive(e, nxt, T, cid)
                            break
                elif t == "send":
                    q = n.get("quiet_hours")
                    tz = STATE_TZ[self.w["states"][int(cid[1:])]]
                    if q and _slot(T, tz, q["start"], q["end"]) > T:
                        if q["fallback"] == "skip":
                            self.skips.append((cid, e.no, n["id"], "quiet_hours"))
                            self.arrive(e, n["next"], T, cid)
                        else:
                            e.due = _slot(T, tz, q["start"], q["end"])
                        continue
                    recent = sum(1 for c, _, _, at in self.sends if c == cid and T - timedelta(days=7) < at <= T)
                    if cid in opted_out:
                        self.skips.append((cid, e.no, n["id"], "opted_out"))
                    elif recent >= CAP:
                        self.skips.append((cid, e.no, n["id"], "frequency_cap"))
                    else:
                        self.sends.append((cid, e.no, n["id"], T))
                    self.arrive(e, n["next"], T, cid)
            if not moved:
                break
        self.last_clock = T


# ------------------------------------------------------------------------------------------------ the test


def _engine(doc: dict, w: dict):
    con = warehouse(PEOPLE)
    con.execute("UPDATE marts.dim_customers SET state = ['" + "', '".join(w["states"]) + "'][1 + "
                "replace(customer_id, 'c', '')::INTEGER]")
    events(con, w["events"])
    segment(con, "vips", [f"c{i}" for i in sorted(w["vips"])])
    boxes = Outboxes()
    j = journey(**doc)
    for k, T in enumerate(w["clocks"]):
        segment(con, "members", [f"c{i}" for i in sorted(w["members"][k])])
        for i in range(PEOPLE):
            consent(con, f"c{i}", "email", "opt_out" if i in w["opt_out"][k] else "opt_in")
        advance(con, j, T, env(boxes), lock_path=f"/tmp/beacon-journeys-prop-{os.getpid()}.lock", compact_after=None)
    return con, boxes


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not THOROUGH,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(doc=journeys(), w=worlds())
def test_engine_agrees_with_the_oracle(doc, w):
    con, boxes = _engine(doc, w)
    oracle = Oracle(doc, w)
    for k, T in enumerate(w["clocks"]):
        oracle.run(k, T)
    log = con.execute("""SELECT customer_id, entry_no, node_id, transition, detail, occurred_at, due_at, arm, step
        FROM journeys.transitions ORDER BY customer_id, entry_no, step""").fetchall()
    sent = sorted((c, n, node, at) for c, n, node, tr, _, at, _, _, _ in log if tr == "sent")
    assert sent == sorted(oracle.sends)
    # The destination got exactly what the log says: once per (person, entry, node).
    delivered = sorted((c, n, a.split("__")[-1]) for a, c, n in boxes.sent())
    assert delivered == sorted((c, n, node) for c, n, node, _ in oracle.sends)
    assert len(set(delivered)) == len(delivered)
    skipped = sorted((c, n, node, d) for c, n, node, tr, d, *_ in log if tr == "skipped")
    assert skipped == sorted(oracle.skips)
    exits = sorted((c, n, d) for c, n, _, tr, d, *_ in log if tr == "exited")
    assert exits == sorted(oracle.exits)
    # Invariants, checked on the engine's log alone.
    steps = [(c, n, node, tr) for c, n, node, tr, *_ in log if tr in ("sent", "skipped", "assigned")]
    assert len(steps) == len(set(steps)), "a step happened twice in one entry"
    clocks, kinds = w["clocks"], {x["id"]: x["type"] for x in doc["nodes"]}
    for prev, nxt in zip(log, log[1:], strict=False):
        same_entry = prev[:2] == nxt[:2]
        c, n, node, tr, _, at, due, _, _ = prev
        if same_entry and tr in ("arrived", "deferred") and due > at and nxt[3] != "exited" \
                and kinds[node] != "wait_for":
            # A wait (or a deferral) ends at the first run at or after its due time, not later, not earlier.
            assert nxt[5] == next(T for T in clocks if T >= due), (prev, nxt)
    for c, _n, node, at in sent:
        qh = next((x.get("quiet_hours") for x in doc["nodes"] if x["id"] == node), None)
        if qh:
            tz = STATE_TZ[w["states"][int(c[1:])]]
            assert _slot(at, tz, qh["start"], qh["end"]) == at, "sent in quiet hours"
    for c in {s[0] for s in sent}:
        times = sorted(s[3] for s in sent if s[0] == c)
        for t in times:
            assert sum(1 for x in times if t - timedelta(days=7) < x <= t) <= CAP, "frequency cap exceeded"
    exited_at = {(c, n): at for c, n, _, tr, _, at, *_ in log if tr == "exited"}
    for c, n, _, at in sent:
        assert (c, n) not in exited_at or at <= exited_at[(c, n)], "sent after the entry ended"
