"""`marts.customer_profile` on a hand-made test or benchmark warehouse, from the dbt model's own SQL.

Test worlds build `marts.dim_customers` by hand (and change it during a test); the engine, best-time and the
template contexts read `marts.customer_profile`. Rather than a second definition of the mart, this renders
`dbt_project/models/marts/customer_profile.sql` (its `ref()`s only) and creates it as a view, so it follows
every later change of `dim_customers`. Missing parents (lead points, lifecycle) stand in empty; the seed is
read from its CSV."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from beacon.config import settings
from beacon.warehouse import sql_literal, table_exists

_REF = re.compile(r"\{\{\s*ref\('([a-z_]+)'\)\s*\}\}")
_EMPTY = {
    "customer_lead_points": "(SELECT NULL::VARCHAR AS customer_id, NULL::INTEGER AS lead_points WHERE false)",
    "customer_lifecycle": "(SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS lifecycle_stage WHERE false)",
}


def _dbt_dir() -> Path:
    d = settings().dbt_project_dir
    return d if (d / "models" / "marts" / "customer_profile.sql").exists() else Path(__file__).parents[3] / "dbt_project"


def profile_sql(con: duckdb.DuckDBPyConnection) -> str:
    """The mart's SELECT with its refs resolved against this warehouse."""
    d = _dbt_dir()
    seed = sql_literal(str(d / "seeds" / "state_time_zones.csv"))

    def relation(m: re.Match) -> str:
        name = m.group(1)
        if name == "state_time_zones":
            return f"read_csv({seed}, header = true, all_varchar = true)"
        if table_exists(con, "marts", name):
            return f"marts.{name}"
        if name in _EMPTY:
            return _EMPTY[name]
        raise ValueError(f"customer_profile reads {name}, which this warehouse does not have")

    sql = _REF.sub(relation, (d / "models" / "marts" / "customer_profile.sql").read_text())
    if "{{" in sql or "{%" in sql:
        raise ValueError("customer_profile.sql has Jinja beyond ref(): build it with dbt")
    return sql


def build_customer_profile(con: duckdb.DuckDBPyConnection) -> None:
    """Create `marts.customer_profile` as a view over this warehouse's `marts.dim_customers`."""
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(f"CREATE OR REPLACE VIEW marts.customer_profile AS {profile_sql(con)}")
