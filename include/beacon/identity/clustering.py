"""Clustering: scored pairs into one cluster id per record (connected components, or best links one to one)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def cluster(ids: Sequence | pd.Series | pd.DataFrame, pairs: pd.DataFrame, threshold: float | None = None, *,
            id_col: str = "unique_id", one_to_one: bool = False) -> pd.DataFrame:
    """Connected components over pairs >= threshold; returns unique_id, cluster_id (smallest member id) for every id.

    With `one_to_one`, each record keeps at most its single best link (greedy by probability), which suits linking
    two files that each hold one record per person.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if isinstance(ids, pd.DataFrame):
        ids = ids[id_col]
    node_ids = pd.Index(pd.Series(ids).astype(str))
    if node_ids.has_duplicates:
        raise ValueError("record ids must be unique")
    edges = pairs if threshold is None else pairs[pairs.match_probability >= threshold]
    if one_to_one:
        edges = one_to_one_links(edges)
    left = node_ids.get_indexer(edges.unique_id_l.astype(str))
    right = node_ids.get_indexer(edges.unique_id_r.astype(str))
    if (left < 0).any() or (right < 0).any():
        raise ValueError("pairs refer to ids that are not among the records")
    n = len(node_ids)
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # cluster_id = the smallest member id: in id order, the first node seen of each component.
    values = node_ids.to_numpy()
    order = np.argsort(values, kind="stable")
    comp, first = np.unique(labels[order], return_index=True)
    smallest = np.empty(len(comp), dtype=object)
    smallest[comp] = values[order[first]]
    return pd.DataFrame({"unique_id": values, "cluster_id": smallest[labels]})


def one_to_one_links(pairs: pd.DataFrame) -> pd.DataFrame:
    """Keep each id's best link only: greedy by descending probability, an id already linked is not linked again."""
    ordered = pairs.sort_values("match_probability", ascending=False, kind="stable")
    used_l: set = set()
    used_r: set = set()
    keep = np.zeros(len(ordered), dtype=bool)
    for i, (a, b) in enumerate(zip(ordered.unique_id_l.to_numpy(), ordered.unique_id_r.to_numpy(), strict=True)):
        if a not in used_l and b not in used_r:
            used_l.add(a)
            used_r.add(b)
            keep[i] = True
    return ordered[keep]
