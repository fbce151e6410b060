"""The demo world answers what Beacon sent: opens, clicks and orders with planted true effects.

What Beacon sent on day d is what left the building that day: every export file and manifest written by a
file destination (the audience exports, and the demo's email outbox that journeys send through), read back by
`read_sends`. `respond_to_sends` finds the person behind each address (a message to an address nobody owns
reaches nobody) and lets the engagement model (`beacon.generate.engagement.respond`) draw what they do: the
sent/delivered webhooks, opens, clicks, and with probability Δ a *nudged order* within `Effect.days`, Δ from
the planted effect of the message's campaign and arm (`DEMO_BOOK`, leaning on engaged, low-intent people).
Only shop customers can place an order, so Δ is 0 for the others. Orders that would have happened anyway
come from the generator's own baseline, for control and treatment alike.

Those events are kept in the world's truth folder (`truth/<day of the sends>/beacon_responses.parquet`) and
written into the landing files of the day they fall in (`responses_between`, read by `generate`); events
after the last simulated day never land. Every message, with its Δ, is kept beside them
(`beacon_messages.parquet`): the truth a demo evaluation compares measured lift with. The pipeline never
reads the truth folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from beacon.generate.config import GenConfig
from beacon.generate.engagement import Effect, EffectBook, nudge_chances, respond
from beacon.generate.population import people

MESSAGES_FILE = "beacon_messages.parquet"
RESPONSES_FILE = "beacon_responses.parquet"
EFFECTS_FILE = "demo_effects.json"
SEND_COLUMNS = ("customer_id", "email", "campaign", "arm", "node", "sent_at", "destination")
RESPONSE_COLUMNS = ("person_idx", "kind", "ts", "campaign", "email")

# The planted true effects of the demo world: per campaign ('audience:<name>', 'journey:<name>') and arm, the
# extra chance of one order within `days` of a message, for an average person sent it. Sized for the demo's
# default world (20,000 people, three days; docs/measurement.md, "The demo world"): the win-back journey (about
# 2,000 entries, 25% control, 4 in 10 sendable) and the engaged browsers (the largest audience) get effects three
# days resolve; the lapsed buyers' 6 points sit on a control group of about 150, which three days may not
# resolve. The cart reminders (about 130 entries a day, 10% control, sent a day after entry) and the other
# audiences get small effects that three days cannot resolve; the report says so. Unnamed audiences: the default.
DEMO_BOOK = EffectBook(
    effects={
        "journey:win_back": {"email": Effect(conversion=0.12, heterogeneity=0.5, days=1.5)},
        "journey:cart_abandonment": {"reminders": Effect(conversion=0.02, heterogeneity=0.5, days=1.5)},
        "audience:engaged_browsers": {"treatment": Effect(conversion=0.08, heterogeneity=0.5, days=1.5)},
        "audience:win_back_lapsed": {"treatment": Effect(conversion=0.06, heterogeneity=1.0, days=1.5)},
        "audience:rfm_at_risk": {"treatment": Effect(conversion=0.02, heterogeneity=0.5, days=1.5)},
        "audience:high_value_churn_risk": {"treatment": Effect(conversion=0.02, heterogeneity=1.0, days=1.5)},
    },
    default=Effect(conversion=0.01, heterogeneity=0.5, days=1.5),
    horizon_days=0.0,
)


def _campaign(audience: str, rows: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Campaign, arm and node of each delivered row: journey sends are named journey__<journey>__<node>."""
    if audience.startswith("journey__"):
        journey, _, node = audience[len("journey__"):].rpartition("__")
        journey = rows["journey"] if "journey" in rows else pd.Series(journey, index=rows.index)
        # A journey without a split has no arm: everyone it sends to is treated.
        arm = rows["journey_arm"].replace("", None).fillna("treatment") if "journey_arm" in rows else "treatment"
        node = rows["journey_node"] if "journey_node" in rows else pd.Series(node, index=rows.index)
        return "journey:" + journey.astype(str), pd.Series(arm, index=rows.index), node.astype(str)
    return (pd.Series(f"audience:{audience}", index=rows.index), pd.Series("treatment", index=rows.index),
            pd.Series("", index=rows.index))


def read_sends(roots: Iterable[Path], day: date) -> pd.DataFrame:
    """Every message a file destination delivered with the warehouse clock on `day`, one row per campaign, node and
    person: an audience's *added* members (an update or removal is no message), every row of a journey send."""
    frames = []
    for root in roots:
        for man in sorted(Path(root).glob("**/*.manifest.json")):
            m = json.loads(man.read_text())
            if str(m.get("as_of", ""))[:10] != day.isoformat() or "audience" not in m:
                continue
            data = man.with_name(m["file"])
            rows = pd.read_csv(data, dtype=str, keep_default_na=False) if m.get("format", "csv") == "csv" \
                else pd.read_parquet(data).astype(str)
            if "email" not in rows or "customer_id" not in rows:
                continue  # a destination that carries no address (nothing the world can receive)
            journey = m["audience"].startswith("journey__")
            if "operation" in rows and not journey:
                rows = rows[rows.operation == "add"]
            elif "operation" in rows:
                rows = rows[rows.operation != "remove"]
            campaign, arm, node = _campaign(m["audience"], rows)
            frames.append(pd.DataFrame({"customer_id": rows.customer_id, "email": rows.email, "campaign": campaign,
                                        "arm": arm, "node": node, "sent_at": pd.Timestamp(m["as_of"], tz="UTC"),
                                        "destination": m.get("destination", "")}))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c == "sent_at" else object)
                             for c in SEND_COLUMNS})
    out = pd.concat(frames, ignore_index=True)
    out = out[out.email.str.strip() != ""]
    return out.drop_duplicates(["campaign", "node", "customer_id"]).sort_values(
        ["campaign", "node", "customer_id"], kind="stable").reset_index(drop=True)


def _addresses(P: pd.DataFrame) -> pd.DataFrame:
    """Who owns each address (personal and work); an address two people share reaches the first."""
    a = pd.concat([P[["person_idx", "email"]], P[["person_idx", "work_email"]].rename(columns={"work_email": "email"})])
    a = a.dropna()
    a["email"] = a.email.str.strip().str.lower()
    return a.sort_values("person_idx", kind="stable").drop_duplicates("email")


def respond_to_sends(out: Path, cfg: GenConfig, sends: pd.DataFrame, book: EffectBook = DEMO_BOOK) -> dict:
    """Draw what the people reached by `sends` (delivered on day `cfg.day`) do, and keep it in the truth folder."""
    truth = Path(out) / "truth" / cfg.day_date().isoformat()
    truth.mkdir(parents=True, exist_ok=True)
    (Path(out) / "truth" / EFFECTS_FILE).write_text(json.dumps(book.to_dict(), indent=2))
    P = people(cfg)
    msgs = sends.assign(_addr=sends.email.str.strip().str.lower()).merge(
        _addresses(P).rename(columns={"email": "_addr"}), on="_addr", how="left").drop(columns="_addr")
    msgs["reached"] = msgs.person_idx.notna()
    hit = msgs[msgs.reached].copy()
    hit["person_idx"] = hit.person_idx.astype(np.int64)
    who = P.set_index("person_idx").loc[np.unique(hit.person_idx)]
    pop = pd.DataFrame({"customer_id": who.index.astype(str), "order_rate": 0.0, "aov": who.aov.to_numpy(),
                        "p_open": who.p_open.to_numpy(), "p_click": who.p_click.to_numpy(),
                        "engagement": who.engagement.to_numpy(), "intent": who.intent.to_numpy()})
    exposures = pd.DataFrame({"customer_id": hit.person_idx.astype(str).to_numpy(), "campaign": hit.campaign.to_numpy(),
                              "arm": hit.arm.to_numpy(), "sent": True, "channel": "email",
                              "exposed_at": hit.sent_at.to_numpy()})
    shop = who.in_shop.reindex(hit.person_idx).to_numpy(bool)
    msgs["delta"] = 0.0
    msgs["in_shop"] = False
    msgs["order_rate"] = np.nan
    if len(hit):
        msgs.loc[hit.index, "delta"] = nudge_chances(exposures, pop, book) * shop  # no shop account, no order
        msgs.loc[hit.index, "in_shop"] = shop
        msgs.loc[hit.index, "order_rate"] = who.order_rate.reindex(hit.person_idx).to_numpy()
    msgs["effect_days"] = [book.effect(c, a).days for c, a in zip(msgs.campaign, msgs.arm, strict=True)]
    msgs["planted"] = [book.effect(c, a).conversion for c, a in zip(msgs.campaign, msgs.arm, strict=True)]
    msgs.to_parquet(truth / MESSAGES_FILE, index=False)
    events = _events(exposures, pop, hit, set(who.index[who.in_shop.to_numpy(bool)].astype(str)), cfg, book)
    events.to_parquet(truth / RESPONSES_FILE, index=False)
    counts = events.kind.value_counts().to_dict()
    return {"day": cfg.day_date().isoformat(), "messages": len(msgs), "reached": int(msgs.reached.sum()),
            "events": {k: int(counts.get(k, 0)) for k in ("delivered", "open", "click", "order")},
            "expected_nudged_orders": round(float(msgs.delta.sum()), 2)}


def _events(exposures: pd.DataFrame, pop: pd.DataFrame, hit: pd.DataFrame, shoppers: set[str], cfg: GenConfig,
            book: EffectBook) -> pd.DataFrame:
    """The engagement model's answer in the generator's terms: person, kind, epoch second, campaign, address."""
    if exposures.empty:
        return pd.DataFrame({c: pd.Series(dtype=np.int64 if c in ("person_idx", "ts") else object)
                             for c in RESPONSE_COLUMNS})
    # Keyed draws: each message's answers come from the seed and that message alone, so a change to one audience
    # never redraws another campaign's answers (docs/benchmarks.md, Demo through Airflow).
    ev = respond(exposures, pop, seed=cfg.seed, effects=book, keyed=True)
    ev = ev[(ev.event_type != "order") | ev.customer_id.isin(shoppers)]
    addr = dict(zip(hit.person_idx.astype(str), hit.email.str.strip().str.lower(), strict=False))
    sent_ts = ((hit.sent_at - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)
    webhooks = pd.DataFrame({  # the email service's own receipts, seconds after the send
        "person_idx": np.repeat(hit.person_idx.to_numpy(np.int64), 2),
        "kind": np.tile(np.array(["sent", "delivered"]), len(hit)),
        "ts": np.repeat(sent_ts, 2) + np.tile(np.array([1, 6]), len(hit)),
        "campaign": np.repeat(hit.campaign.to_numpy(), 2), "email": np.repeat(hit.email.str.strip().str.lower(), 2)})
    drawn = pd.DataFrame({"person_idx": ev.customer_id.astype(np.int64).to_numpy(), "kind": ev.event_type.to_numpy(),
                          "ts": ((ev.occurred_at - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64),
                          "campaign": ev.campaign.to_numpy(), "email": ev.customer_id.map(addr).to_numpy()})
    return pd.concat([webhooks, drawn], ignore_index=True).sort_values(["ts", "person_idx", "kind"], kind="stable") \
        .reset_index(drop=True)


def responses_between(out: Path, t0: int, t1: int) -> pd.DataFrame:
    """Every response event of the world with t0 <= ts < t1 (epoch seconds): what one landing day receives."""
    files = sorted(Path(out).glob(f"truth/*/{RESPONSES_FILE}"))
    if not files:
        return pd.DataFrame(columns=list(RESPONSE_COLUMNS))
    ev = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return ev[(ev.ts >= t0) & (ev.ts < t1)].reset_index(drop=True)


def read_messages(world_dir: Path) -> pd.DataFrame:
    """Every message the demo world answered, with its planted Δ (for evaluations only)."""
    files = sorted(Path(world_dir).glob(f"truth/*/{MESSAGES_FILE}"))
    if not files:
        return pd.DataFrame(columns=[*SEND_COLUMNS, "person_idx", "reached", "delta", "in_shop", "order_rate",
                                     "effect_days", "planted"])
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def read_book(world_dir: Path) -> EffectBook | None:
    """The planted effects the demo world used (None when it answered nothing)."""
    p = Path(world_dir) / "truth" / EFFECTS_FILE
    return EffectBook.from_dict(json.loads(p.read_text())) if p.exists() else None


def answer_day(out: Path, cfg: GenConfig, roots: Iterable[Path], book: EffectBook = DEMO_BOOK) -> tuple[pd.DataFrame, dict]:
    """Before day `cfg.day` is generated: the world answers the messages of the day before, and the answers (to
    those and to earlier messages) that fall within day `cfg.day` are returned for its landing files."""
    from beacon.generate.config import DAY
    from beacon.generate.helpers import _epoch

    prev = replace(cfg, day=cfg.day - 1)
    summary = respond_to_sends(out, prev, read_sends(roots, prev.day_date()), book)
    t0 = _epoch(cfg.day_date())
    return responses_between(out, t0, t0 + DAY), summary
