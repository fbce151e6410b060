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
