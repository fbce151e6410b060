"""Probabilistic person-record linkage with Splink 5 on DuckDB: roles from column names, train, store, predict, cluster.

Workflow: `train(df)` learns m/u weights on a bounded sample and returns a `TrainedModel`; `model.to_json()` stores it
as configuration; `TrainedModel.from_json(text)` + `predict_pairs(df, model)` score any data of the same shape
without retraining; `cluster(df, pairs)` turns scored pairs into one cluster id per record.

This module is the linker's public face; the work is done in modules of one job each: `roles` (column roles),
`model` (LinkageConfig, TrainedModel: the thresholds and their trade-off), `session` (normalized input tables),
`blocking` (candidate pairs within a budget), `comparisons` (Splink comparisons per role), `training`,
`prediction` (pairs and increments, the prior rescaled to the scored population, which the guards also use) and
`clustering`.
"""

from __future__ import annotations

from beacon.identity.blocking import REFINE_WITH
from beacon.identity.clustering import cluster, one_to_one_links
from beacon.identity.model import DEFAULT_BLOCKING, LinkageConfig, TrainedModel, TrainingError
from beacon.identity.prediction import predict_increment, predict_pairs, rescaled_prior
from beacon.identity.roles import ROLE_ALIASES, ROLES, detect_roles
from beacon.identity.training import train

__all__ = ["DEFAULT_BLOCKING", "REFINE_WITH", "ROLES", "ROLE_ALIASES", "LinkageConfig", "TrainedModel",
           "TrainingError", "cluster", "detect_roles", "one_to_one_links", "predict_increment", "predict_pairs",
           "rescaled_prior", "train"]
