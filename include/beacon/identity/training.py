"""Training: prior from deterministic rules, u by random sampling, m by EM on two blocking rules, never half-trained.

`train(df)` learns m/u weights on a bounded sample and returns a `TrainedModel` (stored with `to_json`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import duckdb
import pandas as pd

from beacon.identity.blocking import select_rules
from beacon.identity.comparisons import role_comparisons
from beacon.identity.model import LinkageConfig, TrainedModel, TrainingError
from beacon.identity.roles import resolve_roles
from beacon.identity.session import connect, frames_of, prepare, splink_linker
from beacon.warehouse import quote_ident

log = logging.getLogger(__name__)


def floor_m(settings: dict, floor: float) -> dict:
    """Keep every trained m probability >= floor: EM gives exactly 0 to levels never seen among its matches, which
    would make one disagreement veto a link whatever the other fields say."""
    for comp in settings.get("comparisons", []):
        for level in comp.get("comparison_levels", []):
            m = level.get("m_probability")
            if m is not None and not level.get("is_null_level") and m < floor:
                level["m_probability"] = floor
    return settings


def train(df: pd.DataFrame | Sequence[pd.DataFrame], roles: Mapping[str, str] | None = None, *,
          id_col: str = "unique_id", config: LinkageConfig | None = None) -> TrainedModel:
    """Train a model: prior from deterministic rules, u by random sampling, m by EM on two blocking rules.

    One frame means deduplicate; two frames mean link only (records are not matched within a frame).
    At most `config.train_sample` records are used, so training time is bounded whatever the input size.
    """
    from splink import SettingsCreator, block_on

    cfg = config or LinkageConfig()
    frames = frames_of(df)
    roles, extra = resolve_roles(frames[0], roles, id_col, cfg)
    sizes = [len(f) for f in frames]  # a uniform sample keeps the prior of the whole input: both scale with n²
    share = min(1.0, cfg.train_sample / sum(sizes))
    if share < 1.0:
        # Sampled from the records in id order: the same records give the same sample (and model) whatever order
        # they arrive in (a DuckDB scan and a Spark Parquet read order rows differently; at 1M people the two
        # engines' customers differed by 355 before).
        frames = [f.sort_values(id_col, kind="stable").sample(frac=share, random_state=cfg.seed) for f in frames]
    con = connect(cfg)
    tables = prepare(con, frames, roles, extra, id_col)
    rules = select_rules(con, tables, roles, cfg)
    link_type = "dedupe_only" if len(tables) == 1 else "link_only"
    settings = SettingsCreator(
        link_type=link_type,
        unique_id_column_name="unique_id",
        comparisons=role_comparisons(roles, extra, cfg),
        blocking_rules_to_generate_predictions=[block_on(*r) for r in rules],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    linker = splink_linker(con, tables, settings)
    linker.training.estimate_probability_two_random_records_match(
        [block_on(*r) for r in _deterministic_rules(roles)], recall=cfg.prior_recall)
    linker.training.estimate_u_using_random_sampling(max_pairs=cfg.u_max_pairs, seed=cfg.seed)
    comparisons = [c["output_column_name"] for c in linker.misc.save_model_to_json()["comparisons"]]
    for alternatives in _em_rules(con, tables[0], roles):
        if not any(_em_session(linker, rule) for rule in alternatives):  # any() stops at the first that trains
            con.close()
            raise TrainingError(f"EM failed on every candidate block {alternatives}: the m probabilities these "
                                "blocks train are unknown, and a half-trained model is never returned")
    model = floor_m(linker.misc.save_model_to_json(), cfg.m_floor)
    con.close()
    return TrainedModel(settings=model, roles=roles, extra_columns=extra, config=cfg, link_type=link_type,
                        trained_on={"records": sizes, "sampled": [len(f) for f in frames], "comparisons": comparisons})


def _em_session(linker, rule: Sequence[str]) -> bool:
    """One EM session blocked on `rule`, never leaving a half-trained model behind; True when it trained.

    Splink 5 prepares a session by editing the linker's live settings: it drops the comparisons the blocking rule
    uses and replaces the prior with the in-block match rate, and restores them only when the session succeeds.
    A session that raised left that half-made model behind (on the 100k/seed-42 world: no phone comparison and a
    prior of 0.37 instead of 3.5e-6), and it linked nearly every candidate pair (issue 12). So the settings are
    copied before and put back after a failure.

    Why a session fails: inside a block where nearly every pair is a match (one phone number), the few pairs at
    a level such as "surnames differ" fall to the non-match side and EM squares that level's m at each iteration
    (4e-10, 2e-20, ... 0.0); Splink 5 refuses the 0.0. The other parameters have converged long before, and the
    m floor lifts the collapsed level afterwards, so the session is run again with fewer iterations (EM stopped
    before the underflow) before the next block is tried."""
    import dataclasses

    from splink import block_on
    from splink.internals.exceptions import EMTrainingException

    obj = linker._settings_obj
    training = obj.training_settings  # a frozen dataclass: replaced, then put back
    default_iterations = training.max_iterations
    iterations = default_iterations
    try:
        while iterations >= 2:
            saved = linker._settings_obj.core_model_settings.copy()  # a deep copy, training history included
            obj.training_settings = dataclasses.replace(training, max_iterations=iterations)
            try:
                linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule))
                if iterations < default_iterations:
                    log.info("EM on block %s: stopped after at most %d iterations (an m collapsing to 0)",
                             rule, iterations)
                return True
            except (ValueError, EMTrainingException) as exc:
                linker._settings_obj.core_model_settings = saved
                if not _is_m_underflow(exc):
                    log.warning("EM on block %s failed (%s); the model is restored", rule, str(exc).split(". ")[0])
                    return False
                iterations //= 2
        log.warning("EM on block %s underflows even when stopped early; the model is restored", rule)
        return False
    finally:
        obj.training_settings = training


def _deterministic_rules(roles: Mapping[str, str]) -> list[tuple[str, ...]]:
    """Near-certain matching rules for the prior: a strong identifier plus a name, or name + birth date."""
    out = []
    for strong in ("national_id", "email", "phone", "date_of_birth"):
        if strong in roles:
            name = [n for n in ("given_name", "surname") if n in roles]
            out.append((strong, *name))
    if not out and {"given_name", "surname", "postcode"} <= set(roles):
        out.append(("given_name", "surname", "postcode"))
    if not out:
        out.append(tuple(list(roles)[:3]))
    return out


def _em_rules(con: duckdb.DuckDBPyConnection, table: str, roles: Mapping[str, str]) -> list[list[tuple[str, ...]]]:
    """Two EM blocking rules: names plus a place (trains everything else) and a well-filled identifier (trains
    names and place). The place keeps namesakes, who crowd name-only blocks in large data, from passing for matches."""
    n = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] or 1
    filled = {r: con.execute(f"SELECT count({quote_ident(r)}) FROM {table}").fetchall()[0][0] / n for r in roles}
    sessions: list[list[tuple[str, ...]]] = []
    names = tuple(r for r in ("given_name", "surname") if r in roles)
    if names:
        where = next((r for r in ("postcode", "city", "state") if r in roles and filled[r] >= 0.5), None)
        sessions.append([(*names, where)] if where else [names])
    # Identifiers that say nothing about the name come first: pairs sharing an email derived from a name
    # (first.last@) but not a person are namesakes, who would teach EM that matches may differ in place.
    # Later candidates are fallbacks for when EM fails on an earlier one.
    second = [cand for cand in (("date_of_birth",), ("national_id",), ("phone",), ("email",),
                                ("postcode", "street_number"), ("postcode",), ("city",))
              if all(c in roles and filled[c] >= 0.5 for c in cand)]
    if not second:
        rest = [r for r in roles if r not in names]
        second = [(rest[0],) if rest else (list(roles)[0],)]
    sessions.append(second)
    return sessions


def _is_m_underflow(exc: BaseException) -> bool:
    """Splink's refusal of an m probability that underflowed (below its M_U_CLAMP_MIN).

    Splink raises it as a plain ValueError from its level validation, with no type or field of its own to test,
    so its message is the only mark; it is checked here, in one place, against the phrase of that message."""
    return isinstance(exc, ValueError) and "is below the minimum allowed value" in str(exc)
