"""Score every customer with the champion lead model and write the scores to the warehouse."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from beacon.warehouse import ensure_scores_table
from ml import features, registry
from ml.train import MODEL_NAME, deciles


def score_customers(con: duckdb.DuckDBPyConnection, registry_dir: Path) -> dict:
    """Replace this model's rows in ml.scores with today's scores (idempotent per as-of date)."""
    version, booster, meta = registry.load_champion(registry_dir, MODEL_NAME)
    end = features.as_of(con)
    X = features.build(con, end)
    p = booster.predict(X[meta["features"]], num_iteration=meta.get("best_iteration") or None)
    out = pd.DataFrame({
        "customer_id": X.customer_id, "model": MODEL_NAME, "version": version, "score": p.round(6),
        "decile": deciles(p), "scored_at": pd.Timestamp(end),
    })
    ensure_scores_table(con)
    con.register("_scores", out)
    con.execute("BEGIN TRANSACTION")
    con.execute("DELETE FROM ml.scores WHERE model = ?", [MODEL_NAME])
    con.execute("INSERT INTO ml.scores SELECT * FROM _scores")
    con.execute("COMMIT")
    con.unregister("_scores")
    return {"model": MODEL_NAME, "version": version, "rows": len(out), "scored_at": str(end),
            "mean_score": round(float(p.mean()), 4)}
