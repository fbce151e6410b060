"""dbt-duckdb plugin: gives dbt's connections the privacy key as the DuckDB variable `beacon_privacy_key`, so the
staging filter `not_erased` (dbt_project/macros/privacy.sql) can hash raw values like the tombstones without the
key ever appearing in compiled SQL, dbt's logs or its artefacts. Listed under `plugins:` in profiles.yml.

With tombstones in the warehouse but no key, every dbt connection is refused: the filter could not hold, and a
model built without it could bring an erased person back."""

from __future__ import annotations

from typing import Any

from beacon.config import settings
from beacon.tombstones import check_key
from beacon.warehouse import table_exists

VARIABLE = "beacon_privacy_key"


def configure(con: Any) -> None:
    """Set the key variable on one DuckDB connection (or cursor), or refuse it as said above."""
    key = settings().privacy_key
    if key:
        con.execute(f"SET VARIABLE {VARIABLE} = ?", [check_key(key)])
    elif table_exists(con, "privacy", "tombstones") and con.execute(
            "SELECT count(*) FROM privacy.tombstones").fetchone()[0]:
        check_key(key)  # raises, naming BEACON_PRIVACY_KEY


try:  # dbt-duckdb plugin: `plugins: [{module: beacon.privacy.dbt_plugin}]` in profiles.yml
    from dbt.adapters.duckdb.plugins import BasePlugin

    class Plugin(BasePlugin):
        """Sets the privacy key on every connection and cursor dbt opens (a cursor does not inherit variables)."""

        def configure_connection(self, conn: Any) -> None:
            configure(conn)

        def configure_cursor(self, cursor: Any) -> None:
            configure(cursor)
except ImportError:  # dbt-duckdb not installed: `configure` still works on its own
    pass
