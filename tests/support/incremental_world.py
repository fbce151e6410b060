"""Day 3 of the incremental tests' world (tests/dbt/test_incremental*.py): late rows, a re-sent order and a changed
CRM record that merges two customers, planted into a day's landing files."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd


def plant_late_rows(day_dir: Path, day1_dir: Path) -> dict[str, int]:
    """Day 3's files also carry rows of day 1: new web and email events, a re-delivered web message (same id)
    and a re-sent order with a new status. Returns what was planted."""
    web1 = [json.loads(x) for x in (day1_dir / "web_events.jsonl").read_text().splitlines()[:40]]
    late_web = [{**e, "messageId": "late-" + e["messageId"]} for e in web1[:30]]
    # a visit a day before the device's first one: a new first session, so the device's later sessions renumber
    first = web1[0]
    earlier = (pd.Timestamp(first["timestamp"]) - pd.Timedelta(days=1)).isoformat().replace("+00:00", "Z")
    late_web.append({**first, "messageId": "late-earlier-" + first["messageId"], "timestamp": earlier})
    redelivered = web1[30:35]  # same message ids as day 1: they must load once
    with (day_dir / "web_events.jsonl").open("a") as f:
        f.writelines(json.dumps(e) + "\n" for e in late_web + redelivered)
    mail1 = [json.loads(x) for x in (day1_dir / "email_events.jsonl").read_text().splitlines()[:20]]
    with (day_dir / "email_events.jsonl").open("a") as f:
        f.writelines(json.dumps({**e, "event_id": "late-" + e["event_id"]}) + "\n" for e in mail1)
    orders1 = pd.read_parquet(day1_dir / "shop_orders.parquet").head(3)
    orders = pd.read_parquet(day_dir / "shop_orders.parquet")
    resent = orders1.assign(status="refunded")
    pd.concat([orders, resent], ignore_index=True).to_parquet(day_dir / "shop_orders.parquet", index=False)
    return {"late_web": len(late_web), "redelivered": len(redelivered), "late_email": len(mail1),
            "resent_orders": len(resent)}


def plant_merge(warehouse: Path, landing: Path, day_dir: Path) -> tuple[str, str]:
    """A changed CRM record on day 3 that makes two existing customers one: a CRM contact of a customer with no
    shop record is re-sent with the name, email, phone and address of a shop customer of another customer (one
    with no CRM record). Returns the two record ids."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        shop, crm = con.execute("""
            WITH r AS (SELECT source, record_id, customer_id,
                              count(DISTINCT source) OVER (PARTITION BY customer_id) AS sources
                       FROM intermediate.int_customer_records_resolved)
            SELECT (SELECT min(record_id) FROM r WHERE source = 'shop' AND sources = 1),
                   (SELECT min(record_id) FROM r WHERE source = 'crm' AND sources = 1)""").fetchone()
    read = {"dtype": str, "keep_default_na": False, "on_bad_lines": "skip", "encoding_errors": "replace"}
    shops = pd.concat(pd.read_csv(f, **read) for f in sorted(landing.glob("*/shop_customers.csv")))
    contacts = pd.concat(pd.read_csv(f, **read) for f in sorted(landing.glob("*/crm_contacts.csv")))
    person = shops[shops.customer_id == shop].iloc[-1]
    changed = contacts[contacts.contact_id == crm].iloc[[-1]].assign(  # the shop customer's name and contact
        first_name=person.first_name, last_name=person.last_name, email=person.email, phone=person.phone,
        street=person.address_line1, city=person.city, state=person.state, postal_code=person.zip,
        updated_at=f"{day_dir.name}T12:00:00Z")
    changed.to_csv(day_dir / "crm_contacts.csv", mode="a", header=False, index=False)
    return shop, crm


def content(path: Path, tables) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").df() for t in tables}
