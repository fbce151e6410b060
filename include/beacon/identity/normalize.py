"""Normalization that SQL alone does badly: phone numbers (phonenumbers) and first-name nicknames.

dbt calls these as DuckDB functions registered by the dbt-duckdb plugin below (profiles.yml), so the
staging models stay SQL and analysts can read them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import phonenumbers

DEFAULT_REGION = "US"


@lru_cache(maxsize=200_000)
def e164(raw: str | None, region: str = DEFAULT_REGION) -> str | None:
    """A phone number in E.164 (`+14155550123`), or None when phonenumbers finds it invalid."""
    if raw is None or not raw.strip():
        return None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=1)
def _namer():
    from nicknames import NickNamer  # curated nickname <-> given-name table (ships with the package)

    return NickNamer()


@lru_cache(maxsize=100_000)
def name_aliases(first_name: str | None) -> list[str] | None:
    """Every given name this first name can stand for (itself, its canonical names, its nicknames), sorted.

    Two records whose alias lists intersect may name the same person ("Bob" and "Robert")."""
    if first_name is None or not first_name.strip():
        return None
    n = first_name.strip().lower()
    nn = _namer()
    return sorted({n} | set(nn.canonicals_of(n)) | set(nn.nicknames_of(n)))


def register(con: Any) -> None:
    """Register `beacon_e164(varchar)` and `beacon_name_aliases(varchar)` on a DuckDB connection."""
    from duckdb.sqltypes import VARCHAR

    con.create_function("beacon_e164", lambda s: e164(s), [VARCHAR], VARCHAR, null_handling="special", side_effects=False)
    con.create_function("beacon_name_aliases", lambda s: name_aliases(s), [VARCHAR], "VARCHAR[]", null_handling="special",
                        side_effects=False)


try:  # dbt-duckdb plugin: `plugins: [{module: beacon.identity.normalize}]` in profiles.yml
    from dbt.adapters.duckdb.plugins import BasePlugin

    class Plugin(BasePlugin):
        """Registers Beacon's normalization functions on every connection dbt opens and sets the build's memory limit
        (BEACON_DBT_MEMORY_LIMIT); for the profile's `encrypted`
        target, attaches the encrypted warehouse with its key (never written in profiles.yml) before dbt's own
        `ATTACH IF NOT EXISTS` of the same alias, which then does nothing."""

        def configure_connection(self, conn: Any) -> None:
            from beacon.config import settings
            from beacon.warehouse import set_memory_limit

            register(conn)
            # dbt's database gets the build's cap when one is set (else DuckDB's default, 80% of the machine's memory).
            if settings().dbt_memory_limit:
                set_memory_limit(conn, settings().dbt_memory_limit)
            creds = self.creds
            if creds is not None and creds.path == ":memory:" and creds.attach:
                from pathlib import Path

                from beacon.warehouse import KEY_VARS, WarehouseKeyError, attach_encrypted, warehouse_key

                key = warehouse_key()
                if not key:
                    raise WarehouseKeyError(f"dbt target 'encrypted' needs the warehouse key: set {KEY_VARS}")
                for a in creds.attach:
                    if a.alias == creds.database:
                        attach_encrypted(conn, Path(a.path), a.alias, key)
                        self._use = a.alias
                        self.configure_cursor(conn)  # later plugins (privacy) read the warehouse by schema

        def configure_cursor(self, cursor: Any) -> None:
            # The warehouse is the default catalog of every cursor (Python models, macros and the privacy plugin
            # name tables by schema). List this plugin first in profiles.yml.
            alias = getattr(self, "_use", None)
            if alias:
                from beacon.warehouse import quote_ident

                cursor.execute(f"USE {quote_ident(alias)}")
except ImportError:  # dbt-duckdb not installed: the functions above still work on their own
    pass
