"""One generator run: a day of the world to landing/<date>/ and its truth to truth/<date>/."""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from beacon.generate.bad_rows import _append_malformed, _bad_events, _inject_bad
from beacon.generate.behaviour import _consent, _email_events, _orders, _web_events, order_rows
from beacon.generate.config import DAY, GenConfig, GenSummary
from beacon.generate.helpers import _epoch, _hexid, _mix
from beacon.generate.population import people
from beacon.generate.records import _crm_companies, _crm_contacts, _products, _shop_customers
from beacon.generate.writers import _write_csv, _write_email_jsonl, _write_parquet, _write_web_jsonl


def generate(cfg: GenConfig, out: Path, responses: pd.DataFrame | None = None) -> GenSummary:
    """Write day `cfg.day` of the world to `out/landing/<date>/` and its truth to `out/truth/<date>/`.

    `responses`: events the world's people produce in answer to messages (`beacon.generate.responses`: person_idx,
    kind sent/delivered/open/click/order, ts within the day, campaign, email), added to the day's orders (with
    their web funnel) and email events."""
    t_start = time.perf_counter()
    day_str = cfg.day_date().isoformat()
    landing = Path(out) / "landing" / day_str
    truth = Path(out) / "truth" / day_str
    landing.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)
    P = people(cfg)
    rng = np.random.default_rng([cfg.seed, 2, cfg.day])
    t0, t1 = _window(cfg)
    shop_ids = _hexid("S", P.person_idx.to_numpy(), cfg.seed + 21, 10).to_numpy()

    crm, crm_map = _crm_contacts(P, cfg, rng, cfg.day)
    companies = _crm_companies(P, cfg, rng, cfg.day)
    shop, shop_map = _shop_customers(P, cfg, rng, cfg.day)
    orders, items, order_who, order_ts = _orders(P, cfg, rng, t0, t1, shop_ids)
    answers = _answers(P, responses)
    if len(answers):
        orders, items, order_who, order_ts = _answer_orders(P, cfg, shop_ids, answers, orders, items, order_who,
                                                             order_ts)
    web, anon_map = _web_events(P, cfg, rng, t0, t1, shop_ids, order_who, order_ts)
    web = web.sort_values("ts", kind="stable").reset_index(drop=True)
    web["row"] = np.arange(len(web), dtype=np.int64)
    email = _email_events(P, cfg, rng, t0, t1)
    if len(answers):
        email = _answer_emails(cfg, answers, email)
    email = email.sort_values("ts", kind="stable").reset_index(drop=True)
    email["row"] = np.arange(len(email), dtype=np.int64)
    consent = _consent(P, cfg, rng, cfg.day, email)
    tables = {"crm_contacts": crm, "crm_companies": companies, "shop_customers": shop, "consent": consent,
              "shop_orders": orders, "shop_order_items": items, "web_events": web, "email_events": email}

    bad, web_bad, email_bad = _inject_all_bad(tables, cfg, rng)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = false")
    rows = _write_landing(con, landing, tables, web_bad, email_bad, bad, cfg, rng)
    record_map = pd.concat([
        crm_map.assign(source="crm_contacts"), shop_map.assign(source="shop_customers"),
        anon_map.assign(record_id=lambda d: [f"anon-{a:012x}" for a in d.anon.tolist()], source="web_events")
        .drop(columns="anon"),
    ], ignore_index=True).rename(columns={"_person_id": "person_id"})
    _write_truth(con, truth, P[P.join_day == cfg.day], record_map, bad)
    con.close()

    bad_counts = pd.Series([b["kind"] for b in bad]).value_counts().to_dict() if bad else {}
    summary = GenSummary(
        day=cfg.day, date=day_str, landing=str(landing), truth=str(truth),
        people_total=len(P), people_new=int((P.join_day == cfg.day).sum()), rows=rows,
        bad_rows={k: int(v) for k, v in bad_counts.items()}, seconds=round(time.perf_counter() - t_start, 2),
    )
    (truth / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2))
    return summary


def _window(cfg: GenConfig) -> tuple[int, int]:
    """The epoch-second window of the run: the whole history (`cfg.history_days`) on day 1, else that one day."""
    if cfg.day == 1:
        return _epoch(cfg.as_of) - (cfg.history_days - 1) * DAY, _epoch(cfg.as_of) + DAY
    t0 = _epoch(cfg.day_date())
    return t0, t0 + DAY


def _inject_all_bad(tables: dict[str, pd.DataFrame], cfg: GenConfig, rng: np.random.Generator):
    """Bad values into the record tables and the event rows to corrupt on write; (bad rows, web_bad, email_bad).

    The order of the calls is the order of `rng` draws: changing it changes every world."""
    bad: list[dict] = []
    bad += _inject_bad(tables["crm_contacts"], "crm_contacts.csv", cfg, rng, "contact_id", "updated_at", None, "email", True)
    bad += _inject_bad(tables["crm_companies"], "crm_companies.csv", cfg, rng, "company_id", "created_at", "employees",
                       None, True)
    bad += _inject_bad(tables["shop_customers"], "shop_customers.csv", cfg, rng, "customer_id", "created_at", None,
                       "email", True)
    bad += _inject_bad(tables["shop_orders"], "shop_orders.parquet", cfg, rng, "order_id", "ordered_at", None, None, False)
    bad += _inject_bad(tables["consent"], "consent.csv", cfg, rng, "consent_id", "recorded_at", None, None, True)
    web_bad = _bad_events(len(tables["web_events"]), "web_events.jsonl", ["future_timestamp", "wrong_type"], cfg, rng)
    email_bad = _bad_events(len(tables["email_events"]), "email_events.jsonl", ["missing_key", "future_timestamp"],
                            cfg, rng)
    bad += [{"file": "web_events.jsonl", "line": int(r) + 1, "kind": k} for r, k in zip(web_bad.row, web_bad.kind, strict=True)]
    bad += [{"file": "email_events.jsonl", "line": int(r) + 1, "kind": k} for r, k in zip(email_bad.row, email_bad.kind, strict=True)]
    return bad, web_bad, email_bad


def _write_landing(con: duckdb.DuckDBPyConnection, landing: Path, tables: dict[str, pd.DataFrame], web_bad, email_bad,
                   bad: list[dict], cfg: GenConfig, rng: np.random.Generator) -> dict[str, int]:
    """The day's landing files (malformed lines appended to `bad`); rows written per table."""
    rows: dict[str, int] = {}
    for name in ("crm_contacts", "crm_companies", "shop_customers", "consent"):
        df, p = tables[name], landing / f"{name}.csv"
        _write_csv(con, df, p)
        rows[name] = len(df)
        bad += _append_malformed(p, "csv", len(df), df.shape[1], cfg, rng, True)
    if cfg.day == 1:
        products = _products(cfg)
        _write_csv(con, products, landing / "shop_products.csv")
        rows["shop_products"] = len(products)
    for name in ("shop_orders", "shop_order_items"):
        _write_parquet(con, tables[name], landing / f"{name}.parquet")
        rows[name] = len(tables[name])
    _write_web_jsonl(con, tables["web_events"], landing / "web_events.jsonl", web_bad)
    _write_email_jsonl(con, tables["email_events"], landing / "email_events.jsonl", email_bad)
    for name in ("web_events", "email_events"):
        rows[name] = n = len(tables[name])
        bad += _append_malformed(landing / f"{name}.jsonl", "jsonl", n, 0, cfg, rng, False)
    return rows


def _write_truth(con: duckdb.DuckDBPyConnection, truth: Path, new_people: pd.DataFrame, record_map: pd.DataFrame,
                 bad: list[dict]) -> None:
    """Ground truth: never read by the pipeline, only by evaluations and tests."""
    truth_people = new_people[["person_id", "gender", "first_name", "last_name", "birth_date", "email", "work_email",
                               "phone", "address", "city", "state", "zip", "is_b2b", "company_idx", "in_crm", "in_shop",
                               "has_web", "no_shared_id", "moved", "household", "engagement", "intent", "value",
                               "p_open", "p_click", "order_rate", "web_rate", "aov", "created_ts", "churn_ts",
                               "tz", "preferred_hour", "taste_1", "taste_2"]]
    _write_parquet(con, truth_people, truth / "people.parquet")
    _write_parquet(con, record_map, truth / "record_map.parquet")
    _write_parquet(con, pd.DataFrame(bad, columns=["file", "line", "kind"]), truth / "bad_rows.parquet")


def _answers(P: pd.DataFrame, responses: pd.DataFrame | None) -> pd.DataFrame:
    """The responses of people in this population, with their row in P (`row`)."""
    if responses is None or responses.empty:
        return pd.DataFrame()
    at = pd.Index(P.person_idx).get_indexer(responses.person_idx.to_numpy(np.int64))
    return responses.assign(row=at)[at >= 0].reset_index(drop=True)


def _answer_orders(P, cfg, shop_ids, answers, orders, items, order_who, order_ts):
    """The day's nudged orders beside the baseline ones (never refunded; ids apart from the baseline's)."""
    o = answers[answers.kind == "order"]
    who, ts = o["row"].to_numpy(np.int64), o.ts.to_numpy(np.int64)
    seq = np.arange(len(o), dtype=np.int64) + cfg.day * 10_000_000_000 + 5_000_000_000
    more, more_items = order_rows(P, cfg, np.random.default_rng([cfg.seed, 8, cfg.day]), who, ts, shop_ids, seq,
                                  np.random.default_rng([cfg.seed, 9, cfg.day]), refund_rate=0.0)
    return (pd.concat([orders, more], ignore_index=True), pd.concat([items, more_items], ignore_index=True),
            np.concatenate([order_who, who]), np.concatenate([order_ts, ts]))


_ANSWER_KINDS = {"sent": 0, "delivered": 1, "open": 2, "click": 3}  # positions in behaviour._EMAIL_EVENTS


def _answer_emails(cfg, answers, email: pd.DataFrame) -> pd.DataFrame:
    """The email service's webhooks for Beacon's messages (sent, delivered, opened, clicked) beside the others."""
    e = answers[answers.kind.isin(list(_ANSWER_KINDS))].reset_index(drop=True)
    # One message id per campaign and person; Beacon's campaigns keep their names ('cmp_beacon-journey-win_back').
    msg_key = pd.util.hash_pandas_object(e[["campaign", "person_idx"]], index=False).to_numpy(np.uint64)
    more = pd.DataFrame({
        "msg": _mix(msg_key, cfg.seed + 53) & np.uint64(0xFFFFFFFFFFFF),
        "seq": _mix(np.arange(len(e), dtype=np.int64) + cfg.day * 100_000_000_000 + 50_000_000_000, cfg.seed + 52)
        & np.uint64(0xFFFFFFFFFFFFFF),
        "email": e.email.to_numpy(), "ts": e.ts.to_numpy(np.int64),
        "kind": e.kind.map(_ANSWER_KINDS).to_numpy(np.int8),
        "campaign": "beacon-" + e.campaign.str.replace(":", "-", regex=False),
        "hard": False})
    return pd.concat([email.assign(campaign=email.campaign.astype(str)), more], ignore_index=True)
