"""Who an erasure covers beyond the identifiers a request names, and what the proof's scan looks for (docs/privacy.md
"Who a request covers", "How to prove it"): a shop account opened with a household member's mailbox is still the
person's (found by name and address, or by the person's own login stating their e-mail), while a namesake's record
and a web visitor that nothing ties to the person are left alone by the scan and reported."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from beacon.privacy.catalog import PiiColumn
from beacon.privacy.erase import EraseReport, erase_warehouse
from beacon.privacy.scan import find, targets
from beacon.privacy.subject import resolve_subject

# Dan: a CRM contact with his own e-mail, and a shop account opened with Cait's mailbox (no phone) at his address.
# Cait: her own shop account. Eve: only a shop account opened with Cait's mailbox, linked to Dan by nothing but a
# login that stated her own e-mail. Dan Roe (the namesake) lives elsewhere.
RECORDS = [
    ("crm:C0000001", "crm", "C0000001", "dan@example.com", "+14155550100", "Dan", "Moss", ["dan", "daniel"], "12 oak st", "94110"),
    ("shop:S0000001", "shop", "S0000001", "cait@example.com", None, "Daniel", "Moss", ["daniel", "dan"], "12 oak st", "94110"),
    ("shop:S0000002", "shop", "S0000002", "cait@example.com", "+12125550199", "Cait", "Park", ["cait"], "9 elm ave", "10001"),
    ("shop:S0000003", "shop", "S0000003", "cait@example.com", None, "Eve", "Hart", ["eve"], "1 pine rd", "60601"),
    ("crm:C0000004", "crm", "C0000004", "roe@example.com", None, "Dan", "Moss", ["dan", "daniel"], "7 bay st", "02110"),
]
CUSTOMERS = {"crm:C0000001": "cus_dan", "shop:S0000001": "cus_dan_shop", "shop:S0000002": "cus_cait", "shop:S0000003": "cus_eve",
             "crm:C0000004": "cus_roe"}


def _world(con: duckdb.DuckDBPyConnection, s1_customer: str = "cus_dan_shop") -> None:
    for schema in ("raw", "staging", "intermediate", "marts"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute("""CREATE TABLE intermediate.int_customer_records_unioned (record_key VARCHAR, source VARCHAR,
        record_id VARCHAR, email VARCHAR, email_canonical VARCHAR, phone_e164 VARCHAR, first_name VARCHAR,
        last_name VARCHAR, last_name_key VARCHAR, first_name_aliases VARCHAR[], street_key VARCHAR, postal_code VARCHAR)""")
    for key, src, rid, email, phone, first, last, aliases, street, postal in RECORDS:
        con.execute("INSERT INTO intermediate.int_customer_records_unioned VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    [key, src, rid, email, email, phone, first, last, last.lower(), aliases, street, postal])
    owners = {**CUSTOMERS, "shop:S0000001": s1_customer}
    con.execute("CREATE TABLE intermediate.int_customer_records_resolved (source VARCHAR, record_id VARCHAR, "
                "record_key VARCHAR, customer_id VARCHAR)")
    con.execute("CREATE TABLE intermediate.int_identity_events (record_key VARCHAR, customer_id VARCHAR, "
                "previous_customer_id VARCHAR)")
    for key, cid in owners.items():
        src, _, rid = key.partition(":")
        con.execute("INSERT INTO intermediate.int_customer_records_resolved VALUES (?,?,?,?)", [src, rid, key, cid])
        con.execute("INSERT INTO intermediate.int_identity_events VALUES (?,?,NULL)", [key, cid])
    # Eve's login: the shop's user id S0000003 with her own e-mail as a trait.
    con.execute("""CREATE TABLE staging.stg_web__events AS SELECT * FROM (VALUES
        ('anon-eve00001', 'S0000003', 'eve@example.com')) t(anonymous_id, shop_customer_id, email_canonical)""")
    con.execute("""CREATE TABLE raw.shop_customers AS SELECT * FROM (VALUES
        ('S0000001', 'cait@example.com', 'Daniel', 'Moss'), ('S0000002', 'cait@example.com', 'Cait', 'Park'),
        ('S0000003', 'cait@example.com', 'Eve', 'Hart')) t(customer_id, email, first_name, last_name)""")
    con.execute("""CREATE TABLE marts.dim_customers AS SELECT * FROM (VALUES ('cus_dan', 'Dan'), ('cus_dan_shop',
        'Daniel'), ('cus_cait', 'Cait'), ('cus_eve', 'Eve'), ('cus_roe', 'Dan')) t(customer_id, first_name)""")


@pytest.fixture
def con():
    c = duckdb.connect()
    _world(c)
    yield c
    c.close()


def test_a_shop_account_with_a_household_mailbox_is_found_by_name_and_address(con):
    sub = resolve_subject(con, {"email": ["dan@example.com"]})
    assert {"crm:C0000001", "shop:S0000001"} <= set(sub.record_keys)
    assert "cus_dan_shop" in sub.customer_ids  # S0000001 is a customer of its own: all of it is Dan's
    # Neither Cait's account (the same mailbox, another name and place) nor the namesake elsewhere.
    assert not {"shop:S0000002", "shop:S0000003", "crm:C0000004"} & set(sub.record_keys)
    assert not {"cus_cait", "cus_eve", "cus_roe"} & set(sub.customer_ids)


def test_the_record_goes_but_not_a_customer_that_holds_someone_else():
    c = duckdb.connect()
    _world(c, s1_customer="cus_cait")  # S0000001 linked to Cait's customer by the mailbox
    sub = resolve_subject(c, {"email": ["dan@example.com"]})
    assert "shop:S0000001" in sub.record_keys and "cus_cait" not in sub.customer_ids
    cat = [PiiColumn("raw", "shop_customers", "customer_id", "identifier", "test"),
           PiiColumn("marts", "dim_customers", "customer_id", "identifier", "test")]
    erase_warehouse(c, [sub], EraseReport("r1"), cat=cat)
    assert [r[0] for r in c.execute("SELECT customer_id FROM raw.shop_customers ORDER BY 1").fetchall()] == ["S0000002", "S0000003"]
    assert ("cus_cait",) in c.execute("SELECT customer_id FROM marts.dim_customers").fetchall()


def test_the_persons_own_login_ties_a_shop_account_to_their_email(con):
    sub = resolve_subject(con, {"email": ["eve@example.com"]})
    assert sub.record_keys == ("shop:S0000003",) and sub.customer_ids == ("cus_eve",)


def _truth(tmp_path):
    people = pd.DataFrame({
        "person_id": ["P1", "P2", "P3"], "first_name": ["Ann", "Annabel", "Cy"], "last_name": ["Lee", "Lee", "Oh"],
        "email": ["ann@example.com", "annabel@example.com", "cy@example.com"], "work_email": [None, None, None],
        "phone": ["4155550100", None, None]})
    records = pd.DataFrame({"record_id": ["C0000001", "S0000002", "anon-ann00001", "anon-ann00002", "S0000003"],
                            "person_id": ["P1", "P2", "P1", "P1", "P3"],
                            "source": ["crm_contacts", "shop_customers", "web_events", "web_events", "shop_customers"]})
    truth = tmp_path / "truth"
    truth.mkdir()
    people.to_parquet(truth / "people.parquet")
    records.to_parquet(truth / "record_map.parquet")
    day = tmp_path / "landing" / "2026-01-01"
    day.mkdir(parents=True)
    (day / "crm_contacts.csv").write_text("contact_id,email,phone,first_name,last_name,street,postal_code\n"
                                          "C0000001,ann@example.com,,Ann,Lee,5 Main St,94110\n")
    # Annabel's shop record spells her first name "Ann": Ann Lee's namesake at record level. Cy's shop account
    # carries no e-mail or phone of his.
    (day / "shop_customers.csv").write_text("customer_id,email,phone,first_name,last_name,address_line1,zip\n"
                                            "S0000002,annabel@example.com,,Ann,Lee,8 High St,10001\n"
                                            "S0000003,,,Cy,Oh,3 Low Rd,60601\n")
    events = [{"anonymousId": "anon-ann00001", "type": "identify", "userId": None,
               "traits": {"email": "ann@example.com"}},
              {"anonymousId": "anon-ann00002", "type": "page", "userId": None, "traits": None}]
    (day / "web_events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return truth, tmp_path / "landing"


def test_the_scan_leaves_out_a_namesakes_record_and_what_nothing_ties_to_the_request(tmp_path):
    truth, landing = _truth(tmp_path)
    t = targets(truth, landing, ["P1", "P3"], named={"P1": {"email": ["ann@example.com"]},
                                                     "P3": {"email": ["cy@example.com"]}})
    # Ann's identified visitor and her CRM contact are looked for; the visitor that never identified is not.
    assert {"c0000001": "P1", "anon-ann00001": "P1"}.items() <= t.ids.items()
    assert t.unlinked.ids == {"anon-ann00002": "P1", "s0000003": "P3"}
    # "Ann Lee" is carried by Annabel's record too: a namesake, not looked for; Cy's name is only on a record that
    # nothing ties to his request.
    assert ("ann", "lee") not in t.names and t.unlinked.names_shared == {("ann", "lee"): "P1"}
    assert t.unlinked.names_unlinked == {("cy", "oh"): "P3"}
    assert find("Ann Lee, ann@example.com", t) == {("P1", "email", "ann@example.com")}
    # Without the requests, every id is looked for (the scan as before).
    every = targets(truth, landing, ["P1", "P3"])
    assert {"anon-ann00002", "s0000003"} <= set(every.ids) and not every.unlinked.ids


def test_an_id_the_request_names_is_looked_for_even_when_nothing_else_ties_it(tmp_path):
    truth, landing = _truth(tmp_path)
    t = targets(truth, landing, ["P1"], named={"P1": {"email": ["ann@example.com"],
                                                      "anonymous_id": ["anon-ann00002"]}})
    assert t.ids.get("anon-ann00002") == "P1" and not t.unlinked.ids


def test_a_swapped_name_is_a_namesake_too(tmp_path):
    # A row of Kelly Morgan's "Kelly | Morgan | kelly | morgan" reads "morgan kelly": Morgan Kelly's name is not
    # looked for.
    truth, landing = _truth(tmp_path)
    people = pd.read_parquet(truth / "people.parquet")
    people.loc[people.person_id == "P2", ["first_name", "last_name"]] = ["Lee", "Ann"]
    people.to_parquet(truth / "people.parquet")
    t = targets(truth, landing, ["P1"], named={"P1": {"email": ["ann@example.com"]}})
    assert ("ann", "lee") not in t.names and ("ann", "lee") in t.unlinked.names_shared


def test_planted_ids_are_ground_truth(tmp_path):
    truth, landing = _truth(tmp_path)
    day = landing / "2026-01-01"
    (day / "collected_events-x.jsonl").write_text(json.dumps(
        {"anonymousId": "anon-svc0001-p3", "type": "identify", "traits": {"email": "cy@example.com"}}) + "\n")
    t = targets(truth, landing, ["P3"], named={"P3": {"email": ["cy@example.com"]}},
                planted={"anon-svc0001-p3": "P3"})
    assert t.ids.get("anon-svc0001-p3") == "P3"
