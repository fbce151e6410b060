"""Pairwise precision, recall and F1 of a clustering against true entity ids, from pair counts."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class PairwiseScores:
    """Pairwise scores of predicted clusters against true entities."""

    precision: float
    recall: float
    f1: float
    true_positive_pairs: int
    predicted_pairs: int
    true_pairs: int
    records: int
    clusters: int
    true_entities: int

    def to_dict(self) -> dict:
        return asdict(self)


def _pairs(counts: np.ndarray) -> int:
    counts = counts.astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def pairwise_scores(cluster_ids, entity_ids) -> PairwiseScores:
    """Score aligned arrays of predicted cluster ids and true entity ids without enumerating pairs."""
    frame = pd.DataFrame({"c": np.asarray(cluster_ids), "e": np.asarray(entity_ids)})
    if len(frame) and (frame.c.isna().any() or frame.e.isna().any()):
        raise ValueError("cluster and entity ids must not be null (give every record its own id)")
    tp = _pairs(frame.groupby(["c", "e"], sort=False).size().to_numpy())
    pred = _pairs(frame.groupby("c", sort=False).size().to_numpy())
    true = _pairs(frame.groupby("e", sort=False).size().to_numpy())
    # No predicted pairs means no false links (precision 1); no true pairs means nothing to find (recall 1).
    precision = tp / pred if pred else 1.0
    recall = tp / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PairwiseScores(precision=precision, recall=recall, f1=f1, true_positive_pairs=tp, predicted_pairs=pred,
                          true_pairs=true, records=len(frame), clusters=int(frame.c.nunique()),
                          true_entities=int(frame.e.nunique()))
