"""What the Beacon page shows, computed by the warehouse writer and published as one JSON file.

The page never opens the warehouse: DuckDB allows one writer, and a reader in another process would hold
the file and make a running DAG task wait. The activation DAG's last task (in the `duckdb_writer` pool)
computes this snapshot and replaces the file atomically; the page reads the file.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from beacon.audiences import discover
from beacon.config import Settings, settings
from beacon.quality.breaker import breaker_state
from beacon.warehouse import table_exists

SAMPLE_SIZE = 10
MODELS = ("lead_score", "churn", "ltv")


def snapshot_path(s: Settings | None = None) -> Path:
    s = s or settings()
    return s.data_dir / "ui" / "beacon_page.json"


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _plain(v):
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    return v


def audience_section(con: duckdb.DuckDBPyConnection, manifest: Path) -> list[dict]:
    """Per audience: size over time, the latest delivery per destination (members, held out, suppressed by
    reason), and a sample of members with the row that qualified them and their lead-score reason codes."""
    out = []
    has_events = table_exists(con, "audiences", "membership_events")
    has_runs = table_exists(con, "activation", "sync_runs")
    has_scores = table_exists(con, "ml", "scores")
    for a in sorted(discover(manifest), key=lambda a: (-a.priority, a.name)):
        schema, table = a.relation.split(".", 1)
        size = con.execute(f"SELECT count(*) FROM {a.relation}").fetchone()[0] if table_exists(con, schema, table) \
            else None
        history = []
        if has_events:
            history = _rows(con, """
                SELECT as_of, sum(count(*) FILTER (WHERE change = 'entered') - count(*) FILTER (WHERE change = 'exited'))
                       OVER (ORDER BY as_of) AS size
                FROM audiences.membership_events WHERE audience = ? GROUP BY as_of ORDER BY as_of""", [a.name])
        deliveries = []
        if has_runs:
            deliveries = _rows(con, """
                SELECT destination, status, finished_at, source_rows AS members, delivered, adds, updates, removes,
                       held_out, invalid, suppressed, message
                FROM activation.sync_runs WHERE audience = ?
                QUALIFY row_number() OVER (PARTITION BY destination ORDER BY started_at DESC) = 1
                ORDER BY destination""", [a.name])
            for d in deliveries:
                d["suppressed"] = json.loads(d["suppressed"] or "{}")
        sample = []
        if has_events:
            score = ("LEFT JOIN ml.scores s ON s.customer_id = m.customer_id AND s.model = 'lead_score'"
                     if has_scores else "")
            cols = ", s.score, s.reason_1, s.reason_2, s.reason_3" if has_scores else ""
            email = ("LEFT JOIN marts.dim_customers c ON c.customer_id = m.customer_id"
                     if table_exists(con, "marts", "dim_customers") else "")
            sample = _rows(con, f"""
                SELECT m.customer_id, {'c.email' if email else 'NULL'} AS email, m.as_of AS entered_on,
                       m.qualifying::VARCHAR AS qualifying {cols}
                FROM audiences.membership_events m {score} {email}
                WHERE m.audience = ? AND m.change = 'entered'
                  AND m.customer_id IN (SELECT customer_id FROM {a.relation})
                ORDER BY m.as_of DESC, m.customer_id LIMIT {SAMPLE_SIZE}""", [a.name]) if size else []
            for r in sample:
                q = json.loads(r.pop("qualifying") or "{}")
                r["qualifying"] = {k: v for k, v in q.items() if k not in ("customer_id", "email")}
                r["reasons"] = [r.pop(k) for k in ("reason_1", "reason_2", "reason_3") if r.get(k)]
        out.append({"name": a.name, "description": a.description, "owner": a.owner, "channels": list(a.channels),
                    "priority": a.priority, "holdout_pct": a.holdout_pct, "size": size, "history": history,
                    "deliveries": deliveries, "sample": sample})
    return out


def overlaps(con: duckdb.DuckDBPyConnection, manifest: Path) -> list[dict]:
    """People in both audiences, for every pair that shares anyone."""
    rels = {a.name: a.relation for a in discover(manifest) if table_exists(con, *a.relation.split(".", 1))}
    if len(rels) < 2:
        return []
    union = " UNION ALL ".join(f"SELECT DISTINCT '{n}' AS audience, customer_id FROM {r}" for n, r in rels.items())
    return _rows(con, f"""WITH m AS ({union})
        SELECT a.audience AS a, b.audience AS b, count(*) AS people FROM m a JOIN m b
        ON a.customer_id = b.customer_id AND a.audience < b.audience GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2""")


def model_health(con: duckdb.DuckDBPyConnection, registry: Path) -> list[dict]:
    """Each champion: version, holdout metric, latest drift state, fairness flags."""
    out = []
    for name in MODELS:
        pointer = registry / name / "CHAMPION"
        if not pointer.exists():
            continue
        version = pointer.read_text().strip()
        meta = json.loads((registry / name / version / "metadata.json").read_text())
        metric = meta.get("primary_metric", "roc_auc")
        drift = fair = None
        if table_exists(con, "ml", "drift"):
            drift = con.execute("SELECT arg_max(state, as_of), max(psi) FILTER (WHERE as_of = (SELECT max(as_of) "
                                "FROM ml.drift WHERE model = ?)) FROM ml.drift WHERE model = ?", [name, name]).fetchone()
        if table_exists(con, "ml", "fairness"):
            fair = con.execute("SELECT count(*) FILTER (WHERE flagged) FROM ml.fairness WHERE model = ? AND as_of = "
                               "(SELECT max(as_of) FROM ml.fairness WHERE model = ?)", [name, name]).fetchone()[0]
        out.append({"model": name, "version": version, "metric": metric,
                    "value": meta.get("metrics", {}).get(metric), "trained_rows": meta.get("train_rows"),
                    "drift_state": drift[0] if drift else None, "max_psi": drift[1] if drift else None,
                    "fairness_flags": fair})
    return out


def journeys_section(con: duckdb.DuckDBPyConnection, journeys: list | None = None) -> list[dict] | None:
    """Per journey (the project's files unless `journeys` is given): its flow (each node in order, where it
    leads, the people there now, sends and skips), exits by reason, goals and the last run; None before the
    journeys DAG has run. Counts only: no person."""
    if not table_exists(con, "journeys", "transitions"):
        return None
    from beacon.journeys.api import load, status
    from beacon.journeys.model import successors

    out = []
    for j in journeys if journeys is not None else [x.journey for x in load(strict=False).journeys]:
        st = status(con, j.name, j)
        here: dict[str, int] = {}
        for r in st["per_node"]:  # every version's people, on the node of the same id
            here[r["node_id"]] = here.get(r["node_id"], 0) + int(r["people"])
        sends: dict[str, dict[str, int]] = {}
        for r in st["sends"]:
            sends.setdefault(r["node_id"], {}).setdefault(r["transition"], 0)
            sends[r["node_id"]][r["transition"]] += int(r["n"])
        last = st["runs"][0] if st["runs"] else None
        out.append({
            "journey": j.name, "version": j.version, "enabled": j.enabled, "entry": j.entry.kind,
            "in_flight": st["in_flight"], "exits": st["exits"], "goals": st["goals"],
            "goal": j.goal.event if j.goal else None,
            "nodes": [{"id": n.id, "type": n.type, "next": [t for t in successors(n) if t], "people": here.get(n.id, 0),
                       "sent": sends.get(n.id, {}).get("sent", 0), "skipped": sends.get(n.id, {}).get("skipped", 0),
                       "deferred": sends.get(n.id, {}).get("deferred", 0)} for n in j.nodes],
            "last_run": {"clock": last["clock"], "status": last["status"]} if last else None,
            "experiments": [{k: x[k] for k in ("node", "metric", "state", "winner", "breached", "decided_at", "reason",
                                               "arms")} for x in st["experiments"]]})
    return out


RESULT_FIELDS = ("outcome", "arm", "binary", "n_arm", "n_control", "mean_arm", "mean_control", "abs_lift", "abs_low",
                 "abs_high", "rel_lift", "rel_low", "rel_high", "p_value", "significant", "verdict")


def results_section(con: duckdb.DuckDBPyConnection) -> list[dict] | None:
    """The latest lift results (measurement.lift_results, written by the activation DAG's measure task): per
    audience or journey and arm, each outcome with its 95% interval and the plain sentence; None before any."""
    if not table_exists(con, "measurement", "lift_results"):
        return None
    rows = con.execute("""SELECT campaign, window_days, result, srm FROM measurement.lift_results
        WHERE computed_at = (SELECT max(computed_at) FROM measurement.lift_results) ORDER BY campaign""").fetchall()
    if not rows:
        return None
    out: dict[str, dict] = {}
    for campaign, window, result, srm in rows:
        r = json.loads(result)
        c = out.setdefault(campaign, {"campaign": campaign, "window_days": window, "srm": json.loads(srm or "null"),
                                      "results": []})
        c["results"].append({k: r.get(k) for k in RESULT_FIELDS})
    return list(out.values())


def build(con: duckdb.DuckDBPyConnection, s: Settings | None = None) -> dict:
    """The whole page's data, from one warehouse connection."""
    s = s or settings()
    gate = breaker_state(con)
    as_of = (con.execute("SELECT as_of_at FROM marts.warehouse_as_of").fetchone()[0]
             if table_exists(con, "marts", "warehouse_as_of") else None)
    data = {
        "published_at": datetime.now().replace(microsecond=0),  # when, not a window: wall clock is right here
        "warehouse_as_of": as_of,
        "breaker": {"open": gate.open, "failures": gate.failures, "warnings": gate.warnings},
        "audiences": audience_section(con, s.manifest_path),
        "overlaps": overlaps(con, s.manifest_path),
        "models": model_health(con, s.registry_dir),
        "journeys": journeys_section(con),
        "measurement": results_section(con),
    }
    return json.loads(json.dumps(data, default=_plain))


def publish(con: duckdb.DuckDBPyConnection, s: Settings | None = None) -> Path:
    """Compute the snapshot and replace the page's file atomically (a reader sees the old or the new one)."""
    s = s or settings()
    path = snapshot_path(s)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(build(con, s), indent=1))
    os.replace(tmp, path)
    return path


def load(s: Settings | None = None) -> dict | None:
    """The published snapshot, or None before the first activation run."""
    path = snapshot_path(s)
    return json.loads(path.read_text()) if path.exists() else None


def privacy_requests(s: Settings | None = None) -> list[dict]:
    """Every privacy request's status, newest first, from the files the processing publishes and the queue (ids,
    kinds, statuses, dates and counts: never an identifier)."""
    from beacon.privacy.queue import PRIVACY_DIR, public_status, queued

    s = s or settings()
    if "://" in str(s.landing_dir):
        return []
    out = {r.request_id: public_status(r, "accepted") for r in queued(s.landing_dir)}
    for f in sorted((Path(s.landing_dir) / PRIVACY_DIR / "status").glob("pr-*.json")):
        doc = json.loads(f.read_text())
        out[doc["request_id"]] = doc
    keep = ("request_id", "kind", "status", "accepted_at", "due_at", "completed_at", "error")
    return sorted(({k: d.get(k) for k in keep} for d in out.values()), key=lambda d: d["accepted_at"], reverse=True)
