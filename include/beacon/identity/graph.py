"""The identity graph of one resolution run: which records it must cluster again, their connected components, and
the size of every cluster (for the guards).

Nodes are person records and, on an incremental run, each existing customer; edges are the run's links (all of them
touching a new or changed record) and each record's edge to its previous customer. A component with no link and no
new or changed record is one existing customer with its records, unchanged: it gets no event. So an incremental run
clusters only the *affected* records (new or changed, linked this run, or of a customer one of those belongs to) and
counts the others' clusters from their customer ids; the events are those of clustering every record
(tests/identity/test_identity_resolve.py compares both).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd


def mark_affected(con: duckdb.DuckDBPyConnection, incremental: bool) -> None:
    """`_affected`: the records of `_records` whose customer can change this run (all of them on a full run).

    Incremental: the new or changed records, the records linked this run (`_edges`), and every record of an existing
    customer one of those belongs to (a component is closed under both kinds of edge, so nothing else can join)."""
    if not incremental:
        con.execute("CREATE OR REPLACE TEMP VIEW _affected AS SELECT * FROM _records")
        return
    con.execute("""CREATE OR REPLACE TEMP TABLE _touched AS
        SELECT DISTINCT prev_customer_id AS customer_id FROM _records
        WHERE prev_customer_id IS NOT NULL
          AND (is_delta OR record_key IN (SELECT k1 FROM _edges UNION SELECT k2 FROM _edges))""")
    con.execute("""CREATE OR REPLACE TEMP TABLE _affected AS
        SELECT * FROM _records WHERE is_delta OR prev_customer_id IN (SELECT customer_id FROM _touched)""")


def components(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Connected components over the affected records, the run's edges and each record's previous customer."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    con.execute("""CREATE OR REPLACE TEMP TABLE _nodes AS
        SELECT node, (row_number() OVER (ORDER BY node) - 1)::BIGINT AS i FROM (
            SELECT record_key AS node FROM _affected
            UNION SELECT 'customer:' || prev_customer_id FROM _affected WHERE prev_customer_id IS NOT NULL)""")
    n = con.execute("SELECT count(*) FROM _nodes").fetchall()[0][0]
    e = con.execute("""
        SELECT a.i AS src, b.i AS dst FROM _edges x JOIN _nodes a ON a.node = x.k1 JOIN _nodes b ON b.node = x.k2
        UNION ALL
        SELECT a.i, b.i FROM _affected r JOIN _nodes a ON a.node = r.record_key
            JOIN _nodes b ON b.node = 'customer:' || r.prev_customer_id""").fetchnumpy()
    src, dst = np.asarray(e["src"], dtype=np.int64), np.asarray(e["dst"], dtype=np.int64)
    graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    nodes = con.execute("SELECT node, i FROM _nodes ORDER BY i").df()
    nodes["component"] = labels[nodes.i.to_numpy()]
    return nodes[["node", "component"]]


def cluster_sizes(con: duckdb.DuckDBPyConnection, incremental: bool) -> np.ndarray:
    """Records per cluster after this run, every cluster: the affected records' components (`_components_df`) and,
    on an incremental run, each other existing customer with the records it keeps."""
    sizes = con.execute("""SELECT count(*) AS n FROM _components_df c JOIN _affected r ON r.record_key = c.node
                           GROUP BY c.component""").fetchnumpy()["n"]
    if not incremental:
        return np.asarray(sizes, dtype=np.int64)
    kept = con.execute("""SELECT count(*) AS n FROM _records
        WHERE prev_customer_id IS NOT NULL AND NOT is_delta
          AND prev_customer_id NOT IN (SELECT customer_id FROM _touched)
        GROUP BY prev_customer_id""").fetchnumpy()["n"]
    return np.concatenate([np.asarray(sizes, dtype=np.int64), np.asarray(kept, dtype=np.int64)])
