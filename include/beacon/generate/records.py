"""Source records with realistic variation: CRM contacts and companies, shop customers, products."""

from __future__ import annotations

import numpy as np
import pandas as pd

from beacon.generate.config import DAY, GenConfig
from beacon.generate.helpers import _epoch, _hexid, _mix, _typo
from beacon.generate.population import _company_domain, _company_name
from beacon.generate.vocab import (
    _CATEGORIES,
    _DOMAINS,
    _INDUSTRIES,
    _NICK,
    _PRODUCT_LINES,
    _STREET_WORDS,
    _SUFFIX,
    _SUFFIX_ABBR,
    _TITLES,
)


def _vary_email(email: pd.Series, rng: np.random.Generator) -> pd.Series:
    """Case, whitespace and plus-addressing as people and forms produce them."""
    n = len(email)
    u = rng.random(n)
    e = email.copy()
    up = u < 0.15
    e[up] = e[up].str.title()
    plus = (u >= 0.15) & (u < 0.23)
    tags = np.array(["promo", "news", "shop", "spam", "2024"])[rng.integers(0, 5, n)]
    parts = e[plus].str.split("@", n=1, expand=True)
    if len(parts):
        e[plus] = parts[0] + "+" + pd.Series(tags, index=e.index)[plus] + "@" + parts[1]
    ws = (u >= 0.23) & (u < 0.27)
    e[ws] = " " + e[ws] + " "
    return e


def _format_phone(digits: pd.Series, rng: np.random.Generator) -> pd.Series:
    """The same US number in the formats CRMs and checkouts hold."""
    a, b, c = digits.str[:3], digits.str[3:6], digits.str[6:]
    style = rng.integers(0, 5, len(digits))
    out = np.select(
        [style == 0, style == 1, style == 2, style == 3],
        ["(" + a + ") " + b + "-" + c, a + "-" + b + "-" + c, "+1 " + a + " " + b + " " + c, a + b + c],
        default=a + "." + b + "." + c,
    )
    return pd.Series(out, index=digits.index)


def _vary_name(first: pd.Series, rng: np.random.Generator, nick_rate: float, typo_rate: float) -> pd.Series:
    out = first.copy()
    u = rng.random(len(first))
    nick = (u < nick_rate) & first.isin(_NICK.keys()).to_numpy()
    out[nick] = first[nick].map(_NICK)
    ty = (u >= nick_rate) & (u < nick_rate + typo_rate)
    out[ty] = _typo(first[ty], rng)
    return out


def _abbreviate(address: pd.Series, suffix_i: pd.Series, rng: np.random.Generator, rate: float) -> pd.Series:
    ab = rng.random(len(address)) < rate
    full = pd.Series(_SUFFIX[suffix_i], index=address.index)
    short = pd.Series(_SUFFIX_ABBR[suffix_i], index=address.index)
    out = address.copy()
    out[ab] = [a[: -len(f)] + s for a, f, s in zip(address[ab], full[ab], short[ab], strict=True)]
    return out


def _iso(ts: np.ndarray | pd.Series) -> pd.Series:
    return pd.Series(pd.to_datetime(np.asarray(ts, dtype=np.int64), unit="s")).dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _crm_contacts(P: pd.DataFrame, cfg: GenConfig, rng: np.random.Generator, day: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """CRM contacts: B2B people and leads; some entered twice; on later days, changed records too."""
    crm = P[P.in_crm & (P.join_day == day)]
    dup = crm[rng.random(len(crm)) < cfg.dup_rate]
    if day > 1:
        existing = P[P.in_crm & (P.join_day < day)]
        changed = existing[rng.random(len(existing)) < cfg.change_rate]
    else:
        changed = P.iloc[:0]
    parts = [(crm, 0), (dup, 1), (changed, 0)]
    frames = []
    for part, variant in parts:
        n = len(part)
        ix = part.index
        f = _vary_name(part.first_name, rng, 0.15 + 0.25 * variant, 0.04 + 0.1 * variant)
        email = pd.Series(np.where(part.is_b2b, part.work_email, part.email), index=ix)
        email = _vary_email(email, rng)
        updated = np.full(n, _epoch(cfg.day_date(day)) + 9 * 3600, dtype=np.int64) + rng.integers(0, 8 * 3600, n)
        day_end = _epoch(cfg.day_date(day)) + DAY - 1
        created = np.minimum(part.created_ts.to_numpy() + variant * rng.integers(DAY, 60 * DAY, n), day_end)
        updated = np.where(day == 1, np.maximum(created, updated - rng.integers(0, 200 * DAY, n)), updated)
        stage_score = part.intent.to_numpy() + rng.normal(0, 0.5, n)
        stage = np.select([part.in_shop.to_numpy(), stage_score > 1.2, stage_score > 0.6, stage_score > -0.3],
                          ["customer", "sql", "mql", "lead"], default="subscriber")
        frames.append(pd.DataFrame({
            "contact_id": _hexid("C", part.person_idx.to_numpy() * 4 + variant, cfg.seed + 11, 10).to_numpy(),
            "company_id": np.where(part.is_b2b, _hexid("A", part.company_idx.clip(lower=0).to_numpy(), cfg.seed + 12, 8), ""),
            "first_name": f.to_numpy(),
            "last_name": part.last_name.to_numpy(),
            "email": email.to_numpy(),
            "phone": np.where(part.has_phone, _format_phone(part.phone, rng), ""),
            "job_title": np.where(part.is_b2b, _TITLES[rng.integers(0, len(_TITLES), n)], ""),
            "lifecycle_stage": stage,
            "lead_source": np.array(["webinar", "form", "import", "event", "referral"])[rng.integers(0, 5, n)],
            "street": _abbreviate(part.address, part.suffix_i, rng, 0.3).to_numpy(),
            "city": part.city.to_numpy(),
            "state": part.state.to_numpy(),
            "postal_code": part.zip.to_numpy(),
            "created_at": _iso(created).to_numpy(),
            "updated_at": _iso(updated).to_numpy(),
            "_person_id": part.person_id.to_numpy(),
        }))
    df = pd.concat(frames, ignore_index=True)
    return df.drop(columns="_person_id"), df[["contact_id", "_person_id"]].rename(columns={"contact_id": "record_id"})


def _crm_companies(P: pd.DataFrame, cfg: GenConfig, rng: np.random.Generator, day: int) -> pd.DataFrame:
    b2b = P[P.is_b2b & (P.join_day == day)]
    idx = np.unique(b2b.company_idx.to_numpy())
    n = len(idx)
    s = pd.Series(idx)
    return pd.DataFrame({
        "company_id": _hexid("A", idx, cfg.seed + 12, 8).to_numpy(),
        "name": _company_name(s).to_numpy(),
        "domain": _company_domain(s).to_numpy(),
        "industry": _INDUSTRIES[_mix(idx, 5) % np.uint64(len(_INDUSTRIES))],
        "employees": (10 * np.exp(_mix(idx, 6) % np.uint64(700) / 100.0)).astype(np.int64).astype(str),
        "country": "US",
        "created_at": _iso(np.full(n, _epoch(cfg.day_date(day))) - (_mix(idx, 9) % np.uint64(900 * DAY)).astype(np.int64)).to_numpy(),
    })


def _shop_customers(P: pd.DataFrame, cfg: GenConfig, rng: np.random.Generator, day: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    shop = P[P.in_shop & (P.join_day == day)]
    n = len(shop)
    ix = shop.index
    email = _vary_email(shop.email, rng)
    # No shared identifier: a different personal address and no phone; only name + address can link.
    alt = shop.first_name.str.lower().str[0] + shop.last_name.str.lower() + (shop.person_idx % 97).astype(str) + "@" + \
        pd.Series(_DOMAINS[(shop.person_idx.to_numpy() + 3) % len(_DOMAINS)], index=ix)
    email = email.where(~shop.no_shared_id, alt)
    # Household emails: someone else in the data set shares this mailbox.
    partner = P.email.to_numpy()[(shop.person_idx.to_numpy() * 7 + 1) % len(P)]
    email = email.where(~shop.household, pd.Series(partner, index=ix))
    moved_addr = (shop.house_no * 3 % 9999 + 1).astype(str) + " " + pd.Series(
        _STREET_WORDS[(shop.person_idx.to_numpy() * 13) % len(_STREET_WORDS)], index=ix) + " " + \
        pd.Series(_SUFFIX[(shop.suffix_i.to_numpy() + 1) % len(_SUFFIX)], index=ix)
    address = shop.address.where(~shop.moved, moved_addr)
    address = _abbreviate(address, shop.suffix_i.where(~shop.moved, (shop.suffix_i + 1) % len(_SUFFIX)), rng, 0.5)
    df = pd.DataFrame({
        "customer_id": _hexid("S", shop.person_idx.to_numpy(), cfg.seed + 21, 10).to_numpy(),
        "email": email.to_numpy(),
        "first_name": _vary_name(shop.first_name, rng, 0.2, 0.03).to_numpy(),
        "last_name": shop.last_name.to_numpy(),
        "phone": np.where(shop.has_phone & ~shop.no_shared_id & (rng.random(n) < 0.8), _format_phone(shop.phone, rng), ""),
        "address_line1": address.to_numpy(),
        "city": shop.city.to_numpy(),
        "state": shop.state.to_numpy(),
        "zip": shop.zip.to_numpy(),
        "birth_date": np.where(rng.random(n) < 0.5, shop.birth_date.dt.strftime("%Y-%m-%d"), ""),
        "gender": np.where(rng.random(n) < 0.6, shop.gender, ""),
        "created_at": _iso(np.minimum(shop.created_ts.to_numpy() + rng.integers(0, 5 * DAY, n),
                                      _epoch(cfg.day_date(day)) + DAY - 1)).to_numpy(),
    })
    m = pd.DataFrame({"record_id": df.customer_id, "_person_id": shop.person_id.to_numpy()})
    return df, m


def _products(cfg: GenConfig) -> pd.DataFrame:
    rng = np.random.default_rng([cfg.seed, 3])
    n = 200
    cat = rng.integers(0, len(_CATEGORIES), n)
    return pd.DataFrame({
        "product_id": [f"SKU-{i:05d}" for i in range(n)],
        "name": [f"{_CATEGORIES[c].title()} item {i}" for i, c in enumerate(cat)],
        "category": _CATEGORIES[cat],
        "product_line": _PRODUCT_LINES[cat],
        "price": np.round(np.exp(rng.normal(3.4, 0.7, n)), 2).astype(str),
    })


