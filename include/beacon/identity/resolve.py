"""Identity resolution: link person records (deterministic rules plus Splink), cluster them by connected
components, and give each cluster a customer id that survives new data.

The dbt Python model `int_identity_events` calls `resolve()` on every run: the first run resolves
everything; later runs link only new or changed records against the existing clusters, keep every
existing id, and when a new link joins two existing customers the older id survives and the merge is
written as an event (the `identity_merge_log` mart reads those).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from beacon.identity import graph
from beacon.identity.guards import (
    GuardConfig,
    GuardReport,
    GuardResult,
    check_clusters,
    check_links,
    check_model,
)

log = logging.getLogger(__name__)

# The columns the resolver reads from the records relation (int_customer_records_unioned).
RECORD_COLUMNS = ["record_key", "source", "record_id", "email_canonical", "phone_e164", "first_name_key",
                  "last_name_key", "first_name_aliases", "street_key", "city", "state", "postal_code",
                  "birth_date", "updated_at", "match_fingerprint"]

EVENT_COLUMNS = ["record_key", "source", "record_id", "customer_id", "event", "previous_customer_id", "match_rule",
                 "match_probability", "match_fingerprint", "resolution_run", "resolved_as_of"]


def event_schema():
    """Arrow schema of the event log: explicit, so an all-null column never becomes DuckDB's NULL type."""
    import pyarrow as pa

    return pa.schema([(c, pa.string()) for c in EVENT_COLUMNS[:7]] + [
        ("match_probability", pa.float64()), ("match_fingerprint", pa.string()), ("resolution_run", pa.int32()),
        ("resolved_as_of", pa.timestamp("us"))])


@dataclass(frozen=True)
class ResolutionConfig:
    """Rules and thresholds (dbt vars `identity_*` in dbt_project.yml; trade-offs in docs/identity.md)."""

    # Splink match probability at or above which two records are linked. Higher: fewer false merges
    # (precision), more missed links (recall). 0.8 keeps precision above 0.997 from 10k to 1M people on the
    # generated worlds (the table in docs/identity.md); raise it where merges cost more than missed links.
    match_threshold: float = 0.8
    # A canonical email or phone shared by more records than this is a shared/role mailbox or a switchboard:
    # it gives no deterministic link (Splink still weighs it as evidence, with name and address).
    max_email_group: int = 8
    max_phone_group: int = 8
    # Deterministic links need the names to agree too (one first name is the other or its nickname, and
    # the same last name):
    # households share mailboxes and phones, and an exact key alone would merge the family.
    require_name_agreement: bool = True
    probabilistic: bool = True
    # A Splink link may not rest on a shared email alone between records in different places (namesakes share
    # name-spelled mailboxes; see SHARED_EMAIL_ELSEWHERE).
    shared_email_needs_more: bool = True
    # Bounds the run must stay within before anything is published (beacon.identity.guards).
    guards: GuardConfig = field(default_factory=GuardConfig)


@dataclass
class ResolutionStats:
    """What a run did, for logs and the evaluation command."""

    mode: str = "full"
    records: int = 0
    delta_records: int = 0
    deterministic_edges: int = 0
    probabilistic_edges: int = 0
    clusters: int = 0
    new_customers: int = 0
    merges: int = 0
    largest_cluster: int = 0
    seconds: dict = field(default_factory=dict)
    # Every guard checked in this run (beacon.identity.guards.GuardResult), passed or not.
    guards: list = field(default_factory=list)


def _timed(stats: ResolutionStats, name: str, t0: float) -> float:
    now = time.perf_counter()
    stats.seconds[name] = round(now - t0, 3)
    return now


def deterministic_edges(con: duckdb.DuckDBPyConnection, cfg: ResolutionConfig, incremental: bool) -> None:
    """Fill `_edges` with exact-key links: same canonical email, or same E.164 phone, with agreeing names.

    Reads the temp table `_records`; when incremental, only pairs touching a new or changed record
    (`is_delta`). Keys shared by too many records are skipped (role mailboxes, switchboards)."""
    # One first name must be the other or one of its nicknames (not merely share one: Bill and Bob both
    # stand for Robert, yet are not each other).
    name_ok = ("(NOT a.has_first OR NOT b.has_first OR list_contains(a.first_name_aliases, b.first_name_key)"
               " OR list_contains(b.first_name_aliases, a.first_name_key))"
               " AND (a.last_name_key IS NULL OR b.last_name_key IS NULL OR a.last_name_key = b.last_name_key)"
               if cfg.require_name_agreement else "true")
    touch = "AND (a.is_delta OR b.is_delta)" if incremental else ""
    # Incremental: only keys a new or changed record holds (a key's group size still counts every record).
    keys_of_delta = "AND {col} IN (SELECT {col} FROM _records WHERE is_delta)" if incremental else ""
    # A shared mailbox with a contradicting phone or postcode is left to Splink to weigh: namesakes do share
    # addresses like jsmith@gmail.com, and an exact-key link cannot be outvoted later.
    no_conflict = {"email": " AND (a.phone_e164 IS NULL OR b.phone_e164 IS NULL OR a.phone_e164 = b.phone_e164)"
                            " AND (a.postal_code IS NULL OR b.postal_code IS NULL OR a.postal_code = b.postal_code)",
                   "phone": ""}
    for rule, col, limit in (("email", "email_canonical", cfg.max_email_group),
                             ("phone", "phone_e164", cfg.max_phone_group)):
        con.execute(f"""
            INSERT INTO _edges
            WITH keyed AS (
                SELECT record_key, {col} AS k, first_name_key, first_name_aliases,
                       first_name_aliases IS NOT NULL AS has_first, last_name_key, phone_e164, postal_code, is_delta
                FROM _records
                WHERE {col} IS NOT NULL {keys_of_delta.format(col=col)}
                QUALIFY count(*) OVER (PARTITION BY {col}) <= {int(limit)}
            )
            SELECT a.record_key, b.record_key, '{rule}', 1.0
            FROM keyed a JOIN keyed b ON a.k = b.k AND a.record_key < b.record_key
            WHERE {name_ok}{no_conflict[rule] if cfg.require_name_agreement else ""} {touch}""")


# A Splink pair whose only identifier in common is the email, between records in different places (postcode and
# city differ, street, phone and birth date do not agree). Splink multiplies the evidence of the shared email with
# that of the names as if they were independent, but a free-mail address spelled from the name (johnturner@…) is
# shared by namesakes: on the 200k world of seed 1, all 225 such links at p >= 0.95 joined two people, and none
# joined one (F1 at p >= 0.95: 0.9914 -> 0.9945; at 0.8: 0.9879 -> 0.9965). The exact email links refuse the
# same pairs for the same reason.
SHARED_EMAIL_ELSEWHERE = """a.email_canonical = b.email_canonical
    AND coalesce(a.postal_code <> b.postal_code, false) AND coalesce(a.city <> b.city, true)
    AND NOT coalesce(a.street_key = b.street_key, false) AND NOT coalesce(a.phone_e164 = b.phone_e164, false)
    AND NOT coalesce(a.birth_date = b.birth_date, false)"""

# Which record column plays which role in the Splink model (beacon.identity.linker).
LINK_ROLES = {"given_name": "first_name_key", "surname": "last_name_key", "date_of_birth": "birth_date",
              "address_1": "street_key", "city": "city", "state": "state", "postcode": "postal_code",
              "phone": "phone_e164", "email": "email_canonical"}
MODEL_STORE_DDL = "CREATE TABLE IF NOT EXISTS {table} (trained_run INTEGER, model_json VARCHAR)"


def _link_frame(con: duckdb.DuckDBPyConnection, where: str = "true") -> pd.DataFrame:
    cols = ", ".join(f"{c}::VARCHAR AS {c}" if c == "birth_date" else c for c in LINK_ROLES.values())
    return con.execute(f"SELECT record_key, {cols} FROM _records WHERE {where}").df()


def _neighbourhood(con: duckdb.DuckDBPyConnection, rules: list[tuple[str, ...]]) -> pd.DataFrame:
    """The delta plus every existing record that shares a blocking key with a delta record: the only records
    a new record can be compared with, so an increment is scored without re-scoring everything."""
    joins = []
    for rule in rules:
        cols = [LINK_ROLES[r] for r in rule]
        on = " AND ".join(f"e.{c} = d.{c}" for c in cols)
        joins.append(f"SELECT e.record_key FROM _records e JOIN _records d ON {on} WHERE d.is_delta AND NOT e.is_delta")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _hood AS
        SELECT record_key FROM _records WHERE is_delta UNION {' UNION '.join(joins)}""")
    return _link_frame(con, "record_key IN (SELECT record_key FROM _hood)")


def store_model(con: duckdb.DuckDBPyConnection, model_store: str, model, run: int, full: bool) -> None:
    """Keep a newly trained model for later increments (only once the run's guards passed)."""
    con.execute(MODEL_STORE_DDL.format(table=model_store))
    if full:  # a full resolution starts the model history again
        con.execute(f"DELETE FROM {model_store}")
    con.execute(f"INSERT INTO {model_store} VALUES (?, ?)", [run, model.to_json()])


def probabilistic_edges(con: duckdb.DuckDBPyConnection, cfg: ResolutionConfig, incremental: bool,
                        model_store: str | None = None, report: GuardReport | None = None):
    """Add Splink links at or above the threshold to `_edges`; returns the model when this run trained one.

    A full run trains the model on (a bounded sample of) the records; an incremental run reuses the stored model
    and scores only the delta's neighbourhood. A new model is checked by the guards before it predicts anything,
    and the links it predicts against what its prior expects; a failing guard raises IdentityGuardError."""

    from beacon.identity import linker  # Splink: imported only when probabilistic linking runs

    report = report if report is not None else GuardReport()
    model = trained = None
    if incremental and model_store:
        con.execute(MODEL_STORE_DDL.format(table=model_store))
        row = con.execute(f"SELECT arg_max(model_json, trained_run) FROM {model_store}").fetchall()[0][0]
        model = linker.TrainedModel.from_json(row) if row else None
    n_all, n_delta = con.execute("SELECT count(*), count(*) FILTER (WHERE is_delta) FROM _records").fetchall()[0]
    if model is None:
        try:
            model = trained = linker.train(
                _link_frame(con), LINK_ROLES, id_col="record_key",
                # u from random pairs: 50 per record (at least 100k, at most 1M) is plenty for the common levels
                # and keeps training short on small worlds.
                config=linker.LinkageConfig(match_threshold=cfg.match_threshold, seed=42,
                                            u_max_pairs=float(min(1e6, max(1e5, 50 * n_all)))))
        except linker.TrainingError as exc:
            # The safe fallback: deterministic links only this run (precision kept, some recall lost), said loudly.
            log.error("identity: no trustworthy linkage model (%s); deterministic links only this run", exc)
            report.add(GuardResult("model_trained", False, str(exc)[:500], "a trained model", severity="warning"))
            return None
    # Checked whether just trained or stored by an earlier run: a corrupted stored model must not score either.
    report.add(*check_model(model.settings, model.trained_on.get("comparisons", []),
                            int(sum(model.trained_on.get("sampled", [n_all]))), cfg.guards))
    report.raise_if_failed()
    prior = linker.rescaled_prior(model.settings["probability_two_random_records_match"],
                                   model.trained_on.get("records", [n_all]), [n_all])
    if incremental:
        pairs, pairs_compared = _delta_pairs(con, model, prior, cfg.match_threshold, n_all, n_delta)
    else:
        pairs = linker.predict_pairs(_link_frame(con), model, cfg.match_threshold, id_col="record_key")
        pairs_compared = n_all * (n_all - 1) / 2
    report.add(check_links(len(pairs), prior * pairs_compared, cfg.guards))
    report.raise_if_failed()
    con.register("_splink_pairs", pairs)
    con.execute(f"""INSERT INTO _edges SELECT least(unique_id_l, unique_id_r), greatest(unique_id_l, unique_id_r),
                    'probabilistic', match_probability FROM _splink_pairs p
                    JOIN _records a ON a.record_key = p.unique_id_l JOIN _records b ON b.record_key = p.unique_id_r
                    WHERE (? OR a.is_delta OR b.is_delta) AND NOT ({SHARED_EMAIL_ELSEWHERE if cfg.shared_email_needs_more
                                                                  else 'false'})""", [not incremental])
    con.unregister("_splink_pairs")
    return trained


def _delta_pairs(con: duckdb.DuckDBPyConnection, model, prior: float, threshold: float, n_all: int,
                 n_delta: int) -> tuple[pd.DataFrame, float]:
    """An incremental run's Splink links with the stored model; (pairs, the number of pairs compared)."""
    import dataclasses

    from beacon.identity import linker

    # Score the delta against the existing records (link only: pairs among existing records were scored
    # before) and within itself, with the stored model. The prior (chance two random records match)
    # belongs to the whole population, not to the frames scored here.
    rules = [r for r in model.config.rules() if all(x in LINK_ROLES for x in r)]
    hood = _neighbourhood(con, rules)
    keys = set(con.execute("SELECT record_key FROM _records WHERE is_delta").df().record_key)
    delta, existing = hood[hood.record_key.isin(keys)], hood[~hood.record_key.isin(keys)]
    settings = dict(model.settings)
    settings["probability_two_random_records_match"] = prior
    fixed = dataclasses.replace(model.config, rescale_prior=False)
    within = dataclasses.replace(model, settings=settings, config=fixed)
    between = dataclasses.replace(model, settings={**settings, "link_type": "link_only"}, config=fixed,
                                  link_type="link_only")
    parts = []
    if len(delta) >= 2:
        parts.append(linker.predict_pairs(delta, within, threshold, id_col="record_key"))
    if len(delta) and len(existing):
        parts.append(linker.predict_pairs([delta, existing], between, threshold, id_col="record_key"))
    pairs = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["unique_id_l", "unique_id_r", "match_probability"])
    pairs_compared = n_delta * (n_all - n_delta) + n_delta * (n_delta - 1) / 2
    return pairs, pairs_compared


def _register(con: duckdb.DuckDBPyConnection, name: str, data) -> None:
    """Expose a DataFrame or a relation (dbt's ref() in a Python model) as a view on `con`."""
    if isinstance(data, duckdb.DuckDBPyRelation):
        data.create_view(name, replace=True)
    else:
        con.register(name, data)


def _unregister(con: duckdb.DuckDBPyConnection, name: str, data) -> None:
    """Remove what `_register` exposed: a relation's view is a view of the database, which would otherwise stay
    behind in the warehouse holding the records it reads (personal data outside the catalogued tables)."""
    if isinstance(data, duckdb.DuckDBPyRelation):
        con.execute(f"DROP VIEW IF EXISTS {name}")
    else:
        con.unregister(name)


def resolve(con: duckdb.DuckDBPyConnection, records: duckdb.DuckDBPyRelation | pd.DataFrame,
            previous: duckdb.DuckDBPyRelation | pd.DataFrame | None = None,
            cfg: ResolutionConfig | None = None, stats: ResolutionStats | None = None,
            model_store: str | None = None) -> pd.DataFrame:
    """Resolve `records` (RECORD_COLUMNS) into identity events (EVENT_COLUMNS).

    `previous` is the event log so far (None or empty: resolve from scratch). Only records that are new,
    changed, or moved to another customer get an event, so the log stays append-only and small.
    `model_store`: a table on `con` keeping the trained Splink model between runs."""
    cfg = cfg or ResolutionConfig()
    stats = stats if stats is not None else ResolutionStats()
    t = time.perf_counter()
    _register(con, "_records_in", records)
    try:
        incremental, run = _load_previous(con, previous)
        stats.mode = "incremental" if incremental else "full"
        _prepare_records(con, stats)  # copies the records into the temp table _records
    finally:
        _unregister(con, "_records_in", records)
        if previous is not None and len(previous) > 0:
            _unregister(con, "_previous_in", previous)
    t = _timed(stats, "prepare", t)
    report = GuardReport(stats.guards)  # the guards' results land in stats, whether they pass or not
    trained = None
    if stats.delta_records:
        trained, t = _find_edges(con, cfg, incremental, model_store, report, stats, t)
    graph.mark_affected(con, incremental)
    con.register("_components_df", graph.components(con))
    t = _timed(stats, "components", t)
    events = _assign(con, run)
    _timed(stats, "assign", t)
    sizes, known = _cluster_stats(con, events, stats, incremental)
    con.unregister("_components_df")
    report.add(*check_clusters(sizes, stats.merges, known, cfg.guards))
    log.info("identity resolution: %s", stats)
    report.raise_if_failed()  # before the model is kept and the events are returned: nothing is published
    if trained is not None and model_store:
        store_model(con, model_store, trained, run, full=not incremental)
    return events[EVENT_COLUMNS]


def _load_previous(con: duckdb.DuckDBPyConnection,
                   previous: duckdb.DuckDBPyRelation | pd.DataFrame | None) -> tuple[bool, int]:
    """_prev (each record's latest customer and fingerprint) and _customer_age from the event log so far;
    (incremental, this resolution run's number)."""
    incremental = previous is not None and len(previous) > 0
    if incremental:
        _register(con, "_previous_in", previous)
        con.execute("""CREATE OR REPLACE TEMP TABLE _prev AS
            SELECT record_key, arg_max(customer_id, resolution_run) AS customer_id,
                   arg_max(match_fingerprint, resolution_run) AS match_fingerprint
            FROM _previous_in GROUP BY record_key""")
        con.execute("""CREATE OR REPLACE TEMP TABLE _customer_age AS
            SELECT customer_id, min(resolution_run) AS first_run FROM _previous_in GROUP BY customer_id""")
        run = con.execute("SELECT max(resolution_run) + 1 FROM _previous_in").fetchall()[0][0]
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE _prev (record_key VARCHAR, customer_id VARCHAR, match_fingerprint VARCHAR)")
        con.execute("CREATE OR REPLACE TEMP TABLE _customer_age (customer_id VARCHAR, first_run INTEGER)")
        run = 1
    return incremental, run


def _prepare_records(con: duckdb.DuckDBPyConnection, stats: ResolutionStats) -> None:
    """_records (the input with its previous customer and a delta flag, keys checked) and an empty _edges."""
    # Only the columns the resolver reads: the records relation carries the whole unioned record (names as shown,
    # company, ...), and copying it all costs as much as the rest of a normal day's preparation.
    cols = ", ".join(f"r.{c}" for c in RECORD_COLUMNS)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _records AS
        SELECT {cols}, p.customer_id AS prev_customer_id, p.match_fingerprint AS prev_fingerprint,
               p.record_key IS NULL OR p.match_fingerprint IS DISTINCT FROM r.match_fingerprint AS is_delta
        FROM _records_in r LEFT JOIN _prev p USING (record_key)""")
    missing, dupes = con.execute("""SELECT count(*) FILTER (WHERE record_key IS NULL),
        count(*) - count(DISTINCT record_key) FILTER (WHERE record_key IS NOT NULL) FROM _records""").fetchall()[0]
    if missing or dupes:
        raise ValueError(f"identity records: {missing} rows without record_key and {dupes} duplicate record_key "
                         "values; every record needs one unique key (source:record_id)")
    stats.records, stats.delta_records = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE is_delta) FROM _records").fetchall()[0]
    con.execute("CREATE OR REPLACE TEMP TABLE _edges (k1 VARCHAR, k2 VARCHAR, rule VARCHAR, probability DOUBLE)")


def _find_edges(con: duckdb.DuckDBPyConnection, cfg: ResolutionConfig, incremental: bool, model_store: str | None,
                report: GuardReport, stats: ResolutionStats, t: float):
    """Deterministic, then (if configured) probabilistic edges into _edges; (the trained model or None, t)."""
    trained = None
    deterministic_edges(con, cfg, incremental)
    stats.deterministic_edges = con.execute("SELECT count(*) FROM _edges").fetchall()[0][0]
    t = _timed(stats, "deterministic", t)
    if cfg.probabilistic:
        trained = probabilistic_edges(con, cfg, incremental, model_store, report)
        stats.probabilistic_edges = con.execute("SELECT count(*) FROM _edges").fetchall()[0][0] - stats.deterministic_edges
        t = _timed(stats, "probabilistic", t)
    return trained, t


def _assign(con: duckdb.DuckDBPyConnection, run: int) -> pd.DataFrame:
    """The identity events of resolution run `run`, from _affected, _edges and _components_df.

    Per component: the surviving id is the oldest previous id (first resolution run, then the smallest id);
    a component without one is a new customer, named after its smallest record key (deterministic)."""
    as_of = con.execute("SELECT max(updated_at)::TIMESTAMP FROM _records").fetchall()[0][0]
    return con.execute(f"""
        WITH comp AS (SELECT node, component FROM _components_df),
        rec AS (
            SELECT r.*, c.component FROM _affected r JOIN comp c ON c.node = r.record_key),
        survivor AS (
            SELECT rec.component,
                   arg_min(rec.prev_customer_id, (coalesce(a.first_run, 0), rec.prev_customer_id))
                       FILTER (WHERE rec.prev_customer_id IS NOT NULL) AS old_id,
                   'cus_' || substr(md5(min(rec.record_key)), 1, 16) AS new_id
            FROM rec LEFT JOIN _customer_age a ON a.customer_id = rec.prev_customer_id
            GROUP BY rec.component),
        strongest AS (
            -- Ties (a record linked by email and by phone) go to the greater rule name, so the input order never matters.
            SELECT k, arg_max(rule, (probability, rule)) AS rule, max(probability) AS probability FROM (
                SELECT k1 AS k, rule, probability FROM _edges UNION ALL SELECT k2, rule, probability FROM _edges)
            GROUP BY k),
        assigned AS (
            SELECT rec.*, coalesce(s.old_id, s.new_id) AS customer_id,
                   coalesce(st.rule, CASE WHEN rec.prev_customer_id IS NULL THEN 'none' ELSE 'existing' END) AS match_rule,
                   st.probability AS match_probability
            FROM rec JOIN survivor s USING (component) LEFT JOIN strongest st ON st.k = rec.record_key)
        SELECT record_key, source, record_id, customer_id,
               CASE WHEN prev_customer_id IS NULL THEN 'assigned'
                    WHEN prev_customer_id <> customer_id THEN 'merged'
                    ELSE 'updated' END AS event,
               prev_customer_id AS previous_customer_id, match_rule, match_probability, match_fingerprint,
               {int(run)}::INTEGER AS resolution_run,
               ?::TIMESTAMP AS resolved_as_of
        FROM assigned
        WHERE prev_customer_id IS NULL OR prev_customer_id <> customer_id OR is_delta
        ORDER BY record_key""", [as_of]).df()


def _cluster_stats(con: duckdb.DuckDBPyConnection, events: pd.DataFrame, stats: ResolutionStats,
                   incremental: bool) -> tuple[np.ndarray, int]:
    """Clusters, new customers, merges and the largest cluster into `stats`; (cluster sizes, known customers)."""
    sizes = graph.cluster_sizes(con, incremental)
    stats.clusters = len(sizes)
    con.register("_events_df", events[["customer_id"]])
    known, stats.new_customers = con.execute("""SELECT (SELECT count(*) FROM _customer_age),
        (SELECT count(DISTINCT customer_id) FROM _events_df
         WHERE customer_id NOT IN (SELECT customer_id FROM _customer_age WHERE customer_id IS NOT NULL))"""
                                              ).fetchall()[0]
    con.unregister("_events_df")
    stats.merges = int(events.loc[events.event == "merged", "previous_customer_id"].nunique())
    stats.largest_cluster = int(sizes.max()) if len(sizes) else 0
    return sizes, int(known)
