"""The daily incremental path and a full refresh give the same tables (issue 28; docs/scale.md).

A small world runs three days (ingest, then `dbt run` of the event, email and order facts and everything they
read); day 3 also brings late events (web and email events of day 1 that arrive two days late), a re-delivered
web message and a re-sent order whose status changed. After each day the incremental models hold exactly what
a `--full-refresh` of the same warehouse then gives, row for row.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from beacon.config import override_env

PEOPLE = 1200
SEED = 11
# The incremental models and the facts built on them (their customer ids come from identity resolution,
# which merges customers across the days).
INCREMENTAL = ("staging.stg_web__events", "staging.stg_esp__email_events", "staging.stg_shop__orders")
FACTS = ("marts.fct_web_events", "marts.fct_email_events", "marts.fct_orders")
SELECT = ["--select", "+fct_web_events", "+fct_email_events", "+fct_orders", "identity_merge_log"]


def _plant_late_rows(day_dir: Path, day1_dir: Path) -> dict[str, int]:
    """Day 3's files also carry rows of day 1: new web and email events, a re-delivered web message (same id)
    and a re-sent order with a new status. Returns what was planted."""
    web1 = [json.loads(x) for x in (day1_dir / "web_events.jsonl").read_text().splitlines()[:40]]
    late_web = [{**e, "messageId": "late-" + e["messageId"]} for e in web1[:30]]
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


def _plant_merge(warehouse: Path, landing: Path, day_dir: Path) -> tuple[str, str]:
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


def _content(path: Path, tables) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").df() for t in tables}


def _ran_incrementally(target: Path, model: str) -> bool:
    """The last run compiled `model` in its incremental branch (the SQL names the rebuilt days)."""
    return "rebuilt_days" in next((target / "compiled").rglob(f"{model}.sql")).read_text()


@pytest.mark.e2e
def test_incremental_days_equal_a_full_refresh(tmp_path):
    from beacon import dbt
    from beacon.config import settings
    from beacon.generate import GenConfig, generate
    from beacon.ingest import load_landing

    with override_env(BEACON_DATA_DIR=str(tmp_path), BEACON_DBT_TARGET_DIR=str(tmp_path / "dbt_target")):
        s = settings()
        planted = {}
        for day in (1, 2, 3):
            cfg = GenConfig(people=PEOPLE, seed=SEED, day=day)
            generate(cfg, tmp_path)
            if day == 3:
                day_dir = s.landing_dir / cfg.day_date().isoformat()
                planted = _plant_late_rows(day_dir, s.landing_dir / GenConfig(people=PEOPLE, seed=SEED).day_date().isoformat())
                planted["merge"] = _plant_merge(s.warehouse_path, s.landing_dir, day_dir)
            load_landing(s.landing_dir)
            assert dbt.run(["run", *SELECT], s, quiet=True), f"dbt run failed on day {day}"
            if day > 1:
                assert all(_ran_incrementally(s.dbt_target_dir, t.split(".")[1]) for t in INCREMENTAL)
        daily = _content(s.warehouse_path, INCREMENTAL + FACTS)
        with duckdb.connect(str(s.warehouse_path), read_only=True) as con:
            merges = con.execute("SELECT count(*) FROM marts.identity_merge_log").fetchone()[0]
            late = con.execute("""SELECT count(*) FROM staging.stg_web__events WHERE message_id LIKE 'late-%'
                                  AND event_date < (SELECT max(event_date) - 1 FROM staging.stg_web__events)""").fetchone()[0]
            refunded = con.execute("SELECT count(*) FROM staging.stg_shop__orders WHERE status = 'refunded'").fetchone()[0]
        # The world did what the test is about: customers merged, late rows and re-sent orders arrived.
        assert merges > 0
        assert late == planted["late_web"]
        assert refunded >= planted["resent_orders"]

        shutil.copy(s.warehouse_path, tmp_path / "daily.duckdb")
        assert dbt.run(["run", "--full-refresh", *SELECT], s, quiet=True)
        assert not _ran_incrementally(s.dbt_target_dir, "stg_web__events")
        full = _content(s.warehouse_path, INCREMENTAL + FACTS)

    for table in INCREMENTAL + FACTS:
        assert len(daily[table]) > 0, table
        pd.testing.assert_frame_equal(daily[table], full[table], check_dtype=True, obj=table)
    web = daily["staging.stg_web__events"]
    assert web.message_id.is_unique  # the re-delivered messages loaded once
