"""Identity engine at scale: train on a sample, store the model, then predict + cluster all CRM + shop records.

    flock /tmp/beacon-heavy.lock .venv/bin/beacon bench identity --world /tmp/beacon-1m-world --json
    (the world comes from `beacon generate --people 1000000 --out /tmp/beacon-1m-world`)

Reports records, seconds per step (prepare, train, predict, cluster) and pairwise scores against truth/.
Emails are canonicalized by the staging models' own dbt macro (beacon.emails); E.164 phones by a SQL shortcut.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pandas as pd

from beacon.emails import macro_sql
from beacon.identity.linker import LinkageConfig, TrainedModel, cluster, predict_pairs, train
from beacon.identity.metrics import pairwise_scores

_EMAIL = macro_sql("canonical_email", "email")
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


def doubled(df: pd.DataFrame, truth: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
    """The records plus a second population of as many people, for timing at twice the size: surnames and streets
    mapped through fixed permutations of their value lists, birth years +3, email local parts and phone subscriber
    numbers reversed; its duplicates still match each other and it copies no identifier of the first."""
    names = pd.Series(sorted(df.last_name.dropna().unique()))
    shift = dict(zip(names, names.sample(frac=1.0, random_state=7), strict=True))
    two = df.copy()
    two["record_id"] = two.record_id + "~2"
    two["last_name"] = two.last_name.map(shift)
    parts = two.email_canonical.str.partition("@")
    two["email_canonical"] = (parts[0].str[::-1] + "@" + parts[2]).where(two.email_canonical.notna())
    phone = two.phone_e164
    two["phone_e164"] = (phone.str[:5] + phone.str[5:].str[::-1]).where(phone.notna())
    streets = pd.Series(sorted(df.street.dropna().unique()))
    two["street"] = two.street.map(dict(zip(streets, streets.sample(frac=1.0, random_state=8), strict=True)))
    year = pd.to_numeric(two.birth_date.str[:4], errors="coerce")
    two["birth_date"] = ((year + 3).astype("Int64").astype(str) + two.birth_date.str[4:]).where(year.notna())
    return pd.concat([df, two], ignore_index=True), pd.concat([truth, truth + "~2"], ignore_index=True)


def _timed_runs(df: pd.DataFrame, model: TrainedModel, repeat: int) -> tuple[list[dict], pd.DataFrame]:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        pairs = predict_pairs(df, model, id_col="record_id")
        predict_s = time.perf_counter() - t
        t = time.perf_counter()
        clusters = cluster(df.record_id, pairs, model.config.cluster_threshold)
        runs.append({"predict_s": round(predict_s, 2), "cluster_s": round(time.perf_counter() - t, 2),
                     "pairs": len(pairs)})
    return runs, clusters


def _median_total(runs: list[dict]) -> float:
    totals = sorted(r["predict_s"] + r["cluster_s"] for r in runs)
    return round(totals[len(totals) // 2], 2)


def bench_identity(world: Path, limit: int | None = None, threads: int = 2, repeat: int = 3,
                   model_out: Path | None = None, doubled_run: bool = True) -> dict:
    """Prepare, train, store and reload the model, then `repeat` predict + cluster runs scored against truth/;
    with `doubled_run`, one more run on twice the records (a second population, see doubled())."""
    t = time.perf_counter()
    df = load_people(Path(world), limit)
    prepare_s = time.perf_counter() - t
    truth = df.pop("person_id")
    cfg = LinkageConfig(threads=threads)
    t = time.perf_counter()
    model = train(df, id_col="record_id", config=cfg)
    train_s = time.perf_counter() - t
    text = model.to_json()
    if model_out:
        Path(model_out).write_text(text)
    stored = TrainedModel.from_json(text)
    runs, clusters = _timed_runs(df, stored, repeat)
    s = pairwise_scores(clusters.cluster_id.to_numpy(), truth.to_numpy())
    out = {"records": len(df), "threads": threads, "prepare_s": round(prepare_s, 2), "train_s": round(train_s, 2),
           "runs": runs, "median_predict_plus_cluster_s": _median_total(runs), "roles": stored.roles,
           "scores": s.to_dict()}
    if doubled_run:
        df2, truth2 = doubled(df, truth)
        runs2, clusters2 = _timed_runs(df2, stored, 1)
        s2 = pairwise_scores(clusters2.cluster_id.to_numpy(), truth2.to_numpy())
        out["doubled"] = {"records": len(df2), "runs": runs2, "predict_plus_cluster_s": _median_total(runs2),
                          "scores": s2.to_dict()}
    return out
