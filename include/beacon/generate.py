"""Seeded generator of a realistic marketing world, with ground truth kept apart from the landing files.

Everything is vectorised (numpy/pandas) and DuckDB writes the files, so 1,000,000 people with
about 20M events fit in a few minutes on two cores. Person attributes are drawn per fixed-size
block of people from ``(seed, block)``, so a person is the same on every day and for every N;
events are drawn from ``(seed, day, block)``, so day 2 adds new facts without rewriting day 1.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from faker.providers.address.en_US import Provider as _Address
from faker.providers.person.en_US import Provider as _Person
from nicknames import NickNamer

BLOCK = 50_000
DAY = 86_400
HISTORY_DAYS = 365

# Source tables written to the landing folder, with their file format.
FILES = {
    "crm_contacts": "csv",
    "crm_companies": "csv",
    "shop_customers": "csv",
    "shop_products": "csv",
    "shop_orders": "parquet",
    "shop_order_items": "parquet",
    "web_events": "jsonl",
    "email_events": "jsonl",
    "consent": "csv",
}

_FIRST_F = np.array(list(_Person.first_names_female.keys()))
_FIRST_F_W = np.array(list(_Person.first_names_female.values()), dtype=float)
_FIRST_M = np.array(list(_Person.first_names_male.keys()))
_FIRST_M_W = np.array(list(_Person.first_names_male.values()), dtype=float)
_LAST = np.array(list(_Person.last_names.keys()))
_LAST_W = np.array(list(_Person.last_names.values()), dtype=float)
_STREET_WORDS = np.array(sorted(set(_Person.last_names.keys()))[:400] + [
    "Oak", "Maple", "Pine", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "Main", "Church", "Spring",
])
# Full street suffix -> the abbreviations people and systems actually type (USPS Pub. 28 style).
_SUFFIX = np.array(["Street", "Avenue", "Road", "Boulevard", "Drive", "Lane", "Court", "Place", "Terrace", "Parkway"])
_SUFFIX_ABBR = np.array(["St", "Ave", "Rd", "Blvd", "Dr", "Ln", "Ct", "Pl", "Ter", "Pkwy"])
_STATES = np.array(list(_Address.states_abbr)[:50])
# (city, state, first three zip digits, phone area code): real combinations, so phone numbers validate.
_PLACES = [
    ("New York", "NY", "100", "212"), ("Brooklyn", "NY", "112", "718"), ("Los Angeles", "CA", "900", "213"),
    ("San Francisco", "CA", "941", "415"), ("San Diego", "CA", "921", "619"), ("Chicago", "IL", "606", "312"),
    ("Houston", "TX", "770", "713"), ("Dallas", "TX", "752", "214"), ("Austin", "TX", "787", "512"),
    ("Phoenix", "AZ", "850", "602"), ("Philadelphia", "PA", "191", "215"), ("Seattle", "WA", "981", "206"),
    ("Denver", "CO", "802", "303"), ("Boston", "MA", "021", "617"), ("Atlanta", "GA", "303", "404"),
    ("Miami", "FL", "331", "305"), ("Orlando", "FL", "328", "407"), ("Portland", "OR", "972", "503"),
    ("Minneapolis", "MN", "554", "612"), ("Detroit", "MI", "482", "313"), ("Columbus", "OH", "432", "614"),
    ("Charlotte", "NC", "282", "704"), ("Raleigh", "NC", "276", "919"), ("Nashville", "TN", "372", "615"),
    ("Las Vegas", "NV", "891", "702"), ("Salt Lake City", "UT", "841", "801"), ("Kansas City", "MO", "641", "816"),
    ("St. Louis", "MO", "631", "314"), ("Pittsburgh", "PA", "152", "412"), ("Baltimore", "MD", "212", "410"),
]
_CITY = np.array([p[0] for p in _PLACES])
_STATE = np.array([p[1] for p in _PLACES])
_ZIP3 = np.array([p[2] for p in _PLACES])
_AREA = np.array([p[3] for p in _PLACES])
_DOMAINS = np.array(["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com", "proton.me"])
_DOMAIN_W = np.array([0.42, 0.14, 0.12, 0.1, 0.1, 0.07, 0.05])
_INDUSTRIES = np.array(["Software", "Retail", "Healthcare", "Finance", "Manufacturing", "Education", "Media", "Logistics"])
_CO_SUFFIX = np.array(["Inc", "LLC", "Group", "Partners", "Labs", "Systems", "Co", "Holdings"])
_TITLES = np.array(["Marketing Manager", "VP Marketing", "CTO", "Engineer", "Founder", "Operations Lead",
                    "Sales Director", "Analyst", "Head of Growth", "Procurement Manager"])
_CATEGORIES = np.array(["apparel", "footwear", "accessories", "home", "beauty", "electronics"])
_PRODUCT_LINES = np.array(["consumer", "consumer", "consumer", "consumer", "pro", "enterprise"])


def _nickname_table() -> dict[str, str]:
    """Map lowercase first names to one common nickname (from the curated `nicknames` data set)."""
    nn = NickNamer()
    out: dict[str, str] = {}
    for name in set(_FIRST_F) | set(_FIRST_M):
        nicks = sorted(n for n in nn.nicknames_of(name.lower()) if len(n) >= 3)
        if nicks:
            out[name] = nicks[0].capitalize()
    return out


_NICK = _nickname_table()


@dataclass(frozen=True)
class GenConfig:
    """Knobs of the generated world."""

    people: int = 20_000
    seed: int = 42
    day: int = 1
    as_of: date = date(2026, 6, 30)  # last calendar day covered by day 1
    bad_rate: float = 0.002  # share of rows per file that are bad (malformed, wrong type, missing key, ...)
    dup_rate: float = 0.05  # share of CRM people entered twice as separate contacts
    invalid_email_rate: float = 0.01  # share of CRM/shop emails that are not valid addresses
    new_people_rate: float = 0.01  # new people per day after day 1, as a share of `people`
    change_rate: float = 0.01  # CRM contacts changed per day after day 1

    def day_date(self, day: int | None = None) -> date:
        d = self.day if day is None else day
        return self.as_of + timedelta(days=d - 1)

    def population(self, day: int | None = None) -> int:
        d = self.day if day is None else day
        return self.people + int(round(self.people * self.new_people_rate)) * (d - 1)


@dataclass
class GenSummary:
    """What one generator run wrote."""

    day: int
    date: str
    landing: str
    truth: str
    people_total: int
    people_new: int
    rows: dict[str, int] = field(default_factory=dict)
    bad_rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# helpers


def _mix(x: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64: a keyed, collision-free scramble, so record ids do not reveal the person."""
    with np.errstate(over="ignore"):
        z = (x.astype(np.uint64) + np.uint64(salt & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _hexid(prefix: str, x: np.ndarray, salt: int, width: int = 12) -> pd.Series:
    vals = _mix(x, salt) & np.uint64((1 << (4 * width)) - 1)
    return pd.Series([f"{prefix}{v:0{width}x}" for v in vals.tolist()], dtype=object)


def _pick(rng: np.random.Generator, items: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    p = None if weights is None else weights / weights.sum()
    return rng.choice(len(items), size=n, p=p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _epoch(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def _typo(s: pd.Series, rng: np.random.Generator) -> pd.Series:
    """Swap two adjacent letters or drop one: the typos humans make when keying names."""
    out = s.copy()
    for i, v in zip(s.index, s.tolist(), strict=True):
        if len(v) < 4:
            continue
        k = int(rng.integers(1, len(v) - 2))
        out.at[i] = v[:k] + v[k + 1] + v[k] + v[k + 2:] if rng.random() < 0.6 else v[:k] + v[k + 1:]
    return out


# ----------------------------------------------------------------------------------------------
# people


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
    start = _epoch(cfg.as_of) - (HISTORY_DAYS - 1) * DAY
    created = start + (df["signup_frac"] * (HISTORY_DAYS - 1) * DAY).astype(np.int64)
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
    return df


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


# ----------------------------------------------------------------------------------------------
# source records with realistic variation


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


# ----------------------------------------------------------------------------------------------
# behaviour: orders, web and email events over a time window


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


def _orders(P, cfg, rng, t0, t1, shop_ids):
    shop = P.in_shop.to_numpy()
    start, length = _active_seconds(P, t0, t1)
    rate = np.where(shop, P.order_rate.to_numpy(), 0.0)
    who, ts = _poisson_times(rng, rate, start, length)
    n = len(who)
    seq = np.arange(n, dtype=np.int64) + cfg.day * 10_000_000_000
    orders = pd.DataFrame({
        "order_id": _hexid("O", seq, cfg.seed + 31, 12).to_numpy(),
        "customer_id": shop_ids[who],
        "ordered_at": pd.to_datetime(ts, unit="s", utc=True),
        "status": np.where(rng.random(n) < 0.04, "refunded", "completed"),
        "currency": "USD",
    })
    n_items = rng.integers(1, 4, n)
    oi = np.repeat(np.arange(n), n_items)
    prod = rng.integers(0, 200, len(oi))
    prices = _products(cfg).price.astype(float).to_numpy()
    qty = np.where(rng.random(len(oi)) < 0.85, 1, 2)
    scale = (P.aov.to_numpy()[who][oi] / 45.0)
    unit = np.round(prices[prod] * np.clip(scale, 0.5, 3.0), 2)
    items = pd.DataFrame({
        "order_id": orders.order_id.to_numpy()[oi],
        "line_number": (np.arange(len(oi)) - np.repeat(np.cumsum(n_items) - n_items, n_items) + 1).astype(np.int32),
        "product_id": np.char.add("SKU-", np.char.zfill(prod.astype(str), 5)),
        "quantity": qty.astype(np.int32),
        "unit_price": unit,
    })
    totals = pd.Series(unit * qty).groupby(oi).sum().to_numpy()
    orders["total_amount"] = np.round(totals, 2)
    return orders, items, who, ts


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
    bounced = rng.random(n) < 0.02
    hard = rng.random(n) < 0.5
    opened = ~bounced & (rng.random(n) < p_open)
    clicked = opened & (rng.random(n) < P.p_click.to_numpy()[who] / np.maximum(p_open, 1e-3) * 0.5)
    complaint = opened & (rng.random(n) < 0.003)
    unsub = opened & (rng.random(n) < 0.01 * np.where(active, 1.0, 3.0))
    parts = [
        (np.ones(n, bool), 0, 0), (~bounced, 1, 5), (bounced, 4, 5), (opened, 2, 3600), (clicked, 3, 4000),
        (complaint, 5, 5000), (unsub, 6, 5200),
    ]
    who_l, ts_l, kind_l, msg_l = [], [], [], []
    for mask, k, delay in parts:
        w = np.flatnonzero(mask)
        who_l.append(who[w])
        ts_l.append(ts[w] + (rng.random(len(w)) * delay * 3).astype(np.int64) + delay)
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


# ----------------------------------------------------------------------------------------------
# bad rows


def _inject_bad(df: pd.DataFrame, name: str, cfg: GenConfig, rng: np.random.Generator,
                key: str, ts_col: str, num_col: str | None, email_col: str | None, header: bool) -> list[dict]:
    """Corrupt a share of rows in place (missing key, wrong type, future timestamp, invalid email)."""
    n = len(df)
    k = int(round(n * cfg.bad_rate))
    bad: list[dict] = []
    if k == 0 or n == 0:
        return bad
    rows = rng.choice(n, size=min(k, n), replace=False)
    kinds = ["missing_key", "future_timestamp"] + (["wrong_type"] if num_col else [])
    future = pd.Timestamp(cfg.day_date()) + pd.Timedelta(days=400)
    for j, r in enumerate(sorted(rows.tolist())):
        kind = kinds[j % len(kinds)]
        if kind == "missing_key":
            df.iat[r, df.columns.get_loc(key)] = None if df[key].dtype != object or not header else ""
        elif kind == "future_timestamp":
            col = df.columns.get_loc(ts_col)
            df.iat[r, col] = future.tz_localize("UTC") if str(df[ts_col].dtype).startswith("datetime64") \
                else future.strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            df.iat[r, df.columns.get_loc(num_col)] = "many"
        bad.append({"file": name, "line": int(r) + (2 if header else 1), "kind": kind})
    if email_col:
        m = int(round(n * cfg.invalid_email_rate))
        for r in rng.choice(n, size=min(m, n), replace=False).tolist():
            v = str(df.iat[r, df.columns.get_loc(email_col)])
            df.iat[r, df.columns.get_loc(email_col)] = v.replace("@", " at ", 1) if r % 2 else v.split("@")[0] + "@"
    return bad


def _append_malformed(path: Path, fmt: str, n_rows: int, n_cols: int, cfg: GenConfig, rng: np.random.Generator,
                      header: bool) -> list[dict]:
    """Append truncated JSON or ragged CSV lines, as a crashed exporter leaves them."""
    k = int(round(n_rows * cfg.bad_rate / 2))
    if k == 0:
        return []
    lines = []
    for i in range(k):
        if fmt == "jsonl":
            lines.append('{"type": "track", "event": "Product Vie' + str(i))
        else:
            lines.append(",".join(["junk"] * (n_cols + 2 + int(rng.integers(0, 3)))))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    first = n_rows + (2 if header else 1)
    return [{"file": path.name, "line": first + i, "kind": "malformed"} for i in range(k)]


# ----------------------------------------------------------------------------------------------
# writing


def _write_csv(con: duckdb.DuckDBPyConnection, df: pd.DataFrame, path: Path) -> None:
    con.register("_df", df)
    con.execute(f"COPY (SELECT * FROM _df) TO '{path}' (FORMAT CSV, HEADER true)")
    con.unregister("_df")


def _write_parquet(con, df: pd.DataFrame, path: Path) -> None:
    con.register("_df", df)
    con.execute(f"COPY (SELECT * FROM _df) TO '{path}' (FORMAT PARQUET, COMPRESSION zstd)")
    con.unregister("_df")


def _write_web_jsonl(con, ev: pd.DataFrame, path: Path, bad: pd.DataFrame) -> None:
    """Segment-style track/page/identify calls, one JSON object per line."""
    con.register("_ev", ev)
    con.register("_names", pd.DataFrame({"kind": np.arange(len(_WEB_EVENTS), dtype=np.int8), "name": _WEB_EVENTS}))
    con.register("_bad", bad)
    con.execute(f"""
    COPY (
      SELECT
        printf('%014x', e.seq) AS messageId,
        CASE WHEN e.kind = 0 THEN 'page' WHEN e.kind = 7 THEN 'identify' ELSE 'track' END AS type,
        CASE WHEN e.kind BETWEEN 1 AND 6 THEN n.name END AS event,
        printf('anon-%012x', e.anon) AS anonymousId,
        e.user_id AS userId,
        CASE WHEN b.kind = 'future_timestamp'
             THEN strftime(make_timestamp((e.ts + 400 * 86400) * 1000000), '%Y-%m-%dT%H:%M:%S.000Z')
             WHEN b.kind = 'wrong_type' THEN 'yesterday'
             ELSE strftime(make_timestamp(e.ts * 1000000), '%Y-%m-%dT%H:%M:%S.000Z') END AS timestamp,
        CASE WHEN e.kind = 7 THEN {{'email': e.email}} END AS traits,
        CASE WHEN e.kind = 0 THEN {{'path': '/' || ['home','shop','blog','pricing','about'][1 + e.product % 5],
                                    'product_id': NULL::VARCHAR, 'price': NULL::DOUBLE, 'email': NULL::VARCHAR,
                                    'webinar_id': NULL::VARCHAR}}
             WHEN e.kind IN (5, 6) THEN {{'path': '/webinars', 'product_id': NULL, 'price': NULL, 'email': e.email,
                                    'webinar_id': 'WB-' || (e.product % 12)}}
             WHEN e.kind = 7 THEN NULL
             ELSE {{'path': '/p/SKU-' || lpad(e.product::VARCHAR, 5, '0'), 'product_id': 'SKU-' || lpad(e.product::VARCHAR, 5, '0'),
                    'price': NULL, 'email': NULL, 'webinar_id': NULL}} END AS properties,
        {{'library': {{'name': 'analytics.js', 'version': '4.1.0'}}, 'ip': '203.0.113.' || (e.anon % 250)}} AS context
      FROM _ev e JOIN _names n USING (kind) LEFT JOIN _bad b ON b.row = e.row
      ORDER BY e.row
    ) TO '{path}' (FORMAT JSON)""")
    for t in ("_ev", "_names", "_bad"):
        con.unregister(t)


def _write_email_jsonl(con, ev: pd.DataFrame, path: Path, bad: pd.DataFrame) -> None:
    """Email-service webhook events (sent, delivered, open, click, bounce, complaint, unsubscribe)."""
    con.register("_ev", ev)
    con.register("_names", pd.DataFrame({"kind": np.arange(len(_EMAIL_EVENTS), dtype=np.int8), "name": _EMAIL_EVENTS}))
    con.register("_bad", bad)
    con.execute(f"""
    COPY (
      SELECT printf('evt_%014x', e.seq) AS event_id, n.name AS event,
        CASE WHEN b.kind = 'missing_key' THEN NULL ELSE lower(e.email) END AS email,
        CASE WHEN b.kind = 'future_timestamp' THEN e.ts + 400 * 86400 ELSE e.ts END AS timestamp,
        printf('msg_%012x', e.msg) AS message_id, 'cmp_' || e.campaign AS campaign_id,
        CASE WHEN e.kind = 4 THEN CASE WHEN e.hard THEN 'hard' ELSE 'soft' END END AS bounce_type,
        CASE WHEN e.kind = 3 THEN 'https://shop.example.com/?utm_campaign=cmp_' || e.campaign END AS url
      FROM _ev e JOIN _names n USING (kind) LEFT JOIN _bad b ON b.row = e.row
      ORDER BY e.row
    ) TO '{path}' (FORMAT JSON)""")
    for t in ("_ev", "_names", "_bad"):
        con.unregister(t)


def _bad_events(n: int, name: str, kinds: list[str], cfg: GenConfig, rng: np.random.Generator) -> pd.DataFrame:
    k = int(round(n * cfg.bad_rate))
    rows = np.sort(rng.choice(n, size=min(k, n), replace=False)) if n else np.array([], np.int64)
    return pd.DataFrame({"row": rows.astype(np.int64), "kind": [kinds[i % len(kinds)] for i in range(len(rows))]})


def generate(cfg: GenConfig, out: Path) -> GenSummary:
    """Write day `cfg.day` of the world to `out/landing/<date>/` and its truth to `out/truth/<date>/`."""
    t_start = time.perf_counter()
    day_str = cfg.day_date().isoformat()
    landing = Path(out) / "landing" / day_str
    truth = Path(out) / "truth" / day_str
    landing.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)
    P = people(cfg)
    rng = np.random.default_rng([cfg.seed, 2, cfg.day])
    if cfg.day == 1:
        t0, t1 = _epoch(cfg.as_of) - (HISTORY_DAYS - 1) * DAY, _epoch(cfg.as_of) + DAY
    else:
        t0 = _epoch(cfg.day_date())
        t1 = t0 + DAY
    shop_ids = _hexid("S", P.person_idx.to_numpy(), cfg.seed + 21, 10).to_numpy()

    crm, crm_map = _crm_contacts(P, cfg, rng, cfg.day)
    companies = _crm_companies(P, cfg, rng, cfg.day)
    shop, shop_map = _shop_customers(P, cfg, rng, cfg.day)
    orders, items, order_who, order_ts = _orders(P, cfg, rng, t0, t1, shop_ids)
    web, anon_map = _web_events(P, cfg, rng, t0, t1, shop_ids, order_who, order_ts)
    web = web.sort_values("ts", kind="stable").reset_index(drop=True)
    web["row"] = np.arange(len(web), dtype=np.int64)
    email = _email_events(P, cfg, rng, t0, t1).sort_values("ts", kind="stable").reset_index(drop=True)
    email["row"] = np.arange(len(email), dtype=np.int64)
    consent = _consent(P, cfg, rng, cfg.day, email)

    bad: list[dict] = []
    bad += _inject_bad(crm, "crm_contacts.csv", cfg, rng, "contact_id", "updated_at", None, "email", True)
    bad += _inject_bad(companies, "crm_companies.csv", cfg, rng, "company_id", "created_at", "employees", None, True)
    bad += _inject_bad(shop, "shop_customers.csv", cfg, rng, "customer_id", "created_at", None, "email", True)
    bad += _inject_bad(orders, "shop_orders.parquet", cfg, rng, "order_id", "ordered_at", None, None, False)
    bad += _inject_bad(consent, "consent.csv", cfg, rng, "consent_id", "recorded_at", None, None, True)
    web_bad = _bad_events(len(web), "web_events.jsonl", ["future_timestamp", "wrong_type"], cfg, rng)
    email_bad = _bad_events(len(email), "email_events.jsonl", ["missing_key", "future_timestamp"], cfg, rng)
    bad += [{"file": "web_events.jsonl", "line": int(r) + 1, "kind": k} for r, k in zip(web_bad.row, web_bad.kind, strict=True)]
    bad += [{"file": "email_events.jsonl", "line": int(r) + 1, "kind": k} for r, k in zip(email_bad.row, email_bad.kind, strict=True)]

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = false")
    rows: dict[str, int] = {}
    for name, df in (("crm_contacts", crm), ("crm_companies", companies), ("shop_customers", shop), ("consent", consent)):
        p = landing / f"{name}.csv"
        _write_csv(con, df, p)
        rows[name] = len(df)
        bad += _append_malformed(p, "csv", len(df), df.shape[1], cfg, rng, True)
    if cfg.day == 1:
        products = _products(cfg)
        _write_csv(con, products, landing / "shop_products.csv")
        rows["shop_products"] = len(products)
    _write_parquet(con, orders, landing / "shop_orders.parquet")
    _write_parquet(con, items, landing / "shop_order_items.parquet")
    rows["shop_orders"], rows["shop_order_items"] = len(orders), len(items)
    _write_web_jsonl(con, web, landing / "web_events.jsonl", web_bad)
    _write_email_jsonl(con, email, landing / "email_events.jsonl", email_bad)
    rows["web_events"], rows["email_events"] = len(web), len(email)
    for name, n in (("web_events", len(web)), ("email_events", len(email))):
        bad += _append_malformed(landing / f"{name}.jsonl", "jsonl", n, 0, cfg, rng, False)

    # Ground truth: never read by the pipeline, only by evaluations and tests.
    new_people = P[P.join_day == cfg.day]
    truth_people = new_people[["person_id", "gender", "first_name", "last_name", "birth_date", "email", "work_email",
                               "phone", "address", "city", "state", "zip", "is_b2b", "company_idx", "in_crm", "in_shop",
                               "has_web", "no_shared_id", "moved", "household", "engagement", "intent", "value",
                               "p_open", "p_click", "order_rate", "web_rate", "aov", "created_ts", "churn_ts"]]
    _write_parquet(con, truth_people, truth / "people.parquet")
    record_map = pd.concat([
        crm_map.assign(source="crm_contacts"), shop_map.assign(source="shop_customers"),
        anon_map.assign(record_id=lambda d: [f"anon-{a:012x}" for a in d.anon.tolist()], source="web_events")
        .drop(columns="anon"),
    ], ignore_index=True).rename(columns={"_person_id": "person_id"})
    _write_parquet(con, record_map, truth / "record_map.parquet")
    _write_parquet(con, pd.DataFrame(bad, columns=["file", "line", "kind"]), truth / "bad_rows.parquet")
    con.close()

    bad_counts = pd.Series([b["kind"] for b in bad]).value_counts().to_dict() if bad else {}
    summary = GenSummary(
        day=cfg.day, date=day_str, landing=str(landing), truth=str(truth),
        people_total=len(P), people_new=int((P.join_day == cfg.day).sum()), rows=rows,
        bad_rows={k: int(v) for k, v in bad_counts.items()}, seconds=round(time.perf_counter() - t_start, 2),
    )
    (truth / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2))
    return summary
