"""Behaviour over a time window: orders, web events, email events and consent."""

from __future__ import annotations

import numpy as np
import pandas as pd

from beacon.generate.config import DAY
from beacon.generate.helpers import _hexid, _mix, _sigmoid
from beacon.generate.records import _iso, _products
from beacon.generate.vocab import _CATEGORIES

# The true send-time effect (docs/personalization.md): an email is most likely opened when it arrives shortly
# before the person's next email check (their preferred local hour); the chance falls off with the wait,
# e^(-wait / SEND_DECAY_H), from SEND_PEAK x the base rate to SEND_FLOOR x. Averaged over a uniform send
# hour the multiplier is 1, so the world's overall open rate is what p_open says.
SEND_PEAK, SEND_DECAY_H = 1.4, 3.0
SEND_FLOOR = 1.0 - (SEND_PEAK - 1.0) * (SEND_DECAY_H / 24 * (1 - np.exp(-24 / SEND_DECAY_H))) / (
    1 - SEND_DECAY_H / 24 * (1 - np.exp(-24 / SEND_DECAY_H)))
# Product choice: from the person's first category, their second, or anything; within a category a few
# products sell far more than the rest (Zipf-like), so popularity alone is a fair baseline.
TASTE_SHARES = (0.6, 0.25)


def _active_seconds(P: pd.DataFrame, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
    """Seconds each person is active in [t0, t1): from signup until churn."""
    start = np.maximum(P.created_ts.to_numpy(), t0)
    end = np.minimum(P.churn_ts.to_numpy(), t1)
    return start, np.maximum(end - start, 0)


def _poisson_times(rng: np.random.Generator, rate_per_day: np.ndarray, start: np.ndarray, length: np.ndarray):
    counts = rng.poisson(rate_per_day * length / DAY)
    who = np.repeat(np.arange(len(counts)), counts)
    ts = start[who] + (rng.random(len(who)) * length[who]).astype(np.int64)
    return who, ts


def local_hour(ts: np.ndarray, tz: np.ndarray) -> np.ndarray:
    """The local time of day, in hours (0 <= h < 24), of epoch seconds `ts` in IANA zones `tz` (DST aware)."""
    ts, tz = np.asarray(ts, dtype=np.int64), np.asarray(tz)
    out = np.empty(len(ts), dtype=np.float64)
    for zone in np.unique(tz):
        m = tz == zone
        local = pd.DatetimeIndex(pd.to_datetime(ts[m], unit="s", utc=True)).tz_convert(str(zone))
        out[m] = local.hour + local.minute / 60 + local.second / 3600
    return out


def wait_hours(send_ts: np.ndarray, tz: np.ndarray, preferred_hour: np.ndarray) -> np.ndarray:
    """Hours from a send until the person's next email check at their preferred local hour (0 <= w < 24)."""
    return np.mod(np.asarray(preferred_hour, dtype=np.float64) - local_hour(send_ts, tz), 24.0)


def open_multiplier(send_ts: np.ndarray, tz: np.ndarray, preferred_hour: np.ndarray) -> np.ndarray:
    """The true factor on a person's open chance for an email sent at `send_ts` (see SEND_PEAK)."""
    w = wait_hours(send_ts, tz, preferred_hour)
    return SEND_FLOOR + (SEND_PEAK - SEND_FLOOR) * np.exp(-w / SEND_DECAY_H)


def open_delay(send_ts: np.ndarray, tz: np.ndarray, preferred_hour: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Seconds from send to open: the person opens at their next check, about their preferred hour (sd 40 min)."""
    jitter = rng.normal(0.0, 40 / 60, len(send_ts))
    w = np.mod(np.asarray(preferred_hour, dtype=np.float64) + jitter - local_hour(send_ts, tz), 24.0)
    return np.maximum((w * 3600).astype(np.int64), 120)


def _choose_products(P: pd.DataFrame, who: np.ndarray, cfg, rng: np.random.Generator) -> np.ndarray:
    """Product index (0..199) per order line, following each buyer's taste (TASTE_SHARES) and popularity."""
    cats = _products(cfg).category.to_numpy()
    cat_of = {c: np.flatnonzero(cats == c) for c in _CATEGORIES}
    # Within a category product k of its list sells with weight 1 / (k + 1); the rest of the world uniform.
    u = rng.random(len(who))
    pick_u = rng.random(len(who))
    t1, t2 = P.taste_1.to_numpy()[who], P.taste_2.to_numpy()[who]
    cat = np.where(u < TASTE_SHARES[0], t1, np.where(u < sum(TASTE_SHARES), t2, _CATEGORIES[rng.integers(0, len(_CATEGORIES), len(who))]))
    out = np.empty(len(who), dtype=np.int64)
    for c, members in cat_of.items():
        m = cat == c
        if not m.any() or not len(members):
            continue
        w = 1.0 / (np.arange(len(members)) + 1.0)
        out[m] = members[np.searchsorted(np.cumsum(w) / w.sum(), pick_u[m], side="right").clip(0, len(members) - 1)]
    return out


def _orders(P, cfg, rng, t0, t1, shop_ids):
    shop = P.in_shop.to_numpy()
    start, length = _active_seconds(P, t0, t1)
    rate = np.where(shop, P.order_rate.to_numpy(), 0.0)
    who, ts = _poisson_times(rng, rate, start, length)
    seq = np.arange(len(who), dtype=np.int64) + cfg.day * 10_000_000_000
    orders, items = order_rows(P, cfg, rng, who, ts, shop_ids, seq, np.random.default_rng([cfg.seed, 5, cfg.day]))
    return orders, items, who, ts


def order_rows(P, cfg, rng, who, ts, shop_ids, seq, taste_rng, refund_rate: float = 0.04):
    """Orders (one per `who`/`ts`, ids from `seq`) and their lines: products by taste, prices by the buyer's aov."""
    n = len(who)
    orders = pd.DataFrame({
        "order_id": _hexid("O", seq, cfg.seed + 31, 12).to_numpy(),
        "customer_id": shop_ids[who],
        "ordered_at": pd.to_datetime(ts, unit="s", utc=True),
        "status": np.where(rng.random(n) < refund_rate, "refunded", "completed"),
        "currency": "USD",
    })
    n_items = rng.integers(1, 4, n)
    oi = np.repeat(np.arange(n), n_items)
    prod = rng.integers(0, 200, len(oi))  # still drawn, so every later draw of `rng` is what it was
    prod = _choose_products(P, who[oi], cfg, taste_rng)
    prices = _products(cfg).price.astype(float).to_numpy()
    qty = np.where(rng.random(len(oi)) < 0.85, 1, 2)
    scale = (P.aov.to_numpy()[who][oi] / 45.0)
    unit = np.round(prices[prod] * np.clip(scale, 0.5, 3.0), 2)
    items = pd.DataFrame({
        "order_id": orders.order_id.to_numpy()[oi],
        "line_number": (np.arange(len(oi)) - np.repeat(np.cumsum(n_items) - n_items, n_items) + 1).astype(np.int32),
        # np.char.zfill has no answer for an empty array (a tiny day with no orders).
        "product_id": np.char.add("SKU-", np.char.zfill(prod.astype(str), 5)) if len(prod) else np.array([], str),
        "quantity": qty.astype(np.int32),
        "unit_price": unit,
    })
    totals = pd.Series(unit * qty).groupby(oi).sum().to_numpy()
    orders["total_amount"] = np.round(totals, 2)
    return orders, items


_WEB_EVENTS = np.array(["page", "Product Viewed", "Product Added", "Checkout Started", "Order Completed",
                        "Form Submitted", "Webinar Registered", "identify"])


def _web_events(P, cfg, rng, t0, t1, shop_ids, order_who, order_ts) -> tuple[pd.DataFrame, pd.DataFrame]:
    has_web = P.has_web.to_numpy()
    start, length = _active_seconds(P, t0, t1)
    # Browsing continues at a lower rate after churn.
    length_all = np.maximum(t1 - np.maximum(P.created_ts.to_numpy(), t0), 0)
    rate = np.where(has_web, P.web_rate.to_numpy(), 0.0)
    who_a, ts_a = _poisson_times(rng, rate, start, length)
    who_b, ts_b = _poisson_times(rng, rate * 0.15, np.maximum(P.created_ts.to_numpy(), t0), length_all - length)
    s_who = np.concatenate([who_a, who_b])
    s_ts = np.concatenate([ts_a, ts_b])
    n_s = len(s_who)
    # Each session: a few page views, product views and sometimes a cart add that is not bought.
    n_ev = rng.integers(1, 5, n_s)
    e_who = np.repeat(s_who, n_ev)
    e_ts = np.repeat(s_ts, n_ev) + (rng.random(len(e_who)) * 1200).astype(np.int64)
    u = rng.random(len(e_who))
    intent = P.intent.to_numpy()[e_who]
    kind = np.where(u < 0.55, 0, np.where(u < 0.88, 1, np.where(u < 0.88 + 0.06 * _sigmoid(intent), 2, 0)))
    # Orders from web visitors leave a funnel behind: product view, cart add, checkout, completion.
    ow = has_web[order_who]
    fo_who = np.repeat(order_who[ow], 4)
    fo_ts = np.repeat(order_ts[ow], 4) - np.tile(np.array([900, 600, 300, 0]), ow.sum())
    fo_kind = np.tile(np.array([1, 2, 3, 4]), ow.sum())
    # B2B contacts fill forms and register for webinars.
    b2b = np.where(has_web & P.in_crm.to_numpy(), 0.01 + 0.02 * _sigmoid(P.intent.to_numpy()), 0.0)
    fw, fts = _poisson_times(rng, b2b, start, length)
    fk = np.where(rng.random(len(fw)) < 0.5, 5, 6)
    # Known visitors identify once in the window (login or form), linking anonymous_id to a user.
    known = has_web & (P.in_shop.to_numpy() | P.in_crm.to_numpy()) & (length > 0)
    known &= rng.random(len(P)) < (0.85 if cfg.day == 1 else 0.02)
    iw = np.flatnonzero(known)
    its = start[iw] + (rng.random(len(iw)) * length[iw]).astype(np.int64)
    who = np.concatenate([e_who, fo_who, fw, iw])
    ts = np.minimum(np.concatenate([e_ts, fo_ts, fts, its]), t1 - 1)  # nothing after the day's end
    kind = np.concatenate([kind, fo_kind, fk, np.full(len(iw), 7)])
    n = len(who)
    seq = np.arange(n, dtype=np.int64) + cfg.day * 100_000_000_000
    anon = _mix(P.person_idx.to_numpy()[who], cfg.seed + 41) & np.uint64(0xFFFFFFFFFFFF)
    product = rng.integers(0, 200, n)
    email_for_form = np.where(P.is_b2b.to_numpy(), P.work_email.to_numpy(), P.email.to_numpy())
    ev = pd.DataFrame({
        "seq": _mix(seq, cfg.seed + 42) & np.uint64(0xFFFFFFFFFFFFFF),
        "anon": anon,
        "ts": ts,
        "kind": kind.astype(np.int8),
        "product": product.astype(np.int32),
        "user_id": np.where((kind == 7) & P.in_shop.to_numpy()[who], shop_ids[who], None),
        "email": np.where(np.isin(kind, [5, 6, 7]), email_for_form[who], None),
    })
    amap = pd.DataFrame({"anon": anon, "_person_id": P.person_id.to_numpy()[who]}).drop_duplicates("anon")
    return ev, amap


_EMAIL_EVENTS = np.array(["sent", "delivered", "open", "click", "bounce", "complaint", "unsubscribe"])


def _email_events(P, cfg, rng, t0, t1) -> pd.DataFrame:
    on_list = (P.in_crm | P.in_shop).to_numpy()
    days = max(1, (t1 - t0) // DAY)
    # A campaign every ~2 weeks to ~15% of the list (plus the daily newsletter slice on later days).
    n_campaigns = max(1, days // 14)
    start, length = _active_seconds(P, t0, t1)
    sends_rate = np.where(on_list, n_campaigns * 0.15 / days, 0.0)
    who, ts = _poisson_times(rng, sends_rate, np.maximum(P.created_ts.to_numpy(), t0),
                             np.maximum(t1 - np.maximum(P.created_ts.to_numpy(), t0), 0))
    n = len(who)
    campaign = ((ts - t0) // (14 * DAY)).astype(np.int64) + (cfg.day - 1) * 100
    active = ts < P.churn_ts.to_numpy()[who]
    p_open = P.p_open.to_numpy()[who] * np.where(active, 1.0, 0.35)
    tz, pref = P.tz.to_numpy()[who], P.preferred_hour.to_numpy()[who]
    bounced = rng.random(n) < 0.02
    hard = rng.random(n) < 0.5
    opened = ~bounced & (rng.random(n) < np.minimum(p_open * open_multiplier(ts, tz, pref), 0.99))
    clicked = opened & (rng.random(n) < P.p_click.to_numpy()[who] / np.maximum(p_open, 1e-3) * 0.5)
    complaint = opened & (rng.random(n) < 0.003)
    unsub = opened & (rng.random(n) < 0.01 * np.where(active, 1.0, 3.0))
    parts = [
        (np.ones(n, bool), 0, 0), (~bounced, 1, 5), (bounced, 4, 5), (opened, 2, 3600), (clicked, 3, 4000),
        (complaint, 5, 5000), (unsub, 6, 5200),
    ]
    # Opens (and the clicks, complaints, unsubscribes that follow them) happen at the person's next email check.
    habit = np.random.default_rng([cfg.seed, 6, cfg.day])
    opened_at = ts + open_delay(ts, tz, pref, habit)
    who_l, ts_l, kind_l, msg_l = [], [], [], []
    for mask, k, delay in parts:
        w = np.flatnonzero(mask)
        who_l.append(who[w])
        r = rng.random(len(w))
        if k in (2, 3, 5, 6):  # the open at the check, then a click, a complaint or an unsubscribe minutes later
            after = {2: (0, 60), 3: (120, 600), 5: (900, 600), 6: (1000, 600)}[k]
            ts_l.append(opened_at[w] + after[0] + (r * after[1]).astype(np.int64))
        else:
            ts_l.append(ts[w] + (r * delay * 3).astype(np.int64) + delay)
        kind_l.append(np.full(len(w), k, np.int8))
        msg_l.append(w)
    msg = np.concatenate(msg_l)
    email_addr = np.where(P.is_b2b.to_numpy(), P.work_email.to_numpy(), P.email.to_numpy())
    w_all = np.concatenate(who_l)
    ev = pd.DataFrame({
        "msg": _mix(msg.astype(np.int64) + cfg.day * 10_000_000_000, cfg.seed + 51) & np.uint64(0xFFFFFFFFFFFF),
        "seq": _mix(np.arange(len(msg), dtype=np.int64) + cfg.day * 100_000_000_000, cfg.seed + 52)
        & np.uint64(0xFFFFFFFFFFFFFF),
        "email": email_addr[w_all],
        "ts": np.minimum(np.concatenate(ts_l), t1 - 1),
        "kind": np.concatenate(kind_l),
        "campaign": campaign[msg],
        "hard": hard[msg],
    })
    return ev


def _consent(P, cfg, rng, day, email_ev) -> pd.DataFrame:
    """Consent records: opt-in at signup per channel, later opt-outs, and unsubscribes from the ESP."""
    new = P[(P.in_crm | P.in_shop) & (P.join_day == day)]
    n = len(new)
    email_addr = np.where(new.is_b2b, new.work_email, new.email)
    frames = []
    for channel, p_in, key in (("email", 0.85, email_addr), ("sms", 0.3, new.phone.to_numpy()), ("ads", 0.6, email_addr)):
        has = rng.random(n) < (p_in if channel != "sms" else p_in * new.has_phone.to_numpy())
        frames.append(pd.DataFrame({
            "email": np.where(channel == "sms", "", key)[has] if channel != "sms" else np.full(has.sum(), ""),
            "phone": new.phone.to_numpy()[has] if channel == "sms" else np.full(has.sum(), ""),
            "channel": channel, "status": "opt_in",
            "ts": new.created_ts.to_numpy()[has] + 60,
            "source": np.where(new.in_shop.to_numpy()[has], "checkout", "crm_form"),
        }))
    unsub = email_ev[email_ev.kind == 6]
    frames.append(pd.DataFrame({"email": unsub.email.to_numpy(), "phone": "", "channel": "email", "status": "opt_out",
                                "ts": unsub.ts.to_numpy() + 30, "source": "esp_unsubscribe"}))
    df = pd.concat(frames, ignore_index=True)
    df.insert(0, "consent_id", _hexid("K", np.arange(len(df), dtype=np.int64) + day * 10_000_000_000, cfg.seed + 61, 12).to_numpy())
    df["recorded_at"] = _iso(df.pop("ts").to_numpy())
    return df


