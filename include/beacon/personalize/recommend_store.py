"""What makes the daily recommendations incremental: the stored item-item model and each customer's input digest.

The model (`ml.recommendation_model`: its version, the clock its recency weights count from, k and the
parameters; `ml.recommendation_items`: the products with their popularity; `ml.recommendation_similarity`: the
non-zero item-item similarities) is kept between runs, so a customer's top k depends only on their own purchases
until the model is trained again. `ml.recommendation_inputs` keeps, per customer, the number and a digest (xor of
row hashes) of the purchase rows their recommendations were computed from; a run recomputes the customers whose
rows differ (new or late orders, a refund, a merge that moved orders between customers) and drops those left with
none. docs/personalization.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from beacon.warehouse import table_exists

# The purchases a customer's recommendations are computed from (the one filter; $statuses, $as_of).
PURCHASES_WHERE = """customer_id IS NOT NULL AND product_id IS NOT NULL AND ordered_at IS NOT NULL
    AND status IN (SELECT unnest($statuses)) AND ordered_at::TIMESTAMP <= $as_of::TIMESTAMP"""


@dataclass(frozen=True)
class StoredModel:
    """The item-item model as the last training left it."""

    version: str
    as_of: datetime
    k: int
    params: dict
    items: pd.Index
    popularity: np.ndarray
    similarity: np.ndarray  # dense items x items


def ensure_tables(con) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS ml")
    con.execute("""CREATE TABLE IF NOT EXISTS ml.recommendations (customer_id VARCHAR, rank INTEGER, product_id VARCHAR,
                   score DOUBLE, model_version VARCHAR)""")
    con.execute("""CREATE TABLE IF NOT EXISTS ml.recommendation_evaluations (as_of TIMESTAMP, model_version VARCHAR,
                   cutoff TIMESTAMP, k INTEGER, test_customers INTEGER, recall_model DOUBLE, recall_popularity DOUBLE,
                   detail JSON)""")
    con.execute("""CREATE TABLE IF NOT EXISTS ml.recommendation_model (model_version VARCHAR, trained_as_of TIMESTAMP,
                   k INTEGER, params JSON, trained_at TIMESTAMP)""")
    con.execute("""CREATE TABLE IF NOT EXISTS ml.recommendation_items (model_version VARCHAR, item_no INTEGER,
                   product_id VARCHAR, popularity DOUBLE)""")
    con.execute("""CREATE TABLE IF NOT EXISTS ml.recommendation_similarity (model_version VARCHAR, item_no INTEGER,
                   neighbour_no INTEGER, similarity DOUBLE)""")
    con.execute("""CREATE TABLE IF NOT EXISTS ml.recommendation_inputs (customer_id VARCHAR, purchases BIGINT,
                   digest UBIGINT)""")


def load_model(con) -> StoredModel | None:
    """The stored model, or None (never trained, or trained before models were kept)."""
    if not table_exists(con, "ml", "recommendation_model"):
        return None
    meta = con.execute("SELECT model_version, trained_as_of, k, params FROM ml.recommendation_model").fetchall()
    if len(meta) != 1:
        return None
    version, as_of, k, params = meta[0]
    items = con.execute("""SELECT product_id, popularity FROM ml.recommendation_items WHERE model_version = ?
                           ORDER BY item_no""", [version]).df()
    sim = con.execute("""SELECT item_no, neighbour_no, similarity FROM ml.recommendation_similarity
                         WHERE model_version = ?""", [version]).df()
    S = np.zeros((len(items), len(items)))
    S[sim.item_no.to_numpy(), sim.neighbour_no.to_numpy()] = sim.similarity.to_numpy()
    return StoredModel(version=version, as_of=pd.Timestamp(as_of).to_pydatetime(), k=int(k), params=json.loads(params),
                       items=pd.Index(items.product_id.astype(str)), popularity=items.popularity.to_numpy(dtype=float),
                       similarity=S)


def save_model(con, m: StoredModel) -> None:
    """Replace the stored model (inside the caller's transaction)."""
    ensure_tables(con)
    rows, cols = np.nonzero(m.similarity)
    items = pd.DataFrame({"model_version": m.version, "item_no": np.arange(len(m.items), dtype=np.int32),
                          "product_id": np.asarray(m.items, dtype=object), "popularity": m.popularity})
    sim = pd.DataFrame({"model_version": m.version, "item_no": rows.astype(np.int32),
                        "neighbour_no": cols.astype(np.int32), "similarity": m.similarity[rows, cols]})
    for t in ("recommendation_model", "recommendation_items", "recommendation_similarity"):
        con.execute(f"DELETE FROM ml.{t}")
    con.execute("INSERT INTO ml.recommendation_model VALUES (?, ?, ?, ?, now())",
                [m.version, m.as_of, m.k, json.dumps(m.params, sort_keys=True)])
    for name, frame in (("recommendation_items", items), ("recommendation_similarity", sim)):
        con.register("_rec_part", frame)
        try:
            con.execute(f"INSERT INTO ml.{name} SELECT * FROM _rec_part")
        finally:
            con.unregister("_rec_part")


def digest_inputs(con, as_of: datetime, statuses: tuple[str, ...]) -> None:
    """Temp table `_rec_inputs(customer_id, purchases, digest)`: every customer's purchase rows now, digested (one
    hash aggregate over the order lines; no join with what was stored)."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _rec_inputs AS
        SELECT customer_id, count(*) AS purchases, bit_xor(hash(product_id, ordered_at::TIMESTAMP)) AS digest
        FROM marts.fct_order_items WHERE {PURCHASES_WHERE} GROUP BY customer_id""",
                {"statuses": list(statuses), "as_of": as_of})


def mark_changed(con, everyone: bool) -> int:
    """Temp table `_rec_changed(customer_id, has_purchases)`: the customers whose digest differs from the stored one,
    who are new, or who have no purchase left (with `everyone`: every customer, stored or current). Their count."""
    changed = "true" if everyone else \
        "p.customer_id IS NULL OR c.customer_id IS NULL OR p.purchases <> c.purchases OR p.digest <> c.digest"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _rec_changed AS
        SELECT coalesce(c.customer_id, p.customer_id) AS customer_id, c.customer_id IS NOT NULL AS has_purchases
        FROM _rec_inputs c FULL JOIN ml.recommendation_inputs p ON p.customer_id = c.customer_id
        WHERE {changed}""")
    return int(con.execute("SELECT count(*) FROM _rec_changed").fetchall()[0][0])


def changed_purchases(con, as_of: datetime, statuses: tuple[str, ...]) -> pd.DataFrame:
    """(customer_id, product_id, ordered_at) of the changed customers' purchases, ordered as `purchases` orders."""
    return con.execute(f"""SELECT customer_id, product_id, ordered_at::TIMESTAMP AS ordered_at
        FROM marts.fct_order_items WHERE {PURCHASES_WHERE}
            AND customer_id IN (SELECT customer_id FROM _rec_changed WHERE has_purchases)
        ORDER BY customer_id, product_id, ordered_at""", {"statuses": list(statuses), "as_of": as_of}).df()


def replace_changed(con, recs: pd.DataFrame, columns: list[str]) -> None:
    """Replace the changed customers' recommendations and input digests (inside the caller's transaction)."""
    con.execute("DELETE FROM ml.recommendations WHERE customer_id IN (SELECT customer_id FROM _rec_changed)")
    con.register("_recs", recs)
    try:
        con.execute(f"INSERT INTO ml.recommendations ({', '.join(columns)}) SELECT {', '.join(columns)} FROM _recs")
    finally:
        con.unregister("_recs")
    con.execute("DELETE FROM ml.recommendation_inputs WHERE customer_id IN (SELECT customer_id FROM _rec_changed)")
    con.execute("""INSERT INTO ml.recommendation_inputs SELECT customer_id, purchases, digest FROM _rec_inputs
                   WHERE customer_id IN (SELECT customer_id FROM _rec_changed)""")


def drop_temp(con) -> None:
    for t in ("_rec_inputs", "_rec_changed"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
