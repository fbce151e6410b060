"""People: attributes drawn per fixed-size block from (seed, block), so a person is the same for every N."""

from __future__ import annotations

import numpy as np
import pandas as pd

from beacon.generate.config import BLOCK, DAY, GenConfig
from beacon.generate.helpers import _epoch, _mix, _pick, _sigmoid
from beacon.generate.vocab import (
    _AREA,
    _CATEGORIES,
    _CITY,
    _CO_SUFFIX,
    _DOMAIN_W,
    _DOMAINS,
    _FIRST_F,
    _FIRST_F_W,
    _FIRST_M,
    _FIRST_M_W,
    _HOUR_W,
    _LAST,
    _LAST_W,
    _PLACES,
    _STATE,
    _STREET_WORDS,
    _SUFFIX,
    _TZ,
    _ZIP3,
)


def _people_block(seed: int, block: int) -> pd.DataFrame:
    """Latent truth for people [block*BLOCK, (block+1)*BLOCK): identical whatever N or day asks for them."""
    rng = np.random.default_rng([seed, 1, block])
    n = BLOCK
    idx = np.arange(block * BLOCK, (block + 1) * BLOCK, dtype=np.int64)
    female = rng.random(n) < 0.51
    first = np.where(female, _FIRST_F[_pick(rng, _FIRST_F, n, _FIRST_F_W)], _FIRST_M[_pick(rng, _FIRST_M, n, _FIRST_M_W)])
    last = _LAST[_pick(rng, _LAST, n, _LAST_W)]
    place = rng.integers(0, len(_PLACES), n)
    age = rng.integers(18, 80, n)
    engagement = rng.normal(0, 1, n)
    intent = 0.5 * engagement + rng.normal(0, 0.87, n)
    value = rng.normal(0, 1, n)
    b2b = rng.random(n) < 0.3
    df = pd.DataFrame({
        "person_idx": idx,
        "gender": np.where(female, "F", "M"),
        "first_name": first,
        "last_name": last,
        "birth_date": pd.to_datetime("2026-01-01") - pd.to_timedelta(age * 365 + rng.integers(0, 365, n), unit="D"),
        "email_style": rng.integers(0, 4, n),
        "email_digits": np.where(rng.random(n) < 0.6, rng.integers(1, 9999, n), -1),
        "domain": _DOMAINS[_pick(rng, _DOMAINS, n, _DOMAIN_W)],
        "phone": np.char.add(np.char.add(_AREA[place], rng.integers(200, 999, n).astype(str)),
                             np.char.zfill(rng.integers(0, 9999, n).astype(str), 4)),
        "house_no": rng.integers(1, 9999, n),
        "street": _STREET_WORDS[rng.integers(0, len(_STREET_WORDS), n)],
        "suffix_i": rng.integers(0, len(_SUFFIX), n),
        "place_i": place,
        "zip": np.char.add(_ZIP3[place], np.char.zfill(rng.integers(1, 99, n).astype(str), 2)),
        "is_b2b": b2b,
        "company_draw": rng.random(n),
        "in_crm": b2b | (rng.random(n) < 0.3),
        "in_shop": rng.random(n) < _sigmoid(0.2 + 0.8 * intent),
        "has_web": rng.random(n) < 0.75,
        "has_phone": rng.random(n) < 0.7,
        "no_shared_id": rng.random(n) < 0.06,  # shop record shares no email/phone with the CRM record
        "moved": rng.random(n) < 0.08,  # shop address differs from the CRM one
        "household": rng.random(n) < 0.03,  # shop uses a household member's email
        "engagement": engagement,
        "intent": intent,
        "value": value,
        "p_open": _sigmoid(-0.9 + 1.0 * engagement),
        "p_click": _sigmoid(-2.0 + 0.8 * engagement + 0.4 * intent),
        # Orders per day while active: most people buy a few times a year, high-intent people more.
        "order_rate": np.exp(-5.2 + 0.9 * intent + 0.3 * value),
        "web_rate": np.exp(-3.6 + 0.6 * engagement + 0.4 * intent),
        "aov": np.exp(3.9 + 0.45 * value),
        "churn_after_days": rng.exponential(scale=np.exp(6.3 + 0.5 * engagement), size=n),
        "signup_frac": rng.random(n),
    })
    return df


def people(cfg: GenConfig, day: int | None = None) -> pd.DataFrame:
    """Every person that exists on `day` (default: cfg.day), with their created timestamp."""
    total = cfg.population(day)
    blocks = [_people_block(cfg.seed, b) for b in range((total + BLOCK - 1) // BLOCK)]
    df = pd.concat(blocks, ignore_index=True).iloc[:total].copy()
    start = _epoch(cfg.as_of) - (cfg.history_days - 1) * DAY
    created = start + (df["signup_frac"] * (cfg.history_days - 1) * DAY).astype(np.int64)
    # People beyond the day-1 population join on the day their index first appears.
    new_per_day = max(1, int(round(cfg.people * cfg.new_people_rate)))
    join_day = np.where(df.person_idx < cfg.people, 1, 2 + (df.person_idx - cfg.people) // new_per_day)
    later = join_day > 1
    created = np.where(later, _epoch(cfg.as_of) + (join_day - 1) * DAY + (df["signup_frac"] * DAY).astype(np.int64), created)
    df["join_day"] = join_day
    df["created_ts"] = created.astype(np.int64)
    df["churn_ts"] = (df.created_ts + (df.churn_after_days * DAY).astype(np.int64)).astype(np.int64)
    df["person_id"] = "P" + df.person_idx.astype(str).str.zfill(7)
    n_companies = max(1, cfg.people // 10)
    # Zipf-like company sizes: a few large accounts, many small ones.
    df["company_idx"] = np.where(df.is_b2b, (n_companies * df.company_draw ** 2.2).astype(np.int64), -1)
    df["email"] = _email(df)
    df["work_email"] = (df.first_name.str.lower() + "." + df.last_name.str.lower() + "@" + _company_domain(df.company_idx))
    df["address"] = df.house_no.astype(str) + " " + df.street + " " + _SUFFIX[df.suffix_i]
    df["city"] = _CITY[df.place_i]
    df["state"] = _STATE[df.place_i]
    df = df.assign(**_habits(df.person_idx.to_numpy(), df.place_i.to_numpy(), cfg.seed))
    return df


def _habits(idx: np.ndarray, place_i: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Time zone, the local hour a person checks email, and the two product categories they buy from.
    Keyed hashes of the person, not draws from the block's generator, so every other attribute stays as it was."""
    u = (_mix(idx, seed + 81) % np.uint64(1_000_000)).astype(np.float64) / 1e6
    hour = np.searchsorted(np.cumsum(_HOUR_W) / _HOUR_W.sum(), u, side="right").clip(0, 23)
    h = _mix(idx, seed + 82)
    first = (h % np.uint64(len(_CATEGORIES))).astype(np.int64)
    second = (first + 1 + ((h >> np.uint64(16)) % np.uint64(len(_CATEGORIES) - 1)).astype(np.int64)) % len(_CATEGORIES)
    return {"tz": _TZ[place_i], "preferred_hour": hour.astype(np.int64), "taste_1": _CATEGORIES[first],
            "taste_2": _CATEGORIES[second]}


def _email(df: pd.DataFrame) -> pd.Series:
    f, last = df.first_name.str.lower(), df.last_name.str.lower()
    style = df.email_style.to_numpy()
    local = np.select(
        [style == 0, style == 1, style == 2],
        [f + "." + last, f + last, f.str[0] + last],
        default=f + "_" + last,
    )
    local = pd.Series(local, index=df.index)
    digits = df.email_digits.astype(str).where(df.email_digits >= 0, "")
    return local + digits + "@" + df.domain


def _company_name(idx: pd.Series) -> pd.Series:
    rng = np.random.default_rng(7)
    words = _LAST[rng.integers(0, len(_LAST), 200_000)]
    suff = _CO_SUFFIX[rng.integers(0, len(_CO_SUFFIX), 200_000)]
    i = idx.to_numpy() % 200_000
    return pd.Series(np.char.add(np.char.add(words[i], " "), suff[i]), index=idx.index)


def _company_domain(idx: pd.Series) -> pd.Series:
    name = _company_name(idx.clip(lower=0))
    return name.str.lower().str.replace(" ", "", regex=False) + (idx.clip(lower=0) // 200_000).astype(str).replace("0", "") + ".com"


