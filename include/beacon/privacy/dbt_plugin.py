"""dbt-duckdb plugin: gives dbt's connections the privacy key as the DuckDB variable `beacon_privacy_key`, so the
staging filter `not_erased` (dbt_project/macros/privacy.sql) can hash raw values like the tombstones without the
key ever appearing in compiled SQL, dbt's logs or its artefacts. Listed under `plugins:` in profiles.yml.

Without a key the variable stays unset; with tombstones in the warehouse, `not_erased` then fails the model with an
error naming BEACON_PRIVACY_KEY (a model built without the filter could bring an erased person back)."""

from __future__ import annotations

from typing import Any

from beacon.config import settings
from beacon.tombstones import check_key

VARIABLE = "beacon_privacy_key"


def configure(con: Any) -> None:
    """Set the key variable on one DuckDB connection (or cursor) when a key is configured."""
    key = settings().privacy_key
    if key:
        con.execute(f"SET VARIABLE {VARIABLE} = ?", [check_key(key)])


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
