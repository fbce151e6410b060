"""The PII catalog itself: every tag is a known kind, the three sources merge, conflicts and bad kinds are errors
naming where they were declared, and the locator counts a person's rows per tagged column."""

from __future__ import annotations

import duckdb
import pytest

from beacon.ingest.errors import IngestError
from beacon.ingest.spec import load_specs
from beacon.privacy import KINDS, catalog, locate
from beacon.privacy.catalog import REGISTRY, CatalogError, PiiColumn, from_manifest, from_registry, merge


@pytest.fixture(scope="module")
def cat(manifest):
    return catalog(manifest)


def test_every_tag_is_a_known_kind_and_every_source_contributes(cat):
    assert KINDS == ("email", "phone", "name", "address", "birth_date", "ip", "free_text", "identifier")
    assert cat and all(c.kind in KINDS for c in cat)
    origins = {c.declared_in.split(":")[0] for c in cat}
    assert origins == {"dbt", "sources.yml", "registry"}
    by = {(c.relation, c.column): c.kind for c in cat}
    assert by[("marts.dim_customers", "email")] == "email"
    assert by[("marts.dim_customers", "customer_id")] == "identifier"
    assert by[("marts.dim_customers", "birth_date")] == "birth_date"
    assert by[("staging.stg_shop__customers", "shop_customer_id")] == "identifier"
    assert by[("raw.shop_customers", "phone")] == "phone"
    assert by[("raw.collected_events", "payload")] == "free_text"
    assert by[("ml.scores", "customer_id")] == "identifier"
    assert by[("journeys.transitions", "customer_id")] == "identifier"
    assert len(by) == len(cat), "one entry per column"


def test_every_model_column_named_like_personal_data_is_tagged(manifest):
    """A cheap guard beside the scan test: the obvious names are tagged in every model's YAML."""
    import json

    doc = json.loads(manifest.read_text())
    tagged = {(c.relation, c.column) for c in from_manifest(doc)}
    obvious = {"email", "phone_e164", "first_name", "last_name", "customer_id", "anonymous_id", "birth_date"}
    missing = [f"{n['schema']}.{n['name']}.{col}" for n in doc["nodes"].values() if n["resource_type"] == "model"
               for col in n["columns"] if col in obvious and (f"{n['schema']}.{n['name']}", col) not in tagged]
    assert not missing, missing


def test_a_bad_kind_is_an_error_naming_where(tmp_path):
    doc = {"nodes": {"model.beacon.m": {"resource_type": "model", "schema": "marts", "name": "m", "alias": "m",
                                        "columns": {"mail": {"meta": {"pii": "e-mail"}}}}}}
    with pytest.raises(CatalogError, match=r"model\.beacon\.m, column mail: unknown pii kind 'e-mail'"):
        from_manifest(doc)
    with pytest.raises(CatalogError, match="registry ml.x.c: unknown pii kind 'secret'"):
        from_registry({"ml.x": {"c": "secret"}})
    bad = tmp_path / "sources.yml"
    bad.write_text("sources:\n  x:\n    file: x.csv\n    format: csv\n    key: [id]\n    columns:\n"
                   "      id: {type: varchar, pii: mail}\n")
    with pytest.raises(IngestError, match="x, column id: unknown pii kind 'mail'"):
        load_specs(bad)
    bad.write_text("sources:\n  x:\n    file: x.csv\n    format: csv\n    key: [id]\n    columns:\n"
                   "      id: {type: varchar, pi: email}\n")
    with pytest.raises(IngestError, match="x, column id: unknown field"):
        load_specs(bad)


def test_config_meta_is_read_and_conflicting_declarations_fail():
    doc = {"nodes": {"model.beacon.m": {"resource_type": "model", "schema": "marts", "name": "m", "alias": "m",
                                        "columns": {"mail": {"config": {"meta": {"pii": "email"}}, "meta": {}},
                                                    "n": {"meta": {}}}}}}
    assert from_manifest(doc) == [PiiColumn("marts", "m", "mail", "email", "dbt:model.beacon.m")]
    a = PiiColumn("raw", "t", "c", "email", "sources.yml")
    assert merge([a, a]) == [a]
    with pytest.raises(CatalogError, match="raw.t.c: tagged 'email' in sources.yml but 'phone' in registry"):
        merge([a, PiiColumn("raw", "t", "c", "phone", "registry")])


def test_registry_tables_are_schema_qualified():
    assert all("." in rel for rel in REGISTRY)
    with pytest.raises(CatalogError, match="not schema.table"):
        from_registry({"scores": {"customer_id": "identifier"}})


def _small_warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts; CREATE SCHEMA logs")
    con.execute("""CREATE TABLE marts.people AS SELECT * FROM (VALUES
        ('c1', ' Ann@Example.com', '+1 415 555 0100', 'Ann'), ('c2', 'bob@example.com', '(212) 555-0199', 'Bob'),
        ('c3', 'ann@example.com', '415.555.0100', 'Ann')) t(customer_id, email, phone, first_name)""")
    con.execute("""CREATE TABLE logs.sent AS SELECT * FROM (VALUES
        ('c1', '{"to": "ANN@example.com"}'), ('c2', '{"to": "bob@example.com"}'), ('c1', NULL)) t(customer_id, body)""")
    con.execute("CREATE VIEW marts.people_v AS SELECT customer_id FROM marts.people")
    return con


CAT = [PiiColumn("marts", "people", "customer_id", "identifier", "registry"),
       PiiColumn("marts", "people", "email", "email", "registry"),
       PiiColumn("marts", "people", "phone", "phone", "registry"),
       PiiColumn("marts", "people", "first_name", "name", "registry"),
       PiiColumn("marts", "people_v", "customer_id", "identifier", "registry"),
       PiiColumn("logs", "sent", "customer_id", "identifier", "registry"),
       PiiColumn("logs", "sent", "body", "free_text", "registry"),
       PiiColumn("logs", "absent", "customer_id", "identifier", "registry"),  # a store not created yet
       PiiColumn("marts", "people", "gone", "email", "registry")]  # a column not there: skipped


def test_locate_counts_rows_per_tagged_column_by_kind():
    con = _small_warehouse()
    hits = {(h.relation, h.column): (h.kind, h.rows, h.is_view)
            for h in locate(con, customer_ids=["c1"], identifiers=["ann@example.com", "4155550100"], cat=CAT)}
    assert hits == {
        ("marts.people", "customer_id"): ("identifier", 1, False),
        ("marts.people", "email"): ("email", 2, False),  # case and spaces do not matter
        ("marts.people", "phone"): ("phone", 2, False),  # the same digits in any format
        ("marts.people_v", "customer_id"): ("identifier", 1, True),
        ("logs.sent", "customer_id"): ("identifier", 2, False),
        ("logs.sent", "body"): ("free_text", 1, False),  # the document contains the address
    }


def test_locate_reports_empty_columns_on_request_and_needs_a_value():
    con = _small_warehouse()
    hits = locate(con, customer_ids=["nobody"], cat=CAT, include_empty=True)
    assert {(h.relation, h.column) for h in hits} == {("marts.people", "customer_id"), ("marts.people_v", "customer_id"),
                                                       ("logs.sent", "customer_id"), ("logs.sent", "body")}
    assert all(h.rows == 0 for h in hits)
    with pytest.raises(ValueError, match="at least one"):
        locate(con, [], [], cat=CAT)


def test_locate_quotes_values_and_names():
    con = duckdb.connect()
    con.execute("""CREATE SCHEMA "odd schema"; CREATE TABLE "odd schema"."t t" ("e mail" VARCHAR)""")
    con.execute("""INSERT INTO "odd schema"."t t" VALUES ('o''neil@example.com'), ('x@example.com')""")
    cat = [PiiColumn("odd schema", "t t", "e mail", "email", "registry")]
    assert [h.rows for h in locate(con, [], ["O'Neil@example.com"], cat=cat)] == [1]
    assert locate(con, [], ["x' OR '1'='1"], cat=cat) == []
