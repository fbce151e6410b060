"""Publish the offers snapshot `beacon serve` answers GET /v1/profiles/{id}/offers from.

One row per lookup key (the customer id, the SHA-256 of the normalized email, each anonymous id identity
resolution linked to the customer) with the customer id, the person's offers as JSON (the audiences they
belong to, highest priority first), the recommended products (`ml.recommendations`, top 5) and `allowed`: false for a person who may not be
personalized (erased, complained, or opted out of `ads`/personalization consent, or of the web channel in the
preference centre). Written to a temporary file and renamed, so the service never reads half a file.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from beacon.activation import preferences
from beacon.audiences import Audience
from beacon.warehouse import sql_literal, table_exists

MAX_OFFERS = 3


def snapshot_path(s) -> Path:
    """Where the pipeline publishes the snapshot and the service reads it by default (<data>/published/)."""
    return Path(s.data_dir) / "published" / "offers.parquet"


def publish_offers(con: duckdb.DuckDBPyConnection, audiences: list[Audience], out: Path) -> int:
    """Write the snapshot from the warehouse's current marts; the number of people in it."""
    preferences.ensure_table(con)
    members = " UNION ALL ".join(
        f"SELECT customer_id, {sql_literal(a.name)} AS offer, {sql_literal(a.priority)} AS priority, "
        f"{sql_literal(a.description)} AS description FROM {a.relation}"
        for a in audiences if table_exists(con, *a.relation.split(".")))
    members = members or ("SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS offer, NULL::INTEGER AS priority, "
                          "NULL::VARCHAR AS description WHERE false")
    scores = ("SELECT customer_id, max(score) AS lead_score FROM ml.scores WHERE model = 'lead_score' GROUP BY 1"
              if table_exists(con, "ml", "scores") else "SELECT NULL::VARCHAR AS customer_id, NULL::DOUBLE AS lead_score "
                                                "WHERE false")
    recs = ("SELECT customer_id, to_json(list(product_id ORDER BY rank) FILTER (WHERE rank <= 5))::VARCHAR AS products "
            "FROM ml.recommendations GROUP BY 1" if table_exists(con, "ml", "recommendations")
            else "SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS products WHERE false")
    anon = ("SELECT anonymous_id AS key, customer_id FROM intermediate.int_web_identities_mapped "
            "WHERE customer_id IS NOT NULL" if table_exists(con, "intermediate", "int_web_identities_mapped")
            else "SELECT NULL::VARCHAR AS key, NULL::VARCHAR AS customer_id WHERE false")
    listed = ("SELECT customer_id FROM activation.suppression_list WHERE reason IN ('erased', 'complained')"
              if table_exists(con, "activation", "suppression_list") else "SELECT NULL::VARCHAR AS customer_id WHERE false")
    consent = ("SELECT customer_id FROM marts.dim_consent WHERE channel = 'ads' AND status = 'opt_out'"
               if table_exists(con, "marts", "dim_consent") else "SELECT NULL::VARCHAR AS customer_id WHERE false")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _offers AS
        WITH m AS ({members}),
        ranked AS (SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY priority DESC, offer) AS rn FROM m),
        sc AS ({scores}),
        people AS (
            SELECT c.customer_id, c.email,
                coalesce(to_json(list({{'offer': r.offer, 'description': r.description, 'priority': r.priority}}
                         ORDER BY r.rn) FILTER (WHERE r.rn <= {MAX_OFFERS}))::VARCHAR, '[]') AS offers
            FROM marts.customer_profile c LEFT JOIN ranked r USING (customer_id)
            GROUP BY c.customer_id, c.email),
        blocked AS ({listed} UNION {consent} UNION
            SELECT customer_id FROM (
                SELECT customer_id, status, row_number() OVER (PARTITION BY customer_id
                    ORDER BY recorded_at DESC, consent_id DESC) AS rn
                FROM activation.preferences WHERE channel = 'web' AND topic IS NULL AND customer_id IS NOT NULL)
            WHERE rn = 1 AND status = 'opt_out')
        SELECT p.customer_id, p.email, p.offers, coalesce(rc.products, '[]') AS recommendations, sc.lead_score,
               p.customer_id NOT IN (SELECT customer_id FROM blocked WHERE customer_id IS NOT NULL) AS allowed
        FROM people p LEFT JOIN sc USING (customer_id) LEFT JOIN ({recs}) rc USING (customer_id)""")
    con.execute(f"""
        COPY (
            SELECT customer_id AS key, customer_id, offers, recommendations, allowed FROM _offers
            UNION ALL
            SELECT sha256(lower(trim(email))), customer_id, offers, recommendations, allowed FROM _offers
            WHERE email IS NOT NULL
            UNION ALL
            SELECT a.key, o.customer_id, o.offers, o.recommendations, o.allowed
            FROM ({anon}) a JOIN _offers o USING (customer_id)
        ) TO {sql_literal(str(tmp))} (FORMAT parquet)""")
    n = con.execute("SELECT count(*) FROM _offers").fetchone()[0]
    con.execute("DROP TABLE _offers")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    return n
