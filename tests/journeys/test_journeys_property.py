"""Property test: random journeys x random worlds x a moving clock, the engine against an oracle.

The oracle (pure Python, one entry at a time) is written from docs/journeys.md, not from the engine's SQL: it owns
its state -> time-zone map, its quiet-hours arithmetic and the documented split rule ("Split" in docs/journeys.md).
It replays the same runs and predicts every entry (with its key), send (with its run), skip (with its reason),
deferral (with its due time), arm, action, webhook call and exit (with its reason); the engine's log, its
compacted entries (`journeys.finished`), its actions and what the destinations received must match exactly.
Invariants are checked on the engine's output as well (no step twice per entry, waits end at the first run at or
after their due time, nothing sent in quiet hours, the frequency cap, nothing sent after an exit).

Every feature is driven by an explicit `@example` (so CI always exercises it) and by the generated examples:
node types send, wait (duration, until_date), wait_for (event, segment), branch (segment, attribute, score,
delivered/opened/clicked/converted), split (arms + control), actions (lead_points, list_add, list_remove, webhook),
exit; entries audience, event, date, schedule; re-entry never, after_exit, cooldown, once_per_event_key;
cap_per_run and max_active; goals; left_audience and unsubscribe exits; consent and frequency-cap skips; quiet
hours (skip and next_slot); time zones from the state (UTC otherwise); delivery failures (`Outbox.fail`,
retried next run); compaction inside `advance` (`compact_after`).

Profiles: CI runs the examples plus a few dozen derandomized ones; `make test-journeys-thorough`
(`--hypothesis-profile=journeys-thorough`, tests/conftest.py) runs 500 random ones; `make fuzz` runs every
Hypothesis test with a fresh, printed seed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.activation_world import consent, segment, warehouse
from support.journeys_world import Outboxes, env, events, journey

from beacon.journeys.engine import advance
from beacon.warehouse import ensure_scores_table

THOROUGH = settings.default.max_examples >= 500
EXAMPLES = settings.default.max_examples if THOROUGH else 15

PEOPLE = 10
T0 = datetime(2026, 6, 29, 6, 0)  # a Monday, 06:00 UTC
CAP = 3  # the house frequency cap per 7 days (BEACON_FREQUENCY_CAP default)
DUR = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "3h": timedelta(hours=3), "6h": timedelta(hours=6),
       "1d": timedelta(days=1), "3d": timedelta(days=3), "7d": timedelta(days=7)}
# The oracle's own map (docs/journeys.md: "from the US state, else UTC"; IANA zones of these states).
OWN_TZ = {"IL": "America/Chicago", "NY": "America/New_York", "CA": "America/Los_Angeles", "HI": "Pacific/Honolulu",
          "AZ": "America/Phoenix"}
STATES = [*OWN_TZ, "ZZ"]  # ZZ: not a state -> UTC
UTC = ZoneInfo("UTC")

# ------------------------------------------------------------------------------------------------ strategies


def _send(i, nxt, **kw):
    return {"id": i, "type": "send", "channel": "email", "template": "t", "next": nxt, **kw}


@st.composite
def nodes_chain(draw, n: int):
    """A chain of n steps ending at an exit; branches, splits and wait_for jump forward (no loops)."""
    kinds = draw(st.lists(st.sampled_from(["send", "send", "wait", "wait_for", "branch", "split", "actions"]),
                          min_size=n, max_size=n))
    ids = [f"n{i}" for i in range(n)] + ["done"]
    nodes, sends = [], []
    for i, k in enumerate(kinds):
        nxt, later = ids[i + 1], st.sampled_from(ids[i + 1:])
        if k == "send":
            node = _send(ids[i], nxt)
            if draw(st.booleans()):
                node["quiet_hours"] = {"start": draw(st.sampled_from(["20:00", "22:00", "09:00"])),
                                       "end": draw(st.sampled_from(["07:00", "08:00", "17:00"])),
                                       "fallback": draw(st.sampled_from(["next_slot", "skip"]))}
            sends.append(ids[i])
        elif k == "wait":
            if draw(st.integers(0, 3)) == 0:
                node = {"id": ids[i], "type": "wait", "next": nxt,
                        "until_date": {"attribute": "signup", "offset_days": draw(st.integers(0, 2)),
                                       "at": draw(st.sampled_from(["09:00", "18:30"]))}}
            else:
                node = {"id": ids[i], "type": "wait", "duration": draw(st.sampled_from(list(DUR)[:5])), "next": nxt}
        elif k == "wait_for":
            node = {"id": ids[i], "type": "wait_for", "timeout": draw(st.sampled_from(list(DUR)[:5])), "next": nxt,
                    "on_timeout": draw(later)}
            if draw(st.booleans()):
                node["event"] = draw(st.sampled_from(["email_click", "order_completed"]))
            else:
                node["segment"] = "vips"
        elif k == "branch":
            conds = [{"segment": "vips"}, {"attribute": "tier", "op": ">=", "value": draw(st.integers(1, 3))},
                     {"score": "lead", "op": ">", "value": draw(st.sampled_from([0.3, 0.6]))}]
            conds += [{"engagement": e, "node": s} for s in sends for e in ("delivered", "opened", "clicked",
                                                                             "converted")]
            rules = draw(st.lists(st.sampled_from(conds), min_size=1, max_size=2))
            node = {"id": ids[i], "type": "branch", "rules": [{"when": c, "next": draw(later)} for c in rules],
                    "default": nxt}
        elif k == "split":
            node = {"id": ids[i], "type": "split", "arms": [{"name": "a", "weight": draw(st.integers(1, 3)), "next": nxt}]}
            if draw(st.booleans()):
                node["arms"].append({"name": "b", "weight": 1, "next": draw(later)})
            if draw(st.booleans()):
                node["control"] = {"name": "c", "weight": 1, "next": draw(later)}
        else:
            acts = draw(st.lists(st.sampled_from([{"lead_points": 5}, {"list_add": "vip"}, {"list_remove": "vip"},
                                                  {"webhook": "webhook"}]), min_size=1, max_size=3))
            node = {"id": ids[i], "type": "actions", "actions": acts, "next": nxt}
        nodes.append(node)
    nodes.append({"id": "done", "type": "exit"})
    return nodes


@st.composite
def journeys(draw):
    nodes = draw(nodes_chain(draw(st.integers(2, 6))))
    kind = draw(st.sampled_from(["audience", "audience", "event", "event", "date", "schedule"]))
    if kind == "audience":
        entry = {"audience": "members"}
    elif kind == "event":
        entry = {"event": {"name": "product_added"}}
    elif kind == "date":
        entry = {"date": {"attribute": "signup", "offset_days": draw(st.integers(-1, 1)),
                          "annual": draw(st.booleans()), "at": draw(st.sampled_from(["09:00", "21:00"]))}}
    else:
        entry = {"schedule": {"audience": "members", "start": (T0 + timedelta(hours=draw(st.integers(-6, 12))))
                              .isoformat(), "every": draw(st.sampled_from(["6h", "1d"]))}}
    rules = ["never", "after_exit", "cooldown"] + (["once_per_event_key"] if kind != "audience" else [])
    entry["re_entry"] = draw(st.sampled_from(rules))
    if entry["re_entry"] == "cooldown":
        entry["cooldown"] = draw(st.sampled_from(["3h", "1d"]))
    if draw(st.integers(0, 4)) == 0:
        entry["cap_per_run"] = draw(st.integers(1, 4))
    if draw(st.integers(0, 4)) == 0:
        entry["max_active"] = draw(st.integers(1, 5))
    doc = {"name": "prop", "version": 1, "entry": entry, "start": "n0", "nodes": nodes,
           "exit_when": ["unsubscribed"] + (["left_audience"] if kind in ("audience", "schedule")
                                            and draw(st.booleans()) else [])}
    if draw(st.booleans()):
        doc["goal"] = {"event": "order_completed", "within": draw(st.sampled_from(["3h", "1d", "7d"]))}
    return doc


def world(runs: list[int], events=(), members=None, vips=None, opt_out=None, fail_email=None, fail_webhook=None,
          states=None, tiers=None, signup=None, scores=None, compact=None) -> dict:
    """A world: run clocks (15-minute slots after T0), events, and per run: entry audience, `vips`, email
    opt-outs, people whose email / webhook delivery fails; per person: state, tier, signup, lead score."""
    clocks = [T0 + timedelta(minutes=15 * r) for r in runs]
    k = len(clocks)
    every = set(range(PEOPLE))
    return {"clocks": clocks, "events": list(events),
            "members": members if members is not None else [every] * k,
            "vips": vips if vips is not None else [set()] * k,
            "opt_out": opt_out if opt_out is not None else [set()] * k,
            "fail_email": fail_email if fail_email is not None else [set()] * k,
            "fail_webhook": fail_webhook if fail_webhook is not None else [set()] * k,
            "states": states or ["IL"] * PEOPLE, "tiers": tiers or [0] * PEOPLE,
            "signup": signup or [None] * PEOPLE, "scores": scores or [None] * PEOPLE, "compact": compact}


@st.composite
def worlds(draw):
    runs = sorted(set(draw(st.lists(st.integers(0, 4 * 72), min_size=3, max_size=7))))  # 15-min slots, 3 days
    clocks = [T0 + timedelta(minutes=15 * r) for r in runs]
    span = int((clocks[-1] - T0).total_seconds() // 60) + 120
    people = st.integers(0, PEOPLE - 1)
    evs = [(f"c{draw(people)}", draw(st.sampled_from(["product_added", "product_added", "order_completed",
                                                      "email_click", "email_open", "email_unsubscribe"])),
            T0 - timedelta(hours=2) + timedelta(minutes=draw(st.integers(0, span))), draw(st.sampled_from(["k1", "k2"])))
           for _ in range(draw(st.integers(0, 30)))]
    per_run = [len(clocks)]

    def sets(max_size):
        return [draw(st.sets(people, max_size=max_size)) for _ in range(per_run[0])]

    base = date(2026, 6, 28)
    return world(runs, evs, members=sets(PEOPLE), vips=sets(PEOPLE), opt_out=sets(3), fail_email=sets(2),
                 fail_webhook=sets(2), states=[draw(st.sampled_from(STATES)) for _ in range(PEOPLE)],
                 tiers=[draw(st.integers(0, 3)) for _ in range(PEOPLE)],
                 signup=[draw(st.sampled_from([None, base - timedelta(days=365 * 3)] + [base + timedelta(days=d)
                                                                                       for d in range(6)]))
                         for _ in range(PEOPLE)],
                 scores=[draw(st.sampled_from([None, 0.1, 0.5, 0.9])) for _ in range(PEOPLE)],
                 compact=draw(st.sampled_from([None, None, timedelta(minutes=30), timedelta(hours=6)])))


# ------------------------------------------------------------------------------------------------ the oracle


@dataclass
class Entry:
    cid: str
    no: int
    key: str | None
    entered_at: datetime
    node: str = ""
    due: datetime = datetime.min
    arrived_at: datetime = datetime.min
    arm: str | None = None
    exited_at: datetime | None = None
    exit_reason: str | None = None
    sent_at: dict = field(default_factory=dict)  # send node -> when it was sent
    failed_run: int = -1


def split_u(journey: str, node: str, cid: str) -> float:
    """docs/journeys.md, "Split": the first 8 hex digits of md5('<journey>:<node>:<customer_id>') / 2^32."""
    return int(hashlib.md5(f"{journey}:{node}:{cid}".encode()).hexdigest()[:8], 16) / 2 ** 32


def local_to_utc(day: date, at: time, tz: str) -> datetime:
    return datetime.combine(day, at).replace(tzinfo=ZoneInfo(tz)).astimezone(UTC).replace(tzinfo=None)


def slot(t: datetime, tz: str, start: str, end: str) -> datetime:
    """First instant >= t outside quiet hours [start, end) local (start > end: the quiet hours span midnight)."""
    a, b = time.fromisoformat(end), time.fromisoformat(start)  # allowed: [a, b) local, wrapping if a > b
    local = t.replace(tzinfo=UTC).astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    ok = (a <= local.time() < b) if a < b else (local.time() >= a or local.time() < b)
    if ok:
        return t
    day = next(local.date() + timedelta(days=d) for d in range(3) if datetime.combine(local.date() + timedelta(days=d),
                                                                                       a) > local)
    return local_to_utc(day, a, tz)


class Oracle:
    def __init__(self, doc: dict, w: dict):
        self.doc, self.w, self.name = doc, w, doc["name"]
        self.nodes = {n["id"]: n for n in doc["nodes"]}
        self.entries: dict[str, list[Entry]] = {f"c{i}": [] for i in range(PEOPLE)}
        self.sends: list[tuple] = []  # (customer, entry, node, at)
        self.skips: list[tuple] = []  # (customer, entry, node, reason)
        self.deferrals: list[tuple] = []  # (customer, entry, node, at, due)
        self.arms: list[tuple] = []  # (customer, entry, node, arm)
        self.actions: list[tuple] = []  # (customer, entry, node, action, value, at)
        self.webhooks: list[tuple] = []  # (customer, entry, node_i, at)
        self.last: datetime | None = None

    def tz(self, cid: str) -> str:
        return OWN_TZ.get(self.w["states"][int(cid[1:])], "UTC")

    def ev(self, cid, name, lo, hi, lo_inclusive=False):
        return [e for e in self.w["events"] if e[0] == cid and e[1] == name
                and (lo <= e[2] if lo_inclusive else lo < e[2]) and e[2] <= hi]

    def arrive(self, e: Entry, node: str, T: datetime) -> None:
        n = self.nodes[node]
        e.node, e.arrived_at, e.due = node, T, T
        if n["type"] == "wait" and "duration" in n:
            e.due = T + DUR[n["duration"]]
        elif n["type"] == "wait":
            u, d = n["until_date"], self.w["signup"][int(e.cid[1:])]
            if d is not None:
                e.due = max(T, local_to_utc(d + timedelta(days=u.get("offset_days", 0)), time.fromisoformat(u.get("at", "09:00")),
                                            self.tz(e.cid)))
        elif n["type"] == "wait_for":
            e.due = T + DUR[n["timeout"]]
        elif n["type"] == "exit":
            self.exit(e, T, "exit_node")

    def exit(self, e: Entry, T: datetime, reason: str) -> None:
        e.exited_at, e.exit_reason = T, reason

    # -- one run -------------------------------------------------------------------------------------------

    def run(self, k: int, T: datetime) -> None:
        self.k, self.T = k, T
        self.members = {f"c{i}" for i in self.w["members"][k]}
        self.vips = {f"c{i}" for i in self.w["vips"][k]}
        self.opted_out = {f"c{i}" for i in self.w["opt_out"][k]}
        self.exits_and_goals(T)
        self.enter(T)
        for _ in range(len(self.nodes) + 2):
            due = [e for es in self.entries.values() for e in es if e.exited_at is None and e.failed_run != k
                   and (e.due <= T or self.happened(e))]
            for e in due:
                self.step(e)
            if not due:
                break
        self.last = T

    def active(self):
        return [e for es in self.entries.values() for e in es if e.exited_at is None]

    def exits_and_goals(self, T):
        doc = self.doc
        for e in self.active():
            g = doc.get("goal")
            if g and self.ev(e.cid, g["event"], e.entered_at, min(e.entered_at + DUR[g["within"]], T)):
                self.exit(e, T, "goal")
            elif "left_audience" in doc["exit_when"] and e.cid not in self.members:
                self.exit(e, T, "left_audience")
            elif self.ev(e.cid, "email_unsubscribe", e.entered_at, T):
                self.exit(e, T, "unsubscribed")

    def candidates(self, T) -> dict[str, str | None]:
        ent = self.doc["entry"]
        if "audience" in ent:
            return dict.fromkeys(self.members)
        if "event" in ent:
            lo, out = self.last or T - timedelta(days=1), {}
            for cid in self.entries:
                evs = sorted(self.ev(cid, ent["event"]["name"], lo, T), key=lambda x: (x[2], x[3]))
                if evs:
                    out[cid] = evs[0][3]
            return out
        if "date" in ent:
            d, lo, out = ent["date"], self.last or T - timedelta(days=1), {}
            for cid in self.entries:
                base = self.w["signup"][int(cid[1:])]
                if base is None:
                    continue
                base = base + timedelta(days=d.get("offset_days", 0))
                days = [base.replace(year=T.year + y) for y in (-1, 0)] if d.get("annual") else [base]
                keys = [str(x.year) for x in days if lo < local_to_utc(x, time.fromisoformat(d.get("at", "09:00")), self.tz(cid)) <= T]
                if keys:
                    out[cid] = min(keys)
            return out
        s = ent["schedule"]
        start, every = datetime.fromisoformat(s["start"]), DUR[s["every"]]
        if T < start:
            return {}
        occ = start + ((T - start) // every) * every
        lo = self.last or T - every
        return dict.fromkeys(self.members, occ.isoformat()) if occ > lo else {}

    def enter(self, T):
        ent, rule = self.doc["entry"], self.doc["entry"]["re_entry"]
        new = []
        for cid, key in self.candidates(T).items():
            es = self.entries[cid]
            if any(e.exited_at is None for e in es):
                continue
            if rule == "never" and es:
                continue
            if rule == "cooldown" and any(e.exited_at > T - DUR[ent["cooldown"]] for e in es):
                continue
            if rule == "once_per_event_key" and any(e.key == key for e in es):
                continue
            new.append((cid, key))
        caps = [ent.get("cap_per_run")]
        if ent.get("max_active"):
            caps.append(ent["max_active"] - len(self.active()))
        caps = [c for c in caps if c is not None]
        if caps:  # docs/journeys.md: the first in the order of md5(journey name || customer id)
            new = sorted(new, key=lambda x: hashlib.md5((self.name + x[0]).encode()).hexdigest())[:max(0, min(caps))]
        for cid, key in new:
            e = Entry(cid=cid, no=len(self.entries[cid]) + 1, key=key, entered_at=T)
            self.entries[cid].append(e)
            self.arrive(e, self.doc["start"], T)

    def happened(self, e: Entry) -> bool:
        n = self.nodes[e.node]
        if n["type"] != "wait_for":
            return False
        if "event" in n:
            return bool(self.ev(e.cid, n["event"], e.arrived_at, self.T))
        return e.cid in self.vips

    def holds(self, e: Entry, c: dict) -> bool:
        i = int(e.cid[1:])
        if "segment" in c:
            return e.cid in self.vips
        if "attribute" in c:
            return self.w["tiers"][i] >= c["value"]
        if "score" in c:
            return self.w["scores"][i] is not None and self.w["scores"][i] > c["value"]
        sent = e.sent_at.get(c["node"])
        if c["engagement"] == "delivered" or sent is None:
            return sent is not None
        name = {"opened": "email_open", "clicked": "email_click"}.get(c["engagement"])
        name = name or (self.doc["goal"]["event"] if self.doc.get("goal") else "order_completed")
        return bool(self.ev(e.cid, name, sent, self.T, lo_inclusive=True))

    def step(self, e: Entry) -> None:
        n, T, cid = self.nodes[e.node], self.T, e.cid
        t = n["type"]
        if t in ("wait", "exit"):
            self.arrive(e, n["next"], T)
        elif t == "wait_for":
            self.arrive(e, n["next"] if self.happened(e) else n["on_timeout"], T)
        elif t == "branch":
            self.arrive(e, next((r["next"] for r in n["rules"] if self.holds(e, r["when"])), n["default"]), T)
        elif t == "split":
            arms = [(a["name"], a["weight"], a["next"]) for a in n["arms"]]
            if "control" in n:
                arms.append(("control", n["control"]["weight"], n["control"]["next"]))
            total, acc, u = sum(w for _, w, _ in arms), 0.0, split_u(self.name, n["id"], cid)
            for i, (name, w, nxt) in enumerate(arms):
                acc += w / total
                if u < acc or i == len(arms) - 1:
                    e.arm = name
                    self.arms.append((cid, e.no, n["id"], name))
                    self.arrive(e, nxt, T)
                    break
        elif t == "actions":
            for i, a in enumerate(n["actions"]):
                if "webhook" in a and cid not in self.opted_out:  # governed: an email opt-out skips it
                    if int(cid[1:]) in self.w["fail_webhook"][self.k]:
                        e.failed_run = self.k  # not acknowledged: stays, retried next run
                        return
                    if (cid, e.no, f"{n['id']}_{i}") not in {x[:3] for x in self.webhooks}:
                        self.webhooks.append((cid, e.no, f"{n['id']}_{i}", T))
            for a in n["actions"]:
                kind = next(iter(a))
                if kind != "webhook":
                    self.actions.append((cid, e.no, n["id"], kind, str(a[kind]), self.T))
            self.arrive(e, n["next"], T)
        else:
            self.send(e, n)

    def send(self, e: Entry, n: dict) -> None:
        T, cid = self.T, e.cid
        q = n.get("quiet_hours")
        if q and (s := slot(T, self.tz(cid), q["start"], q["end"])) > T:
            if q["fallback"] == "skip":
                self.skips.append((cid, e.no, n["id"], "quiet_hours"))
                self.arrive(e, n["next"], T)
            else:
                self.deferrals.append((cid, e.no, n["id"], T, s))
                e.due = s
            return
        recent = sum(1 for c, _, _, at in self.sends if c == cid and T - timedelta(days=7) < at <= T)
        if cid in self.opted_out:
            self.skips.append((cid, e.no, n["id"], "opted_out"))
        elif recent >= CAP:
            self.skips.append((cid, e.no, n["id"], "frequency_cap"))
        elif int(cid[1:]) in self.w["fail_email"][self.k]:
            e.failed_run = self.k  # the destination refused it: stays at the node, retried next run
            return
        else:
            self.sends.append((cid, e.no, n["id"], T))
            e.sent_at[n["id"]] = T
        self.arrive(e, n["next"], T)

    def compacted(self, e: Entry) -> bool:
        c = self.w["compact"]
        return c is not None and e.exited_at is not None and e.exited_at <= self.last - c

    def all_entries(self):
        return [e for es in self.entries.values() for e in es]


# ------------------------------------------------------------------------------------------------ the engine


class ClockedOutboxes(Outboxes):
    """Outboxes that also note the run (clock) at which each delivery happened."""

    def __init__(self):
        super().__init__()
        self.at: dict[str, list[datetime]] = {}

    def tag(self, T: datetime) -> None:
        for ch, box in self.boxes.items():
            got = self.at.setdefault(ch, [])
            got += [T] * (len(box.sent) - len(got))

    def deliveries(self, channel: str) -> list[tuple]:
        return [(c, n, a.split("__")[-1], at) for (a, c, n), at in zip(self.sent(channel), self.at.get(channel, []),
                                                                      strict=True)]


def _engine(doc: dict, w: dict):
    con = warehouse(PEOPLE)
    con.execute("ALTER TABLE marts.dim_customers ADD COLUMN tier INTEGER")
    con.execute("ALTER TABLE marts.dim_customers ADD COLUMN signup DATE")
    con.executemany("UPDATE marts.dim_customers SET state = ?, tier = ?, signup = ? WHERE customer_id = ?",
                    [[w["states"][i], w["tiers"][i], w["signup"][i], f"c{i}"] for i in range(PEOPLE)])
    ensure_scores_table(con)
    scored = [[f"c{i}", s] for i, s in enumerate(w["scores"]) if s is not None]
    if scored:
        con.executemany("INSERT INTO ml.scores (customer_id, model, score, scored_at) VALUES "
                        "(?, 'lead', ?, TIMESTAMP '2026-06-01')", scored)
    events(con, w["events"])
    boxes = ClockedOutboxes()
    j = journey(**doc)
    for k, T in enumerate(w["clocks"]):
        segment(con, "members", [f"c{i}" for i in sorted(w["members"][k])])
        segment(con, "vips", [f"c{i}" for i in sorted(w["vips"][k])])
        for i in range(PEOPLE):
            consent(con, f"c{i}", "email", "opt_out" if i in w["opt_out"][k] else "opt_in")
        boxes("email").fail = {f"c{i}" for i in w["fail_email"][k]}
        boxes("webhook").fail = {f"c{i}" for i in w["fail_webhook"][k]}
        advance(con, j, T, env(boxes), lock_path=f"/tmp/beacon-journeys-prop-{os.getpid()}.lock",
                compact_after=w["compact"])
        boxes.tag(T)
    return con, boxes


# ------------------------------------------------------------------------------------------------ examples

E = {"id": "done", "type": "exit"}
EVERY = set(range(PEOPLE))


def _doc(nodes, entry=None, **kw):
    return {"name": "prop", "version": 1, "entry": entry or {"audience": "members", "re_entry": "never"},
            "start": nodes[0]["id"], "nodes": [*nodes, E], "exit_when": ["unsubscribed"], **kw}


MIXED = ["IL", "NY", "CA", "HI", "AZ", "ZZ", "IL", "NY", "CA", "HI"]
EXAMPLES_ = {
    # Quiet hours 22:00-08:00 at 06:00 UTC: quiet in IL/NY/CA/AZ, not in HI or UTC (ZZ: no known state);
    # next_slot defers to 08:00 local (one per zone), and the later runs release them.
    "quiet_next_slot": (_doc([_send("s", "done", quiet_hours={"start": "22:00", "end": "08:00",
                                                             "fallback": "next_slot"})]),
                        world([0, 24, 28, 36, 44, 48], states=MIXED)),
    "quiet_skip": (_doc([_send("s", "done", quiet_hours={"start": "22:00", "end": "08:00", "fallback": "skip"})]),
                   world([0, 1], states=MIXED)),
    "frequency_cap_and_consent": (_doc([_send("a", "b"), _send("b", "c"), _send("c", "d"), _send("d", "done")]),
                                  world([0, 1], opt_out=[{2}, {3}])),
    "goal_ends_a_wait": (_doc([_send("a", "w"), {"id": "w", "type": "wait", "duration": "1d", "next": "b"},
                               _send("b", "done")], goal={"event": "order_completed", "within": "3d"}),
                         world([0, 8, 96], events=[("c1", "order_completed", T0 + timedelta(hours=1), "o"),
                                                   ("c2", "order_completed", T0 - timedelta(hours=1), "o")])),
    "wait_for_event_and_segment": (_doc([{"id": "f", "type": "wait_for", "event": "email_click", "timeout": "1d",
                                          "next": "s", "on_timeout": "g"},
                                         {"id": "g", "type": "wait_for", "segment": "vips", "timeout": "3h",
                                          "next": "s", "on_timeout": "done"}, _send("s", "done")]),
                                   world([0, 4, 96, 100, 120], events=[("c1", "email_click", T0 + timedelta(minutes=30),
                                                                        "m")],
                                         vips=[set(), set(), set(), {2}, {3}])),
    "once_per_event_key": (_doc([_send("s", "done")], {"event": {"name": "product_added"},
                                                         "re_entry": "once_per_event_key"}),
                           world([0, 4, 8], events=[("c1", "product_added", T0 - timedelta(minutes=5), "k1"),
                                                    ("c1", "product_added", T0 + timedelta(minutes=30), "k1"),
                                                    ("c1", "product_added", T0 + timedelta(minutes=90), "k2"),
                                                    ("c2", "product_added", T0 - timedelta(minutes=5), "k1")])),
    "cooldown_and_left_audience": (_doc([{"id": "w", "type": "wait", "duration": "1h", "next": "done"}],
                                        {"audience": "members", "re_entry": "cooldown", "cooldown": "3h"},
                                        exit_when=["unsubscribed", "left_audience"]),
                                   world([0, 2, 8, 14, 24], members=[EVERY, EVERY - {1}, EVERY, EVERY, EVERY])),
    "schedule_entry": (_doc([_send("s", "done")], {"schedule": {"audience": "members",
                                                                 "start": (T0 + timedelta(hours=1)).isoformat(),
                                                                 "every": "6h"}, "re_entry": "after_exit"}),
                       world([0, 4, 8, 24, 25, 48], members=[{1, 2}] * 3 + [{3}] * 3)),
    "date_entry": (_doc([_send("s", "done")], {"date": {"attribute": "signup", "annual": True, "at": "09:00"},
                                                "re_entry": "once_per_event_key"}),
                   world([0, 20, 36, 60, 132, 140], states=MIXED,
                         signup=[date(2019, 6, 29), date(2026, 6, 30), None, date(2020, 6, 30), date(2026, 6, 29),
                                 None, date(2026, 6, 29), date(2026, 7, 1), date(2026, 6, 28), date(2026, 7, 2)])),
    "caps": (_doc([{"id": "w", "type": "wait", "duration": "1h", "next": "done"}],
                  {"audience": "members", "re_entry": "after_exit", "cap_per_run": 3, "max_active": 4}),
             world([0, 1, 2, 8, 9])),
    "branches": (_doc([_send("s", "w"), {"id": "w", "type": "wait", "duration": "1h", "next": "b1"},
                       {"id": "b1", "type": "branch", "rules": [
                           {"when": {"engagement": "converted", "node": "s"}, "next": "x1"},
                           {"when": {"engagement": "clicked", "node": "s"}, "next": "x2"},
                           {"when": {"engagement": "opened", "node": "s"}, "next": "x3"},
                           {"when": {"score": "lead", "op": ">", "value": 0.6}, "next": "x4"},
                           {"when": {"attribute": "tier", "op": ">=", "value": 2}, "next": "x5"},
                           {"when": {"segment": "vips"}, "next": "x6"}], "default": "b2"},
                       {"id": "b2", "type": "branch", "rules": [{"when": {"engagement": "delivered", "node": "s"},
                                                                 "next": "x7"}], "default": "done"},
                       *[{"id": f"x{i}", "type": "actions", "actions": [{"lead_points": i}], "next": "done"}
                         for i in range(1, 8)]], goal={"event": "order_completed", "within": "15m"}),
                 world([0, 4], opt_out=[{9}, set()], vips=[set(), {6}],
                       events=[("c1", "order_completed", T0 + timedelta(minutes=20), "o"),
                               ("c2", "email_click", T0 + timedelta(minutes=20), "m"),
                               ("c3", "email_open", T0 + timedelta(minutes=20), "m"),
                               ("c3", "email_click", T0 - timedelta(minutes=20), "m")],
                       scores=[None, None, None, None, 0.9, 0.5, None, None, None, None],
                       tiers=[0, 0, 0, 0, 0, 3, 0, 0, 0, 0])),
    # Split with a control arm; re-entries (after_exit) land in the same arm (sticky).
    "split_sticky": (_doc([{"id": "sp", "type": "split", "arms": [{"name": "a", "weight": 2, "next": "s"},
                                                                  {"name": "b", "weight": 1, "next": "done"}],
                            "control": {"name": "c", "weight": 1, "next": "done"}}, _send("s", "done")],
                          {"audience": "members", "re_entry": "after_exit"}),
                     world([0, 1, 2])),
    "actions_and_webhook": (_doc([{"id": "a1", "type": "actions", "actions": [{"list_add": "vip"}, {"webhook": "webhook"},
                                                                             {"lead_points": 5}], "next": "w"},
                                  {"id": "w", "type": "wait", "duration": "1h", "next": "a2"},
                                  {"id": "a2", "type": "actions", "actions": [{"list_remove": "vip"}], "next": "done"}],
                                 {"audience": "members", "re_entry": "never"}),
                            world([0, 1, 8], members=[{1, 2, 3, 4}, {1, 2, 3, 4}, {1}],
                                  fail_webhook=[{2}, set(), set()], opt_out=[{3}, set(), set()])),
    "delivery_failure_retried": (_doc([_send("a", "b"), _send("b", "done")]),
                                 world([0, 1, 2], fail_email=[{1, 2}, {2}, set()])),
    "compaction": (_doc([_send("a", "done")], {"audience": "members", "re_entry": "never"}),
                   world([0, 4, 8, 12], compact=timedelta(minutes=30),
                         members=[{1, 2}, {1, 2, 3}, {1, 2, 3, 4}, EVERY])),
    "until_date": (_doc([{"id": "w", "type": "wait", "next": "s", "until_date": {"attribute": "signup",
                                                                                 "offset_days": 1, "at": "09:00"}},
                         _send("s", "done")]),
                   world([0, 8, 36, 40, 132, 140], states=MIXED,
                         signup=[date(2026, 6, 29), date(2026, 6, 28), None, date(2026, 6, 30)] + [date(2026, 6, 29)] * 6)),
    "unsubscribe_exit": (_doc([{"id": "w", "type": "wait", "duration": "1d", "next": "s"}, _send("s", "done")]),
                         world([0, 8, 96], events=[("c1", "email_unsubscribe", T0 + timedelta(hours=1), "m")])),
}


def _examples(f):
    for doc, w in EXAMPLES_.values():
        f = example(doc=doc, w=w)(f)
    return f


# ------------------------------------------------------------------------------------------------ the test


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(doc=journeys(), w=worlds())
@_examples
def test_engine_agrees_with_the_oracle(doc, w):
    check(doc, w)


def check(doc: dict, w: dict) -> Oracle:
    con, boxes = _engine(doc, w)
    o = oracle(doc, w)
    log = con.execute("""SELECT customer_id, entry_no, node_id, transition, detail, occurred_at, due_at, arm, step,
        entry_key, entered_at FROM journeys.transitions ORDER BY customer_id, entry_no, step""").fetchall()
    fin = con.execute("""SELECT customer_id, entry_no, entry_key, entered_at, exited_at, exit_reason, arm, sends
        FROM journeys.finished""").fetchall()
    in_log = {(r[0], r[1]) for r in log}
    kept = {(e.cid, e.no) for e in o.all_entries() if not o.compacted(e)}
    # Compaction: exactly the entries that exited at or before (last clock - compact_after) were folded.
    assert {(r[0], r[1]) for r in fin} == {(e.cid, e.no) for e in o.all_entries() if o.compacted(e)}
    assert in_log == kept
    # Entries (with their keys), exits (with their reasons) and arms, compacted or not.
    entries = {(c, n, key, at) for c, n, _, tr, _, _, _, _, _, key, at in log if tr in ("entered",)} | \
              {(c, n, key, at) for c, n, key, at, *_ in fin}
    assert entries == {(e.cid, e.no, e.key, e.entered_at) for e in o.all_entries()}
    exits = {(c, n, d, at) for c, n, _, tr, d, at, *_ in log if tr == "exited"} | {(c, n, r, at) for c, n, _, _, at, r, *_
                                                                                  in fin}
    assert exits == {(e.cid, e.no, e.exit_reason, e.exited_at) for e in o.all_entries() if e.exited_at}
    assert sorted((c, n, node, arm) for c, n, node, tr, _, _, _, arm, *_ in log if tr == "assigned") == \
        sorted(a for a in o.arms if a[:2] in kept)
    final_arm = {(e.cid, e.no): e.arm for e in o.all_entries()}
    assert all(final_arm[(c, n)] == arm for c, n, *_, arm, _ in fin)
    # Sends: what the destination received, at which run, once per (person, entry, node); and the log agrees.
    assert sorted(boxes.deliveries("email")) == sorted(o.sends)
    assert sorted((c, n, node, at) for c, n, node, tr, _, at, *_ in log if tr == "sent") == \
        sorted(s for s in o.sends if s[:2] in kept)
    assert all(sends == sum(1 for s in o.sends if s[:2] == (c, n)) for c, n, *_, sends in fin)
    skipped = sorted((c, n, node, d) for c, n, node, tr, d, *_ in log if tr == "skipped")
    assert skipped == sorted(s for s in o.skips if s[:2] in kept)
    deferred = sorted((c, n, node, at, due) for c, n, node, tr, _, at, due, *_ in log if tr == "deferred")
    assert deferred == sorted(d for d in o.deferrals if d[:2] in kept)
    # Actions, webhook calls (through the destination, governed) and the static lists they maintain.
    acts = con.execute("SELECT customer_id, entry_no, node_id, action, value, occurred_at FROM journeys.actions")
    assert sorted(acts.fetchall()) == sorted(o.actions)
    assert sorted(boxes.deliveries("webhook")) == sorted(o.webhooks)
    # docs/journeys.md: on a list when the latest list action is list_add (at the same clock, list_remove wins).
    latest: dict[tuple, tuple] = {}
    for c, _n, _node, kind, value, at in o.actions:
        if kind in ("list_add", "list_remove"):
            latest[(value, c)] = max(latest.get((value, c), (at, False)), (at, kind == "list_remove"))
    assert sorted(con.execute("SELECT list, customer_id FROM journeys.static_lists").fetchall()) == \
        sorted(k for k, (_, removed) in latest.items() if not removed)
    invariants(doc, w, log, o)
    return o


def invariants(doc, w, log, o) -> None:
    """Checked on the engine's log alone (they hold whatever the oracle says)."""
    steps = [(c, n, node, tr) for c, n, node, tr, *_ in log if tr in ("sent", "skipped", "assigned")]
    assert len(steps) == len(set(steps)), "a step happened twice in one entry"
    clocks, kinds = w["clocks"], {x["id"]: x["type"] for x in doc["nodes"]}
    for prev, nxt in zip(log, log[1:], strict=False):
        c, n, node, tr, _, at, due, *_ = prev
        if prev[:2] == nxt[:2] and tr in ("arrived", "deferred", "entered") and due > at and nxt[3] != "exited" \
                and kinds[node] != "wait_for":
            # A wait (or a deferral) ends at the first run at or after its due time, not later, not earlier
            # (unless that run's delivery failed: then the person stays, retried at the next run).
            k = next((k for k, T in enumerate(clocks) if T >= due), None)
            failed = k is not None and int(c[1:]) in w["fail_email"][k] | w["fail_webhook"][k]
            if not failed:
                assert k is not None and nxt[5] == clocks[k], (prev, nxt)
    sent = [(c, n, node, at) for c, n, node, tr, _, at, *_ in log if tr == "sent"]
    for c, _n, node, at in sent:
        qh = next((x.get("quiet_hours") for x in doc["nodes"] if x["id"] == node), None)
        if qh:
            assert slot(at, o.tz(c), qh["start"], qh["end"]) == at, "sent in quiet hours"
    for c in {s[0] for s in sent}:
        times = sorted(s[3] for s in sent if s[0] == c)
        for t in times:
            assert sum(1 for x in times if t - timedelta(days=7) < x <= t) <= CAP, "frequency cap exceeded"
    exited_at = {(c, n): at for c, n, _, tr, _, at, *_ in log if tr == "exited"}
    for c, n, _, at in sent:
        assert (c, n) not in exited_at or at <= exited_at[(c, n)], "sent after the entry ended"


def oracle(doc: dict, w: dict) -> Oracle:
    o = Oracle(doc, w)
    for k, T in enumerate(w["clocks"]):
        o.run(k, T)
    return o


def test_every_feature_example_does_what_it_is_for():
    """The explicit examples are not vacuous: each makes its feature happen. Checked on the oracle, which the
    engine matches on every one of them (the `@example`s of the test above)."""
    got = {name: oracle(doc, w) for name, (doc, w) in EXAMPLES_.items()}
    reasons = lambda o: {s[3] for s in o.skips}  # noqa: E731
    assert {d[2] for d in got["quiet_next_slot"].deferrals} == {"s"} and len(got["quiet_next_slot"].sends) == PEOPLE
    assert len({d[4] for d in got["quiet_next_slot"].deferrals}) >= 4  # one 08:00 per zone
    assert "quiet_hours" in reasons(got["quiet_skip"]) and got["quiet_skip"].sends
    assert {"frequency_cap", "opted_out"} <= reasons(got["frequency_cap_and_consent"])
    assert {e.exit_reason for e in got["goal_ends_a_wait"].all_entries()} == {"goal", "exit_node"}
    w = got["wait_for_event_and_segment"]
    assert {(s[0], s[3]) for s in w.sends} >= {("c1", T0 + timedelta(hours=1)), ("c2", T0 + timedelta(hours=25))}
    assert [e.key for e in got["once_per_event_key"].entries["c1"]] == ["k1", "k2"]
    c = got["cooldown_and_left_audience"]
    assert "left_audience" in {e.exit_reason for e in c.all_entries()} and max(len(x) for x in c.entries.values()) > 1
    assert {e.key for e in got["schedule_entry"].all_entries()} == {(T0 + timedelta(hours=h)).isoformat()
                                                                     for h in (1, 7)}
    assert len(got["date_entry"].all_entries()) >= 4
    assert {len(x) for x in got["caps"].entries.values()} != {1}
    b = got["branches"]
    assert {a[3:5] for a in b.actions} == {("lead_points", str(i)) for i in range(1, 8)}
    s = got["split_sticky"]
    assert {a[3] for a in s.arms} == {"a", "b", "control"} and len(s.arms) > PEOPLE
    assert all(len({a[3] for a in s.arms if a[0] == p}) == 1 for p in s.entries)  # sticky across re-entries
    a = got["actions_and_webhook"]
    assert {x[3] for x in a.actions} == {"list_add", "lead_points", "list_remove"} and a.webhooks
    # c2's call failed at the first run and went at the next; c3 (opted out) was skipped, not called.
    assert sorted((x[0], x[3]) for x in a.webhooks) == [("c1", T0), ("c2", T0 + timedelta(minutes=15)), ("c4", T0)]
    f = got["delivery_failure_retried"]
    assert sorted((x[0], x[2], x[3]) for x in f.sends if x[0] in ("c1", "c2"))[:2] == [
        ("c1", "a", T0 + timedelta(minutes=15)), ("c1", "b", T0 + timedelta(minutes=15))]
    assert any(got["compaction"].compacted(e) for e in got["compaction"].all_entries())
    assert len({x[3] for x in got["until_date"].sends}) >= 3
    assert "unsubscribed" in {e.exit_reason for e in got["unsubscribe_exit"].all_entries()}


def test_split_proportions_follow_the_weights():
    """2,000 people through a 70/20/10 split (control 10): each arm's count is within 4.5 standard deviations of
    its binomial expectation (a wrong weight or bound shifts an arm by far more)."""
    n = 2000
    con = warehouse(n)
    segment(con, "members", [f"c{i}" for i in range(n)])
    doc = _doc([{"id": "sp", "type": "split", "arms": [{"name": "a", "weight": 7, "next": "done"},
                                                      {"name": "b", "weight": 2, "next": "done"}],
                 "control": {"name": "c", "weight": 1, "next": "done"}}])
    advance(con, journey(**doc), T0, env(), lock_path=f"/tmp/beacon-journeys-prop-{os.getpid()}.lock")
    got = dict(con.execute("SELECT arm, count(*) FROM journeys.transitions WHERE transition = 'assigned' "
                           "GROUP BY 1").fetchall())
    assert set(got) == {"a", "b", "control"} and sum(got.values()) == n
    for arm, p in (("a", 0.7), ("b", 0.2), ("control", 0.1)):
        assert abs(got[arm] - n * p) <= 4.5 * (n * p * (1 - p)) ** 0.5, (arm, got)
