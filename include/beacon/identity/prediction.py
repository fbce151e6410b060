"""Prediction: score candidate pairs with a stored model, on whole data or on a daily increment, without retraining.

Both entry points share one preparation (`_scoring_settings`): the model's columns checked against the data,
the blocking rules chosen for this data's size, and the prior rescaled to the population scored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import duckdb
import pandas as pd

from beacon.identity.blocking import rule_sql, select_rules
from beacon.identity.model import TrainedModel
from beacon.identity.session import connect, frames_of, prepare, splink_linker

PAIR_COLUMNS = ["unique_id_l", "unique_id_r", "match_probability"]


def n_pairs(sizes: Sequence[int]) -> float:
    """Candidate pairs of one frame (deduplicate) or two (link)."""
    return float(sizes[0]) * (sizes[0] - 1) / 2 if len(sizes) == 1 else float(sizes[0]) * sizes[1]


def rescaled_prior(prior: float, trained: Sequence[int], now: Sequence[int]) -> float:
    """Prior for data of another size: true matches grow with the record count, candidate pairs with its square."""
    if list(trained) == list(now):
        return prior
    matches_then = prior * n_pairs(trained)
    matches_now = matches_then * (min(now) / min(trained) if len(now) == 2 else now[0] / trained[0])
    return float(min(max(matches_now / n_pairs(now), 1e-12), 0.999))


def _check_columns(model: TrainedModel, frames: Sequence[pd.DataFrame]) -> None:
    """Every column the model's roles (and extra comparisons) read is in every frame."""
    for frame in frames:
        missing = [c for c in list(model.roles.values()) + model.extra_columns if c not in frame.columns]
        if missing:
            raise ValueError(f"column(s) {missing} of the model's roles are missing from the data")


def _scoring_settings(con: duckdb.DuckDBPyConnection, tables: Sequence[str], model: TrainedModel,
                      sizes: Sequence[int]) -> dict:
    """The model's Splink settings for scoring these tables: blocking rules within this data's pair budget, and
    the prior rescaled to `sizes` (the population scored) unless the model's config says not to."""
    cfg = model.config
    settings = dict(model.settings)
    settings["blocking_rules_to_generate_predictions"] = [rule_sql(r) for r in select_rules(con, tables, model.roles,
                                                                                             cfg)]
    if cfg.rescale_prior and model.trained_on.get("records"):
        settings["probability_two_random_records_match"] = rescaled_prior(
            settings["probability_two_random_records_match"], model.trained_on["records"], sizes)
    return settings


def predict_pairs(df: pd.DataFrame | Sequence[pd.DataFrame], model: TrainedModel, threshold: float | None = None, *,
                  id_col: str = "unique_id") -> pd.DataFrame:
    """Score candidate pairs with a trained model; returns unique_id_l, unique_id_r, match_probability (>= threshold).

    One frame deduplicates; two frames link across frames only. Blocking rules over the pair budget are skipped.
    """
    from splink import SettingsCreator

    threshold = model.config.match_threshold if threshold is None else threshold
    frames = frames_of(df)
    if (len(frames) == 1) != (model.link_type == "dedupe_only"):
        raise ValueError(f"model was trained for {model.link_type}; got {len(frames)} frame(s)")
    _check_columns(model, frames)
    con = connect(model.config)
    tables = prepare(con, frames, model.roles, model.extra_columns, id_col)
    settings = _scoring_settings(con, tables, model, [len(f) for f in frames])
    # The model's settings were checked when it was trained (and _check_columns checked the roles): no second check.
    linker = splink_linker(con, tables, SettingsCreator.from_path_or_dict(settings), validate=False)
    pred = linker.inference.predict(threshold_match_probability=threshold, warning_mode="never")
    cols = PAIR_COLUMNS
    if len(frames) == 2:
        cols = ["source_dataset_l", "unique_id_l", "source_dataset_r", "unique_id_r", "match_probability"]
    out = con.execute(f"SELECT {', '.join(cols)} FROM {pred.physical_name}").df()
    con.close()
    if len(frames) == 2:
        # Splink may put either input on the left; report frame 0 on the left.
        swap = out.source_dataset_l != "input_0"
        out.loc[swap, ["unique_id_l", "unique_id_r"]] = out.loc[swap, ["unique_id_r", "unique_id_l"]].to_numpy()
        out = out[PAIR_COLUMNS]
    return out.reset_index(drop=True)


def predict_increment(new: pd.DataFrame, existing: pd.DataFrame, model: TrainedModel, threshold: float | None = None,
                      *, id_col: str = "unique_id") -> pd.DataFrame:
    """Score only the pairs that new records add (new-existing and new-new), never existing-existing ones.

    For daily increments of a dedupe model: the existing records' clusters stand, and these pairs say which
    cluster each new record joins (or which clusters it bridges). Term frequencies come from all records.
    """
    from splink import DuckDBAPI, Linker, SettingsCreator

    if model.link_type != "dedupe_only":
        raise ValueError("predict_increment needs a dedupe model")
    threshold = model.config.match_threshold if threshold is None else threshold
    _check_columns(model, [new, existing])
    con = connect(model.config)
    old_t, new_t = prepare(con, [existing, new], model.roles, model.extra_columns, id_col)
    con.execute(f"CREATE TABLE input_all AS SELECT * FROM {old_t} UNION ALL SELECT * FROM {new_t}").fetchall()
    clash = con.execute(f"SELECT count(*) FROM {new_t} JOIN {old_t} USING (unique_id)").fetchall()[0][0]
    if clash:
        raise ValueError(f"{clash} new record id(s) already exist among the existing records")
    settings = _scoring_settings(con, ["input_all"], model, [len(existing) + len(new)])
    db_api = DuckDBAPI(connection=con)
    linker = Linker(db_api.register("input_all"), SettingsCreator.from_path_or_dict(settings), log_level=logging.ERROR)
    for col in linker._settings_obj._term_frequency_columns:
        linker.table_management.compute_tf_table(col.unquote().name)
    old_sdf, new_sdf = db_api.register(old_t), db_api.register(new_t)
    parts = [linker.inference.predict_between(old_sdf, new_sdf, threshold_match_probability=threshold,
                                              warning_mode="never"),
             linker.inference.predict_within(new_sdf, threshold_match_probability=threshold, warning_mode="never")]
    out = con.execute(" UNION ALL ".join(f"SELECT {', '.join(PAIR_COLUMNS)} FROM {p.physical_name}"
                                         for p in parts)).df()
    con.close()
    return out.reset_index(drop=True)
