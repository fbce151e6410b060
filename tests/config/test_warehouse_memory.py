"""beacon.warehouse.release_memory: DuckDB gives back what a big query left in its buffer pool and allocator."""

from __future__ import annotations

import psutil

from beacon.config import override_env, settings
from beacon.warehouse import connect, release_memory


def test_release_memory_gives_back_what_a_query_left_and_keeps_the_limit(tmp_path):
    me = psutil.Process()
    with override_env(BEACON_DATA_DIR=str(tmp_path), BEACON_DUCKDB_MEMORY_LIMIT="2GB"), connect() as con:
        con.execute("CREATE TABLE t AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(5000000)")
        limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        con.execute("SELECT s, count(*) FROM t GROUP BY s ORDER BY 2 DESC LIMIT 1").fetchall()
        before = me.memory_info().rss
        release_memory(con)
        after = me.memory_info().rss
        assert before - after > 200 * 2**20, (before, after)  # the group-by's hash tables, kept until now
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == limit  # as connect set it
        assert settings().duckdb_memory_limit == "2GB"
        assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 5_000_000  # nothing lost


def test_dbt_connections_get_the_dbt_memory_limit(tmp_path):
    """dbt-duckdb opens its database through the profile's plugins; Beacon's (beacon.identity.normalize) sets the
    build's limit, BEACON_DBT_MEMORY_LIMIT, instead of DuckDB's default of 80% of the machine's memory."""
    from dbt.adapters.duckdb.credentials import DuckDBCredentials, PluginConfig
    from dbt.adapters.duckdb.environments.local import LocalEnvironment

    creds = DuckDBCredentials(path=str(tmp_path / "w.duckdb"),
                              plugins=[PluginConfig(module="beacon.identity.normalize")])
    with override_env(BEACON_DBT_MEMORY_LIMIT="300MB", BEACON_DUCKDB_MEMORY_LIMIT="2GB"):
        env = LocalEnvironment(creds)
        handle = env.handle()
    try:
        limit = handle.cursor().execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    finally:
        handle.close()
        env.close()
    assert limit == "286.1 MiB"  # 300 MB as DuckDB reports it
    assert settings().dbt_memory_limit is None  # the default, outside the override: DuckDB's own (docs/scale.md)
