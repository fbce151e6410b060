"""Product recommendations: item-item collaborative filtering on order co-occurrence.

Each customer's purchases become implicit feedback (recent purchases weigh more: a 90-day half-life, then
log-damped); item similarity is the shrunk cosine of the item columns of that matrix; a customer's score for
a product is the sum of its similarities to what they bought. Products already bought are excluded. The model
is checked against a popularity baseline on held-out LATER purchases (a time split at the warehouse clock
minus `holdout_days`): recall@10 over customers who bought something new in the held-out window.
`write_recommendations` trains on everything and writes `ml.recommendations`; docs/personalization.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import scipy.sparse as sp

from beacon.personalize import recommend_store as store
from beacon.personalize.recommend_store import StoredModel
from beacon.warehouse import transaction

log = logging.getLogger(__name__)

RECS_COLUMNS = ["customer_id", "rank", "product_id", "score", "model_version"]
STATUSES = ("completed",)  # the orders whose lines are purchases


@dataclass(frozen=True)
class RecParams:
    half_life_days: float = 90.0  # recency weighting of past purchases
    shrink: float = 10.0  # cosine shrinkage: similarities from few co-buyers count less
    neighbours: int = 50  # similar items kept per item
    popularity_weight: float = 0.01  # a small popularity prior breaks ties and fills thin histories

    def version(self, cutoff: datetime) -> str:
        h = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:6]
        return f"itemknn-{h}-{cutoff:%Y%m%d}"


def purchases(con, statuses: tuple[str, ...] = STATUSES) -> pd.DataFrame:
    """(customer_id, product_id, ordered_at) of every order line in `marts.fct_order_items`, in that order."""
    q = """SELECT customer_id, product_id, ordered_at::TIMESTAMP AS ordered_at FROM marts.fct_order_items
           WHERE customer_id IS NOT NULL AND product_id IS NOT NULL AND ordered_at IS NOT NULL AND status IN (SELECT unnest(?))
           ORDER BY customer_id, product_id, ordered_at"""
    return con.execute(q, [list(statuses)]).df()


def warehouse_clock(con) -> datetime:
    t = con.execute("SELECT max(as_of_at)::TIMESTAMP FROM marts.warehouse_as_of").fetchone()[0]
    if t is None:
        raise ValueError("marts.warehouse_as_of is empty: build the marts before recommending")
    return pd.Timestamp(t).to_pydatetime()


class ItemKNN:
    """Item-item model fitted on (customer_id, product_id, ordered_at) rows up to `as_of`."""

    def __init__(self, params: RecParams = RecParams()):
        self.params = params

    def fit(self, rows: pd.DataFrame, as_of: datetime) -> ItemKNN:
        if rows.empty:
            raise ValueError("no purchases to train the recommender on")
        self.as_of = pd.Timestamp(as_of)
        self.users = pd.Index(rows.customer_id.astype(str).unique())
        self.items = pd.Index(np.sort(rows.product_id.astype(str).unique()))
        X = self.X = self.feedback(rows, self.users)
        B = X.copy()
        B.data[:] = 1.0
        self.popularity = np.asarray(B.sum(axis=0)).ravel()  # buyers per item
        C = (X.T @ X).toarray()
        norm = np.sqrt(np.diag(C))
        S = C / (np.outer(norm, norm) + self.params.shrink)
        np.fill_diagonal(S, 0.0)
        k = min(self.params.neighbours, len(self.items) - 1)
        if k > 0 and k < len(self.items) - 1:  # keep each item's k nearest neighbours
            cut = -np.partition(-S, k - 1, axis=0)[k - 1]
            S[S < cut[None, :]] = 0.0
        self.S = S
        return self

    @classmethod
    def stored(cls, m: StoredModel) -> ItemKNN:
        """The model as a training stored it (`recommend_store`): it recommends for purchase rows it is given."""
        self = cls(RecParams(**m.params))
        self.as_of, self.items, self.popularity, self.S = pd.Timestamp(m.as_of), m.items, m.popularity, m.similarity
        self.users = pd.Index([], dtype=object)
        self.X = sp.csr_matrix((0, len(self.items)))
        return self

    def feedback(self, rows: pd.DataFrame, users: pd.Index) -> sp.csr_matrix:
        """The implicit feedback of `users` (one matrix row each) from their purchase `rows`: weighted by age at the
        model's clock (a 90-day half-life; later purchases weigh 1), summed per product and damped. A row depends
        only on that customer's purchases, so a customer's recommendations do not depend on who else is scored."""
        age = (self.as_of - pd.to_datetime(rows.ordered_at)).dt.total_seconds().to_numpy() / 86_400
        w = np.power(0.5, np.clip(age, 0, None) / self.params.half_life_days)
        u, i = users.get_indexer(rows.customer_id.astype(str)), self.items.get_indexer(rows.product_id.astype(str))
        X = sp.csr_matrix((w, (u, i)), shape=(len(users), len(self.items)))
        X.sum_duplicates()
        X.data = np.log1p(X.data * 4)  # damped: the 5th purchase of an item says less than the 1st
        return X

    def recommend(self, k: int = 10, users: pd.Index | None = None, chunk: int = 50_000) -> pd.DataFrame:
        """Top-k unbought products per customer: customer_id, rank (1 = best), product_id, score."""
        users = self.users if users is None else users
        idx = self.users.get_indexer(users)
        out = []
        for s in range(0, len(users), chunk):
            ui = idx[s:s + chunk]
            known = ui >= 0
            out.append(self._top(self.X[np.where(known, ui, 0)], known, np.asarray(users[s:s + chunk]), k))
        return self._frame(out)

    def recommend_rows(self, rows: pd.DataFrame, k: int = 10, chunk: int = 50_000) -> pd.DataFrame:
        """Top-k unbought products for each customer in `rows` (their whole purchase history), as `recommend`."""
        users = pd.Index(rows.customer_id.astype(str).unique())
        X = self.feedback(rows, users)
        out = [self._top(X[s:s + chunk], np.ones(min(chunk, len(users) - s), dtype=bool),
                         np.asarray(users[s:s + chunk]), k) for s in range(0, len(users), chunk)]
        return self._frame(out)

    def _top(self, Xu: sp.csr_matrix, known: np.ndarray, names: np.ndarray, k: int) -> pd.DataFrame:
        """The top k of one chunk of customers (`known`: has feedback rows; the others get the most popular)."""
        pop = self.popularity / max(self.popularity.max(), 1.0)
        k = min(k, len(self.items))
        scores = np.asarray(Xu @ self.S) + self.params.popularity_weight * pop[None, :]
        bought = Xu.copy()
        bought.data[:] = 1.0
        scores = np.where(known[:, None], scores, pop[None, :])
        scores[bought.toarray().astype(bool) & known[:, None]] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_s = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_s, axis=1, kind="stable")
        top, top_s = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_s, order, axis=1)
        return pd.DataFrame({"customer_id": np.repeat(names, k), "rank": np.tile(np.arange(1, k + 1), len(names)),
                             "product_id": self.items[top.ravel()], "score": top_s.ravel()})

    @staticmethod
    def _frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
        df = pd.concat(parts, ignore_index=True) if parts else \
            pd.DataFrame(columns=["customer_id", "rank", "product_id", "score"])
        return df[np.isfinite(df.score.astype(float))].reset_index(drop=True)


def popularity_top(train: pd.DataFrame, users: pd.Index, k: int = 10) -> pd.DataFrame:
    """The baseline: the k products with most buyers in `train` that each customer has not bought."""
    ranked = train.groupby("product_id").customer_id.nunique().sort_values(ascending=False, kind="stable")
    ranked = ranked.index.astype(str).tolist()
    owned = train.groupby("customer_id").product_id.agg(set).to_dict()
    rows = []
    for c in users:
        have = owned.get(c, set())
        picks = [p for p in ranked if p not in have][:k]
        rows += [(c, r + 1, p) for r, p in enumerate(picks)]
    return pd.DataFrame(rows, columns=["customer_id", "rank", "product_id"])


def recall_at_k(recs: pd.DataFrame, truth: pd.DataFrame, k: int = 10) -> float:
    """Mean over customers in `truth` of (held-out products in their top k) / (held-out products, at most k)."""
    top = recs[recs["rank"] <= k][["customer_id", "product_id"]].drop_duplicates()
    t = truth[["customer_id", "product_id"]].drop_duplicates()
    hits = t.merge(top, on=["customer_id", "product_id"]).groupby("customer_id").size()
    n = t.groupby("customer_id").size()
    return float((hits.reindex(n.index, fill_value=0) / n.clip(upper=k)).mean()) if len(n) else float("nan")


def evaluate(rows: pd.DataFrame, as_of: datetime, *, holdout_days: int = 60, k: int = 10,
             params: RecParams = RecParams()) -> dict:
    """Train before `as_of - holdout_days`, test on the products each customer first bought after it."""
    cutoff = pd.Timestamp(as_of) - timedelta(days=holdout_days)
    when = pd.to_datetime(rows.ordered_at)
    train, test = rows[when < cutoff], rows[(when >= cutoff) & (when <= pd.Timestamp(as_of))]
    if train.empty or test.empty:
        raise ValueError(f"the time split at {cutoff} leaves no training or no held-out purchases")
    # Held out: products bought after the cutoff that the customer had not bought before it, by known customers.
    owned = train[["customer_id", "product_id"]].drop_duplicates().assign(_had=True)
    new = test[["customer_id", "product_id"]].drop_duplicates().merge(owned, how="left", on=["customer_id", "product_id"])
    new = new[new._had.isna() & new.customer_id.isin(train.customer_id)].drop(columns="_had")
    users = pd.Index(new.customer_id.unique())
    t0 = time.perf_counter()
    model = ItemKNN(params).fit(train, cutoff.to_pydatetime())
    recs = model.recommend(k, users)
    pop = popularity_top(train, users, k)
    return {"as_of": str(pd.Timestamp(as_of)), "cutoff": str(cutoff), "holdout_days": holdout_days, "k": k,
            "model_version": params.version(cutoff.to_pydatetime()), "train_purchases": len(train),
            "train_customers": len(model.users), "products": len(model.items), "test_customers": len(users),
            "test_purchases": len(new), f"recall_at_{k}_model": round(recall_at_k(recs, new, k), 4),
            f"recall_at_{k}_popularity": round(recall_at_k(pop, new, k), 4),
            "seconds": round(time.perf_counter() - t0, 2)}


MIN_HOLDOUT_DAYS = 7  # a shorter held-out window says too little to be worth recording


def holdout_for(rows: pd.DataFrame, as_of: datetime, holdout_days: int) -> int | None:
    """The held-out window the purchase history allows: `holdout_days`, or the last third of a shorter history
    (a young deployment), or None when even that is under MIN_HOLDOUT_DAYS."""
    if rows.empty:
        return None
    span = (pd.Timestamp(as_of) - pd.to_datetime(rows.ordered_at).min()).days
    if span >= 2 * holdout_days:
        return holdout_days
    third = span // 3
    return third if third >= MIN_HOLDOUT_DAYS else None


def evaluate_or_skip(rows: pd.DataFrame, as_of: datetime, *, holdout_days: int = 60, k: int = 10,
                     params: RecParams = RecParams()) -> dict:
    """`evaluate` on the window the history allows; when it allows none, a record of why (recalls null), so that
    a deployment with a short history still publishes its recommendations."""
    h = holdout_for(rows, as_of, holdout_days)
    reason = None
    if h is None:
        first = pd.to_datetime(rows.ordered_at).min() if len(rows) else None
        reason = (f"purchase history too short to hold out {MIN_HOLDOUT_DAYS}+ days (first purchase {first}, "
                  f"clock {as_of}): evaluation skipped")
    else:
        try:
            ev = evaluate(rows, as_of, holdout_days=h, k=k, params=params)
            if h < holdout_days:
                ev["note"] = f"history shorter than {2 * holdout_days} days: held out the last {h} days instead"
            return ev
        except ValueError as exc:
            reason = f"{exc}: evaluation skipped"
    log.warning("recommendations: %s", reason)
    return {"as_of": str(pd.Timestamp(as_of)), "cutoff": None, "holdout_days": h, "k": k, "skipped": reason,
            "model_version": None, "test_customers": 0, f"recall_at_{k}_model": None,
            f"recall_at_{k}_popularity": None}


def retrain_reason(stored: StoredModel | None, as_of: datetime, k: int, params: RecParams,
                   retrain: bool | None = None) -> str | None:
    """Why the model must be trained again now, or None: the stored one serves (`retrain`: True always, False only
    when there is none; None: when it is `BEACON_RETRAIN_EVERY_DAYS` old, like the ML models, or no longer fits)."""
    from beacon.config import settings

    if stored is None:
        return "no stored model"
    if retrain:
        return "asked"
    if retrain is False:
        return None
    if stored.params != asdict(params) or stored.k != k:
        return "parameters changed"
    age = (pd.Timestamp(as_of) - pd.Timestamp(stored.as_of)) / pd.Timedelta(days=1)
    if age < 0:
        return "the warehouse clock is before the model's"
    every = settings().retrain_every_days
    return f"the model is {age:g} days old (retrained every {every:g})" if age >= every else None


def write_recommendations(con, *, k: int = 10, holdout_days: int = 60, params: RecParams = RecParams(),
                          retrain: bool | None = None, full_refresh: bool = False) -> dict:
    """Keep `ml.recommendations` (top-k per customer with purchases) current, doing only what the day needs.

    When the item-item model is due (`retrain_reason`), or a changed customer bought a product it does not know:
    evaluate on the time split (`evaluate_or_skip`, appended to `ml.recommendation_evaluations`), train on every
    purchase up to the warehouse clock, store the model and replace the whole table. Otherwise recompute, against
    the stored model, only the customers whose purchase rows changed since (`recommend_store`), or everyone with
    `full_refresh`; both give the same table. One transaction either way. Returns the model's evaluation with
    `retrained` (the reason, or None), the customers recomputed and the rows written."""
    as_of = warehouse_clock(con)
    store.ensure_tables(con)
    try:
        store.digest_inputs(con, as_of, STATUSES)
        stored = store.load_model(con)
        why = retrain_reason(stored, as_of, k, params, retrain)
        if why is None:
            n = store.mark_changed(con, everyone=full_refresh)
            rows = store.changed_purchases(con, as_of, STATUSES)
            unknown = set(rows.product_id.astype(str)) - set(stored.items)
            if unknown:
                why = f"{len(unknown)} product(s) the model does not know"
        if why is not None:
            log.info("recommendations: training (%s)", why)
            return _train_and_write(con, as_of, k, holdout_days, params) | {"retrained": why}
        recs = ItemKNN.stored(stored).recommend_rows(rows, k).assign(model_version=stored.version)[RECS_COLUMNS]
        if n:
            with transaction(con):
                store.replace_changed(con, recs, RECS_COLUMNS)
    finally:
        store.drop_temp(con)
    ev = con.execute("""SELECT detail FROM ml.recommendation_evaluations WHERE model_version = ?
                        ORDER BY as_of DESC LIMIT 1""", [stored.version]).fetchall()
    ev = json.loads(ev[0][0]) if ev else {"k": k}
    return {**ev, "as_of": str(pd.Timestamp(as_of)), "model_as_of": str(pd.Timestamp(stored.as_of)),
            "retrained": None, "customers_recomputed": n, "model_version_written": stored.version,
            "rows_written": len(recs), "customers_written": int(recs.customer_id.nunique())}


def _train_and_write(con, as_of: datetime, k: int, holdout_days: int, params: RecParams) -> dict:
    """Evaluate, train on every purchase up to `as_of`, and replace the recommendations, the stored model and the
    input digests (temp table `_rec_inputs`) in one transaction."""
    rows = purchases(con, STATUSES)
    rows = rows[pd.to_datetime(rows.ordered_at) <= pd.Timestamp(as_of)]
    ev = evaluate_or_skip(rows, as_of, holdout_days=holdout_days, k=k, params=params)
    if rows.empty:  # nothing bought yet: nothing to recommend from; the previous table (if any) stays
        return {**ev, "model_version_written": None, "rows_written": 0, "customers_written": 0}
    model = ItemKNN(params).fit(rows, as_of)
    version = params.version(as_of)
    recs = model.recommend(k).assign(model_version=version)[RECS_COLUMNS]
    con.register("_recs", recs)
    try:
        with transaction(con):
            con.execute("DELETE FROM ml.recommendations")
            con.execute(f"INSERT INTO ml.recommendations ({', '.join(RECS_COLUMNS)}) "
                        f"SELECT {', '.join(RECS_COLUMNS)} FROM _recs")
            con.execute("DELETE FROM ml.recommendation_evaluations WHERE as_of = ? AND model_version = ?",
                        [as_of, version])
            con.execute("INSERT INTO ml.recommendation_evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [as_of, version, ev["cutoff"], k, ev["test_customers"], ev[f"recall_at_{k}_model"],
                         ev[f"recall_at_{k}_popularity"], json.dumps(ev)])
            store.save_model(con, StoredModel(version=version, as_of=pd.Timestamp(as_of).to_pydatetime(), k=k,
                                              params=asdict(params), items=model.items, popularity=model.popularity,
                                              similarity=model.S))
            con.execute("DELETE FROM ml.recommendation_inputs")
            con.execute("INSERT INTO ml.recommendation_inputs SELECT customer_id, purchases, digest FROM _rec_inputs")
    finally:
        con.unregister("_recs")
    return {**ev, "model_version_written": version, "rows_written": len(recs),
            "customers_written": int(recs.customer_id.nunique())}
