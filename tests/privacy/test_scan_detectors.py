"""The scan that checks the PII catalog must itself find personal data and leave the rest alone: a table with one
column per detector and columns that only resemble personal data."""

from __future__ import annotations

import duckdb
from support.pii_scan import World, scan


def test_each_detector_fires_on_its_kind_and_not_on_lookalikes():
    w = World(ids={"cus_00f38cc8bfc92815", "anon-2359da0fd50b", "S4929a88f1d"}, first_names={"ann", "travis"},
              last_names={"lee", "chavez"})
    w.add_phones(["+1 415 405 1838", "602.430.0136"])
    con = duckdb.connect()
    con.execute("CREATE SCHEMA t")
    con.execute("""CREATE TABLE t.x AS SELECT * FROM (VALUES
        ('ann@example.com', '4154051838', 'Ann', '12 Oak St', '{"ip": "203.0.113.171"}', 'cus_00f38cc8bfc92815:email',
         DATE '1980-01-02', '2026-01-19T18:58:44Z', 'SKU-00125', 12345.67, 'shop', '4.1.0', 'fe80::1'),
        ('no mail here', '(602) 430-0136', 'Travis Chavez', '9197 Bryant Parkway', NULL, 'anon-2359da0fd50b',
         DATE '1975-05-27', '2026-04-10 18:54:24', 'SKU-00014', 5551234567, 'crm', '10:07:03', NULL),
        ('x', '2125550100', 'Lee', '4304 Clarke Ter', '{"ip": null}', 'webinar-1',
         NULL, '2025-07-06', 'Widget Pro', 0.5, 'shop', '1.2', 'a::b::c'))
        t(body, phone, who, street, ctx, key, birth_date, seen_at, product, amount, birth_date_source, version, v6)""")
    found = {(f.column, f.detector) for f in scan(con, w)}
    assert found == {("body", "email"), ("phone", "phone"), ("who", "name"), ("street", "address"), ("ctx", "ip"),
                     ("key", "identifier"), ("birth_date", "birth_date"), ("v6", "ip")}
