"""Identity engine at scale: train on a sample, store the model, then predict + cluster all CRM + shop records.

    flock /tmp/beacon-heavy.lock .venv/bin/python bench/bench_identity.py --world /tmp/beacon-1m-world
    (the world comes from `beacon generate --people 1000000 --out /tmp/beacon-1m-world`)

Prints JSON: records, seconds per step (prepare, train, predict, cluster) and pairwise scores against truth/.
The staging normalization of the dbt models (lowercase canonical emails, E.164 phones) is reproduced in SQL here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duckdb

from beacon.identity.linker import LinkageConfig, TrainedModel, cluster, predict_pairs, train
from beacon.identity.metrics import pairwise_scores

_EMAIL = "nullif(regexp_replace(lower(trim(email)), '\\+[^@]*@', '@'), '')"
_PHONE = ("CASE WHEN length(regexp_replace(phone, '[^0-9]', '', 'g')) >= 10 THEN "
          "'+1' || right(regexp_replace(phone, '[^0-9]', '', 'g'), 10) END")


def load_people(world: Path, limit: int | None = None):
    """CRM contacts and shop customers of day 1 as one person frame, with the true person id for scoring."""
    day = sorted(p.name for p in (world / "landing").iterdir())[0]
    land, truth = world / "landing" / day, world / "truth" / day
    con = duckdb.connect()
    lim = f"LIMIT {int(limit)}" if limit else ""
    df = con.execute(f"""
        WITH crm AS (SELECT contact_id AS record_id, first_name, last_name, NULL AS birth_date, street, city, state,
                            postal_code, {_PHONE} AS phone_e164, {_EMAIL} AS email_canonical
                     FROM read_csv('{land}/crm_contacts.csv', all_varchar=true, ignore_errors=true) {lim}),
             shop AS (SELECT customer_id, first_name, last_name, birth_date, address_line1, city, state, zip,
                             {_PHONE}, {_EMAIL}
                      FROM read_csv('{land}/shop_customers.csv', all_varchar=true, ignore_errors=true) {lim}),
             rec AS (SELECT * FROM crm UNION ALL SELECT * FROM shop)
        SELECT rec.*, m.person_id FROM rec JOIN read_parquet('{truth}/record_map.parquet') m USING (record_id)
        WHERE rec.record_id IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY rec.record_id) = 1
    """).df()
    con.close()
    return df


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", required=True)
    ap.add_argument("--limit", type=int, default=None, help="records per source (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="predict+cluster runs with the stored model")
    ap.add_argument("--model-out", default=None, help="where to write the trained model JSON")
    a = ap.parse_args()
    t = time.perf_counter()
    df = load_people(Path(a.world), a.limit)
    prepare_s = time.perf_counter() - t
    truth = df.pop("person_id")
    cfg = LinkageConfig(threads=a.threads)
    t = time.perf_counter()
    model = train(df, id_col="record_id", config=cfg)
    train_s = time.perf_counter() - t
    text = model.to_json()
    if a.model_out:
        Path(a.model_out).write_text(text)
    stored = TrainedModel.from_json(text)
    runs = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        pairs = predict_pairs(df, stored, id_col="record_id")
        predict_s = time.perf_counter() - t
        t = time.perf_counter()
        clusters = cluster(df.record_id, pairs, cfg.cluster_threshold)
        runs.append({"predict_s": round(predict_s, 2), "cluster_s": round(time.perf_counter() - t, 2),
                     "pairs": len(pairs)})
    s = pairwise_scores(clusters.cluster_id.to_numpy(), truth.to_numpy())
    med = sorted(runs, key=lambda r: r["predict_s"] + r["cluster_s"])[len(runs) // 2]
    print(json.dumps({"records": len(df), "threads": a.threads, "prepare_s": round(prepare_s, 2),
                      "train_s": round(train_s, 2), "runs": runs,
                      "median_predict_plus_cluster_s": round(med["predict_s"] + med["cluster_s"], 2),
                      "roles": stored.roles, "scores": s.to_dict()}, indent=2))


if __name__ == "__main__":
    main()
