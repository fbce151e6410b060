"""Measurement on the warehouse: the global control group, lift per campaign, results in the `measurement` schema.

The assignment and outcome marts are dbt models (`dbt_project/models/measurement/`): `measurement.campaign_exposures`
(one row per campaign and person: arm, sent, exposure time, pre-exposure covariates) and
`measurement.campaign_outcome_events` (orders, clicks, form submits, configured events). This module reads them, counts
outcomes within a window with the dbt macro the mart `measurement.campaign_exposure_outcomes` uses
(`beacon.measure.outcomes`: one definition, one window setting) and the statistics (`beacon.measure.stats`), and writes
`measurement.lift_results`.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

import duckdb
import pandas as pd

from beacon.config import settings
from beacon.measure import stats
from beacon.measure.global_control import global_control_sql, global_period, global_period_bounds
from beacon.measure.outcomes import in_window_sql, warehouse_outcomes
from beacon.warehouse import clock, table_exists

log = logging.getLogger(__name__)

OUTCOMES = ("converted", "revenue", "clicks", "form_submits")
COVARIATES = ("prior_orders_90d", "prior_revenue_90d", "prior_visits_90d")


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS measurement")
    con.execute("""CREATE TABLE IF NOT EXISTS measurement.global_control (
        period INTEGER, customer_id VARCHAR, period_start DATE, period_end DATE, pct DOUBLE, recorded_at TIMESTAMP)""")
    con.execute("""CREATE TABLE IF NOT EXISTS measurement.lift_results (
        computed_at TIMESTAMP, as_of TIMESTAMP, campaign VARCHAR, window_days DOUBLE, outcome VARCHAR, arm VARCHAR,
        result JSON, srm JSON)""")


def refresh_global_control(con: duckdb.DuckDBPyConnection, as_of) -> dict:
    """Record this period's global control members (new people as they appear); earlier periods stay as history."""
    ensure_tables(con)
    s = settings()
    period = global_period(as_of)
    start, end = global_period_bounds(period)
    cond = global_control_sql("c.customer_id", "$pct", "$period")
    con.execute(f"""INSERT INTO measurement.global_control
        SELECT $period, c.customer_id, $start, $end, $pct, $as_of::TIMESTAMP FROM marts.dim_customers c
        WHERE {cond} AND NOT EXISTS (SELECT 1 FROM measurement.global_control g
                                     WHERE g.period = $period AND g.customer_id = c.customer_id)""",
                {"period": period, "start": start, "end": end, "pct": s.global_control_pct, "as_of": str(as_of)})
    return global_control_info(con, as_of)


def global_control_info(con: duckdb.DuckDBPyConnection, as_of) -> dict:
    """This period's global control group as recorded (reads only)."""
    ensure_tables(con)
    period = global_period(as_of)
    start, end = global_period_bounds(period)
    n = con.execute("SELECT count(*) FROM measurement.global_control WHERE period = ?", [period]).fetchall()[0][0]
    return {"period": period, "start": str(start), "end": str(end), "pct": settings().global_control_pct, "members": n}


def campaign_frames(con: duckdb.DuckDBPyConnection, campaign: str | None = None,
                    window_days: float | None = None) -> tuple[pd.DataFrame, float]:
    """One row per (campaign, assigned person) with outcomes in the window and pre-exposure covariates."""
    window = float(window_days or settings().measurement_window_days)
    if not table_exists(con, "measurement", "campaign_exposures"):
        raise RuntimeError("no measurement.campaign_exposures yet: run the activation DAG (or `make demo`) first")
    out = warehouse_outcomes(con, window, campaign)
    if campaign and out.empty:
        known = [r[0] for r in con.execute("SELECT DISTINCT campaign FROM measurement.campaign_exposures ORDER BY 1").fetchall()]
        raise ValueError(f"no assignments for {campaign!r}; campaigns with assignments: {known}")
    return out, window


def _weights(frame: pd.DataFrame) -> dict[str, float] | None:
    """The designed split of a campaign (from the audience's holdout %), for the sample-ratio check."""
    pct = frame.holdout_pct.dropna().unique() if "holdout_pct" in frame else []
    if len(pct) != 1 or not 0 < pct[0] < 100:
        return None
    return {"treatment": 100 - float(pct[0]), "control": float(pct[0])}


def lift_for(frame: pd.DataFrame, campaign: str, window: float, sequential: bool = False, as_of=None) -> dict:
    """Every outcome of one campaign, each arm against control, with SRM, ROI and one sentence per result."""
    arms = frame.arm.value_counts().to_dict()
    d: dict = {"campaign": campaign, "window_days": window, "people": len(frame), "arms": arms, "results": [],
               "notes": []}
    if as_of is not None:
        ends = pd.to_datetime(frame.exposed_at, utc=True) + pd.Timedelta(days=window)
        clock_utc = pd.Timestamp(as_of)
        clock_utc = clock_utc.tz_localize("UTC") if clock_utc.tzinfo is None else clock_utc.tz_convert("UTC")
        still_open = int((ends > clock_utc).sum())
        if still_open:
            d["notes"].append(f"{campaign}: the {window:g}-day window is still open for {still_open:,} of {len(frame):,} "
                              "people; their outcomes so far are counted, so the figures will still change")
    w = _weights(frame)
    d["srm"] = stats.srm(arms, w) if w and len(arms) >= 2 else None
    if "control" not in arms or min(arms.values()) < 2 or len(arms) < 2:
        d["notes"].append(f"{campaign}: too few people to compare (arms: {arms}; each needs at least 2); "
                          "no lift is computed")
        return d
    covs = [c for c in COVARIATES if c in frame and frame[c].notna().all()]
    # An outcome nobody had (e.g. no form on the site) has nothing to compare; it is listed, not tested.
    # Conversion always has an interval (Newcombe's is defined at 0 of n); the others need some variation.
    outcomes = [o for o in OUTCOMES if o in frame and (o == "converted" or frame[o].astype(float).var() > 0)]
    d["not_observed"] = [o for o in OUTCOMES if o not in outcomes]
    results = stats.lift_table(frame, "arm", "control", outcomes, covs,
                               sequential=sequential, source=campaign)
    costs = message_costs()
    for r in results:
        d["results"].append(r.to_dict() | {"verdict": stats.verdict(r)})
    by = {(r.outcome, r.arm): r for r in results}
    for arm in sorted(set(arms) - {"control"}):
        t = frame[frame.arm == arm]
        msgs = t.messages if "messages" in t else t.sent.astype(int)
        per_channel = {str(k): int(v) for k, v in msgs.groupby(t.channel.fillna("none")).sum().items() if v}
        cost = sum(n * costs.get(ch, 0.0) for ch, n in per_channel.items())
        messages = int(msgs.sum())
        roi = stats.roi(by.get(("converted", arm)), by.get(("revenue", arm)), messages,
                        cost / messages if messages else 0.0)
        d.setdefault("roi", {})[arm] = roi | {"messages_per_channel": per_channel}
    return d


def message_costs() -> dict[str, float]:
    """Cost per message per channel from BEACON_MESSAGE_COSTS ('email=0.001,ads=0.005')."""
    out = {}
    for part in settings().message_costs.split(","):
        if not part.strip():
            continue
        ch, _, v = part.partition("=")
        try:
            out[ch.strip()] = float(v)
        except ValueError:
            raise ValueError(f"BEACON_MESSAGE_COSTS: {part!r} is not channel=cost") from None
    return out


def campaign_lift(con: duckdb.DuckDBPyConnection, audience: str | None = None, journey: str | None = None,
                  window_days: float | None = None, sequential: bool = False,
                  frames: tuple[pd.DataFrame, float] | None = None) -> dict:
    """Lift of every campaign (or one audience or journey) on the warehouse, as `beacon measure lift` shows it.
    `frames`: what `campaign_frames` gives for the same campaign and window, when the caller has it already."""
    campaign = f"audience:{audience}" if audience else f"journey:{journey}" if journey else None
    frame, window = frames if frames is not None else campaign_frames(con, campaign, window_days)
    as_of = clock(con) if table_exists(con, "marts", "warehouse_as_of") else None
    results, notes, srms, rois = [], [], {}, {}
    for name, g in frame.groupby("campaign", sort=True):
        d = lift_for(g, name, window, sequential, as_of)
        results += [r | {"campaign": name} for r in d["results"]]
        notes += d["notes"]
        srms[name] = d["srm"]
        rois[name] = d.get("roi", {})
    srm_bad = [c for c, s in srms.items() if s and s["mismatch"]]
    return {"title": f"Lift within {window:g} days of exposure (intent to treat)", "window_days": window,
            "results": results, "notes": notes + [f"{c}: sample ratio mismatch, do not trust its lift" for c in srm_bad],
            "srm_by_campaign": srms, "roi": rois}


def attribution_last_touch(con: duckdb.DuckDBPyConnection, window_days: float | None = None) -> pd.DataFrame:
    """Each order credited once, to the latest *sent* message before it within the window (a view, not lift)."""
    window = float(window_days or settings().measurement_window_days)
    return con.execute(f"""
        WITH o AS (SELECT customer_id, occurred_at, revenue FROM measurement.campaign_outcome_events WHERE event_type = 'order'),
        touch AS (
            SELECT o.customer_id, o.occurred_at, o.revenue, e.campaign,
                row_number() OVER (PARTITION BY o.customer_id, o.occurred_at ORDER BY e.exposed_at DESC, e.campaign) AS k
            FROM o JOIN measurement.campaign_exposures e ON e.customer_id = o.customer_id AND e.sent
                AND {in_window_sql("o.occurred_at", "e.exposed_at", window)})
        SELECT campaign, count(*) AS orders, sum(revenue) AS revenue FROM touch WHERE k = 1 GROUP BY 1 ORDER BY 1
    """).df()


def store_results(con: duckdb.DuckDBPyConnection, d: dict, as_of) -> int:
    """Append one run's results to measurement.lift_results (history kept, newest by computed_at)."""
    ensure_tables(con)
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [(now, str(as_of), r["campaign"], d["window_days"], r["outcome"], r["arm"], json.dumps(r, default=str),
             json.dumps(d["srm_by_campaign"].get(r["campaign"]), default=str)) for r in d["results"]]
    if rows:
        con.executemany("INSERT INTO measurement.lift_results VALUES (?, ?::TIMESTAMP, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


UPLIFT_MIN_PER_ARM = 200  # fewer assigned people in either arm: too little to learn who is persuadable


def _features_now(con: duckdb.DuckDBPyConnection, as_of) -> pd.DataFrame:
    """The uplift features for every customer as of the warehouse clock (as the exposures' covariates are)."""
    return con.execute("""
        WITH c AS (SELECT customer_id FROM marts.dim_customers),
        o AS (SELECT customer_id, count(*) AS n, sum(total_amount) AS rev FROM marts.fct_orders
              WHERE status = 'completed' AND ordered_at < $as_of::TIMESTAMP
                AND ordered_at >= $as_of::TIMESTAMP - INTERVAL 90 DAY GROUP BY 1),
        v AS (SELECT customer_id, count(*) AS n FROM marts.fct_web_sessions
              WHERE session_started_at < $as_of::TIMESTAMP
                AND session_started_at >= $as_of::TIMESTAMP - INTERVAL 90 DAY GROUP BY 1)
        SELECT c.customer_id, coalesce(o.n, 0) AS prior_orders_90d, coalesce(o.rev, 0) AS prior_revenue_90d,
            coalesce(v.n, 0) AS prior_visits_90d
        FROM c LEFT JOIN o USING (customer_id) LEFT JOIN v USING (customer_id)""", {"as_of": str(as_of)}).df()


FEATURE_MARTS = {"dim_customers": "first_seen_at", "fct_orders": "ordered_at", "fct_web_events": "event_at",
                 "fct_web_sessions": "session_started_at", "fct_email_events": "event_at",
                 "fct_web_event_days": "event_date", "fct_email_event_days": "event_date"}
NOT_FEATURES = ["customer_id", "exposed_at", "features_as_of", "campaign"]


def _has_feature_marts(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the marts the feature macro reads exist (a deployment's warehouse; not a bare test schema)."""
    n = con.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'marts' AND "
                    + " OR ".join(f"(table_name = '{t}' AND column_name = '{c}')" for t, c in FEATURE_MARTS.items())
                    ).fetchall()[0][0]
    return n == len(FEATURE_MARTS)


# The facts the feature macro aggregates per customer (no ranking across customers): the training frame reads them
# for the exposed people only. Customers and orders are read whole: the RFM ranks compare every buyer.
PER_CUSTOMER_FACTS = ("fct_web_events", "fct_web_sessions", "fct_email_events", "fct_web_event_days",
                      "fct_email_event_days")


def _features_at(con: duckdb.DuckDBPyConnection, cutoff, who: pd.DataFrame,
                 facts: dict[str, str] | None = None) -> pd.DataFrame:
    """The customer features (the dbt macro customer_features_at) of the people in `who` as of `cutoff`. `facts`:
    marts the macro reads (`PER_CUSTOMER_FACTS`) -> relations holding at least those people's rows of them."""
    from beacon.dbt import customer_features_sql

    sql = customer_features_sql(pd.Timestamp(cutoff).to_pydatetime())
    for name, rel in (facts or {}).items():
        sql = re.sub(rf"\bmarts\.{name}\b", f"(SELECT * FROM {rel} WHERE customer_id IN (SELECT customer_id FROM _who))",
                     sql)
    con.register("_who", who[["customer_id"]].drop_duplicates())
    try:
        return con.execute(f"SELECT f.* FROM ({sql}) f WHERE f.customer_id IN (SELECT customer_id FROM _who)").df()
    finally:
        con.unregister("_who")


def uplift_training_frame(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per exposure: arm, converted and the customer features as of the start of the exposure's day.

    Point in time: the features are those the macro computes at a cutoff at or before the exposure, never after,
    so that nothing the campaign caused (an order, a click, an open) can become a feature of its own model.
    The per-customer facts of the exposed people are read once (`PER_CUSTOMER_FACTS`), and each exposure day's
    macro aggregates only that day's people's rows of them: the features are the macro's, the work per day follows
    the day's exposures rather than every event of the warehouse."""
    frame = frame.assign(_cut=pd.to_datetime(frame.exposed_at).dt.floor("D"))
    con.register("_exposed", frame[["customer_id"]].drop_duplicates())
    facts = {name: f"_uplift_{name}" for name in PER_CUSTOMER_FACTS}
    try:
        for name, rel in facts.items():
            con.execute(f"""CREATE OR REPLACE TEMP TABLE {rel} AS SELECT * FROM marts.{name}
                WHERE customer_id IN (SELECT customer_id FROM _exposed)""")
        parts = []
        for cut, g in frame.groupby("_cut", sort=True):
            f = _features_at(con, cut, g, facts)
            keep = ["customer_id", "arm", "converted", "exposed_at", *(["campaign"] if "campaign" in g else [])]
            parts.append(g[keep].merge(f, on="customer_id", how="left"))
    finally:
        con.unregister("_exposed")
        for rel in facts.values():
            con.execute(f"DROP TABLE IF EXISTS {rel}")
    return pd.concat(parts, ignore_index=True)


def _scoring_features(con: duckdb.DuckDBPyConnection, as_of, marts: bool) -> pd.DataFrame:
    """Everyone's features at the warehouse clock, as the model scores them (the macro, or the covariates), in
    customer order: people with the same uplift get their deciles in that order, the same on every run (a query's
    row order is not)."""
    if marts:
        now = _features_at(con, as_of, con.execute("SELECT customer_id FROM marts.dim_customers").df())
    else:
        now = _features_now(con, as_of)
    return now.sort_values("customer_id", ignore_index=True, kind="stable")


def _write_uplift(con: duckdb.DuckDBPyConnection, scored: pd.DataFrame, trained_rows: int, as_of, trained_at) -> None:
    """Replace `ml.uplift` with this run's scores (and when and on how many exposures the model was fitted)."""
    s = scored.assign(trained_rows=trained_rows, scored_at=pd.Timestamp(as_of), trained_at=pd.Timestamp(trained_at))
    con.execute("CREATE SCHEMA IF NOT EXISTS ml")
    con.register("_uplift", s)
    con.execute("CREATE OR REPLACE TABLE ml.uplift AS SELECT * FROM _uplift")
    con.unregister("_uplift")


def refresh_uplift_scores(con: duckdb.DuckDBPyConnection, as_of, window_days: float | None = None,
                          frame: pd.DataFrame | None = None, every_days: float | None = None,
                          force: bool = False) -> dict:
    """Score everyone into `ml.uplift` with the X-learner trained on every randomized campaign so far.

    `every_days`: refit on a schedule (`beacon.measure.uplift_store`: when no model is stored, the stored one is
    that old, or its window or features no longer fit), scoring with the stored model in between; None refits on
    every call. Features: the customer feature macro at each exposure's day (training) and at the warehouse clock
    (scoring), pre-treatment columns only (`uplift_features.choose_features`); on a warehouse without the customer
    marts, the exposures' pre-exposure covariates. Segments can then target the persuadable (`decile >= 8`) rather
    than the already-converting."""
    from beacon.measure import uplift_store

    window = float(window_days or settings().measurement_window_days)
    marts = _has_feature_marts(con)
    source = "customer_features" if marts else "covariates"
    if every_days is not None and not force:
        reused = _score_with_stored(con, as_of, window, source, marts, every_days)
        if isinstance(reused, dict):
            return reused
        decision = reused
    else:
        decision = uplift_store.RefitDecision(True, "forced" if force else "refitted on every run")
    out = _refit_uplift(con, as_of, window, frame, marts)
    if "scorer" not in out:
        return out | {"refit": False, "reason": f"{decision.reason}; not fitted: {out['reason']}"}
    scorer, now = out.pop("scorer"), out.pop("now")
    _write_uplift(con, scorer.score(now), scorer.trained_rows, as_of, as_of)
    uplift_store.save(con, scorer, as_of, window, source, out["not_features"])
    return out | {"scored": len(now), "refit": True, "reason": decision.reason, "trained_at": str(pd.Timestamp(as_of))}


def _score_with_stored(con: duckdb.DuckDBPyConnection, as_of, window: float, source: str, marts: bool,
                       every_days: float):
    """Score everyone with the stored uplift model when no refit is due (the summary), else the refit decision. A
    stored model that cannot be read or cannot score (a damaged row, a LightGBM that no longer reads it) is refitted."""
    from lightgbm.basic import LightGBMError

    from beacon.measure import uplift_store

    try:
        stored = uplift_store.latest(con)
    except (ValueError, KeyError, TypeError) as exc:
        return uplift_store.RefitDecision(True, f"the stored uplift model cannot be read: {exc}")
    decision = uplift_store.decide(stored, as_of, window, source, every_days)
    if decision.due:
        return decision
    now = _scoring_features(con, as_of, marts)
    decision = uplift_store.decide(stored, as_of, window, source, every_days, columns=now.columns)
    if decision.due:
        return decision
    try:
        scored = stored.scorer.score(now)
    except (ValueError, KeyError, LightGBMError) as exc:
        log.warning("stored uplift model cannot score, refitting: %s", exc)
        return uplift_store.RefitDecision(True, f"the stored uplift model cannot score: {exc}")
    _write_uplift(con, scored, stored.scorer.trained_rows, as_of, stored.trained_at)
    return {"scored": len(now), "trained_rows": stored.scorer.trained_rows, "model": stored.scorer.learner,
            "features": stored.scorer.features, "not_features": stored.not_features, "refit": False,
            "reason": decision.reason, "trained_at": str(stored.trained_at)}


def _refit_uplift(con: duckdb.DuckDBPyConnection, as_of, window: float, frame: pd.DataFrame | None,
                  marts: bool) -> dict:
    """Fit the X-learner on every exposure so far: {'scorer', 'now' (the scoring rows), ...} or why not."""
    from beacon.measure.uplift import fit_scorer
    from beacon.measure.uplift_features import choose_features

    if frame is None:  # `frame`: campaign_frames' rows when the caller has them already (write_report)
        frame, _ = campaign_frames(con, None, window)
    frame = frame.assign(arm=frame.arm.where(frame.arm == "control", "treatment"))
    counts = frame.arm.value_counts().to_dict()
    if min(counts.get("treatment", 0), counts.get("control", 0)) < UPLIFT_MIN_PER_ARM or frame.converted.nunique() < 2:
        return {"scored": 0, "reason": f"too little randomized data to learn uplift yet (arms: {counts})"}
    if marts:
        train = uplift_training_frame(con, frame)
        candidates = [c for c in train.columns if c not in ("arm", "converted", *NOT_FEATURES)]
        # Each campaign is randomized on its own (its holdout share, its audience): balance is checked within
        # campaigns, since pooled, the campaign mix alone fails it on enough data (seen at 100k people on day 5).
        strata = train.campaign if "campaign" in train else None
        try:
            choice = choose_features(train[["arm", "converted", *candidates]], "arm", ["converted"],
                                     source="ml.uplift training", strata=strata)
        except ValueError as exc:  # no usable pre-treatment column: no uplift model this run, said why; the report goes on
            log.warning("uplift not trained: %s", exc)
            return {"scored": 0, "reason": str(exc)}
        features, excluded = choice.features, choice.excluded
    else:
        train, features, excluded = frame, list(COVARIATES), {}
    scorer = fit_scorer(train, "arm", "control", "converted", features,
                        strata=train.campaign if "campaign" in train else None)
    return {"scorer": scorer, "now": _scoring_features(con, as_of, marts), "trained_rows": len(train),
            "model": "x_learner", "features": features,
            "not_features": {k: v for k, v in excluded.items() if k not in ("arm", "converted")}}
