"""Probabilistic person-record linkage with Splink 5 on DuckDB: roles from column names, train, store, predict, cluster.

Workflow: `train(df)` learns m/u weights on a bounded sample and returns a `TrainedModel`; `model.to_json()` stores it
as configuration; `TrainedModel.from_json(text)` + `predict_pairs(df, model)` score any data of the same shape
without retraining; `cluster(df, pairs)` turns scored pairs into one cluster id per record.

Trade-off of the thresholds (`LinkageConfig`): raising `match_threshold` / `cluster_threshold` removes weak links
(higher precision, fewer merged people, lower recall); lowering them merges more records per person (higher recall)
at the risk of chaining two people together through one false link. Blocking rules bound which pairs are compared
at all: a pair that no rule brings together can never be linked, and rules producing more candidate pairs than
`max_pairs_per_record * records` are skipped so prediction stays fast on millions of records.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import duckdb
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# Column roles the engine understands, with the column names (compared without case, spaces or underscores)
# that map to each role when roles are not given explicitly.
ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "given_name": ("given_name", "first_name", "firstname", "forename", "fname", "first"),
    "surname": ("surname", "last_name", "lastname", "family_name", "lname", "last"),
    "date_of_birth": ("date_of_birth", "dob", "birth_date", "birthdate", "birthday", "date_birth"),
    "street_number": ("street_number", "house_number", "house_no", "street_no", "streetnr"),
    "address_1": ("address_1", "address1", "address_line1", "address_line_1", "street", "street_address",
                  "address"),
    "address_2": ("address_2", "address2", "address_line2", "address_line_2"),
    "city": ("suburb", "city", "town", "locality"),
    "postcode": ("postcode", "postal_code", "post_code", "zip", "zipcode", "zip_code"),
    "state": ("state", "region", "province"),
    "phone": ("phone", "phone_e164", "phone_number", "mobile", "telephone", "tel"),
    "email": ("email", "email_canonical", "email_address", "e_mail"),
    "national_id": ("soc_sec_id", "ssn", "social_security_number", "national_id", "nino"),
}
ROLES = tuple(ROLE_ALIASES)

# Candidate blocking rules (conjunctions of roles), strongest identifiers first. A rule is used only when all its
# roles are present and it stays within the pair budget.
DEFAULT_BLOCKING: tuple[tuple[str, ...], ...] = (
    ("national_id",),
    ("email",),
    ("phone",),
    ("given_name", "surname"),
    ("surname", "date_of_birth"),
    ("given_name", "date_of_birth"),
    ("date_of_birth",),
    ("surname", "postcode"),
    ("given_name", "postcode"),
    ("address_1", "postcode"),
    ("street_number", "address_1"),
    ("street_number", "postcode"),
    ("given_name", "city"),
    ("surname", "city"),
)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def detect_roles(columns: Sequence[str], exclude: Sequence[str] = ()) -> dict[str, str]:
    """Map roles to column names by name alone; the first column matching a role wins, unknown columns are left out."""
    alias_to_role = {_norm(a): role for role, aliases in ROLE_ALIASES.items() for a in aliases}
    skip = {_norm(c) for c in exclude}
    roles: dict[str, str] = {}
    for col in columns:
        role = alias_to_role.get(_norm(col))
        if role and role not in roles and _norm(col) not in skip:
            roles[role] = col
    return roles


class TrainingError(RuntimeError):
    """No trustworthy model could be trained (callers fall back to something known to be safe)."""


@dataclass
class LinkageConfig:
    """Thresholds, rules and resources of the linker (the defaults were chosen on FEBRL3 and checked elsewhere)."""

    # Pairs below this match probability are dropped by predict_pairs.
    match_threshold: float = 0.9
    # Pairs at or above this probability become edges of the clustering (connected components).
    cluster_threshold: float = 0.9
    # Candidate blocking rules (role conjunctions); None = DEFAULT_BLOCKING.
    blocking: tuple[tuple[str, ...], ...] | None = None
    # A blocking rule producing more candidate pairs than this many per record is refined with one more role
    # (or skipped); all rules together stop at the total. Prediction time is linear in the candidate pairs.
    max_pairs_per_record: float = 5.0
    max_total_pairs_per_record: float = 8.0
    # Budgets never go below this many pairs (small data sets keep every rule).
    min_pair_budget: int = 2_000_000
    # Training: at most this many records are used (uniform sample); u from this many random pairs. On the 1M
    # world a 300k sample drove one EM block's m below what Splink accepts (the next block is then used instead).
    train_sample: int = 150_000
    u_max_pairs: float = 1e6
    # Assumed recall of the deterministic rules used to estimate the prior match probability.
    prior_recall: float = 0.8
    # Term-frequency adjustments on names, city and address (rare exact values count more).
    term_frequency: bool = True
    # Smallest m probability of a level (EM sets unseen levels to 0, an absolute veto).
    m_floor: float = 1e-4
    # Unknown columns: ignored, or compared with a generic Jaro-Winkler comparison.
    unknown_columns: Literal["ignore", "compare"] = "ignore"
    # Rescale the prior to the size of the data being scored (matches grow with n, pairs with n²): right when the
    # scored data are a whole population like the training input; switch off to score a random sample of it.
    rescale_prior: bool = True
    # DuckDB resources for prediction (None = all cores / DuckDB's default memory limit).
    threads: int | None = None
    memory_limit: str | None = None
    seed: int = 42

    def rules(self) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(r) for r in (self.blocking or DEFAULT_BLOCKING))


@dataclass
class TrainedModel:
    """A trained Splink model plus the roles and configuration needed to reuse it on new data."""

    settings: dict
    roles: dict[str, str]
    extra_columns: list[str]
    config: LinkageConfig
    link_type: str
    trained_on: dict = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialize the model (Splink settings with m/u, roles, config) to a JSON string."""
        return json.dumps({"format": "beacon.identity/1", "settings": self.settings, "roles": self.roles,
                           "extra_columns": self.extra_columns, "config": asdict(self.config),
                           "link_type": self.link_type, "trained_on": self.trained_on}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> TrainedModel:
        """Load a model stored with `to_json`."""
        d = json.loads(text)
        if d.get("format") != "beacon.identity/1":
            raise ValueError("not a beacon.identity model (missing format 'beacon.identity/1')")
        cfg = d["config"]
        if cfg.get("blocking") is not None:
            cfg["blocking"] = tuple(tuple(r) for r in cfg["blocking"])
        return cls(settings=d["settings"], roles=d["roles"], extra_columns=d["extra_columns"],
                   config=LinkageConfig(**cfg), link_type=d["link_type"], trained_on=d.get("trained_on", {}))


# ---------------------------------------------------------------------------------------------- preparation


def _sql_str(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def _role_sql(role: str, col: str) -> str:
    """SQL normalizing one input column for its role (null for blanks), so comparisons see clean values."""
    c = f"CAST({_sql_str(col)} AS VARCHAR)"
    text = f"nullif(trim(regexp_replace(lower(strip_accents({c})), '\\s+', ' ', 'g')), '')"
    digits = f"nullif(regexp_replace({c}, '[^0-9]', '', 'g'), '')"
    if role in ("phone", "national_id"):
        return digits
    if role == "date_of_birth":
        # Any layout with year first (YYYYMMDD, YYYY-MM-DD, timestamps) becomes YYYYMMDD.
        return f"nullif(left(regexp_replace({c}, '[^0-9]', '', 'g'), 8), '')"
    if role == "postcode":
        return f"nullif(upper(regexp_replace({c}, '\\s', '', 'g')), '')"
    if role in ("given_name", "surname"):
        return f"nullif(regexp_replace({text}, '[^a-z ''-]', '', 'g'), '')"
    return text


def _prepare_sql(src: str, roles: Mapping[str, str], extra: Sequence[str], id_col: str) -> str:
    cols = [f"CAST({_sql_str(id_col)} AS VARCHAR) AS unique_id"]
    cols += [f"{_role_sql(r, c)} AS {r}" for r, c in roles.items()]
    cols += [f"nullif(trim(lower(CAST({_sql_str(c)} AS VARCHAR))), '') AS x_{_norm(c)}" for c in extra]
    return f"SELECT {', '.join(cols)} FROM {src}"


def _resolve_roles(df: pd.DataFrame, roles: Mapping[str, str] | None, id_col: str,
                   cfg: LinkageConfig) -> tuple[dict[str, str], list[str]]:
    if id_col not in df.columns:
        raise ValueError(f"id column {id_col!r} not in the data (columns: {list(df.columns)})")
    found = dict(roles) if roles is not None else detect_roles(list(df.columns), exclude=[id_col])
    unknown = [r for r in found if r not in ROLE_ALIASES]
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; known roles: {list(ROLES)}")
    missing = [c for c in found.values() if c not in df.columns]
    if missing:
        raise ValueError(f"column(s) {missing} given for roles are not in the data")
    used = set(found.values()) | {id_col}
    extra = [c for c in df.columns if c not in used] if cfg.unknown_columns == "compare" else []
    if len(found) + len(extra) < 2:
        raise ValueError(f"need at least two comparable columns, found roles {found} in {list(df.columns)}")
    return found, extra


def _connect(cfg: LinkageConfig) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {int(cfg.threads or os.cpu_count() or 1)}").fetchall()
    if cfg.memory_limit:
        con.execute(f"SET memory_limit = '{cfg.memory_limit}'").fetchall()
    con.execute("SET preserve_insertion_order = false").fetchall()
    return con


def _prepare(con: duckdb.DuckDBPyConnection, frames: Sequence[pd.DataFrame], roles: Mapping[str, str],
             extra: Sequence[str], id_col: str) -> list[str]:
    """Load each input frame into DuckDB as a normalized table `input_<i>` and check ids are unique and non-null."""
    names = []
    for i, frame in enumerate(frames):
        con.register(f"raw_{i}", frame)
        con.execute(f"CREATE TABLE input_{i} AS {_prepare_sql(f'raw_{i}', roles, extra, id_col)}").fetchall()
        con.unregister(f"raw_{i}")
        n, n_ids, n_null = con.execute(f"SELECT count(*), count(DISTINCT unique_id), count(*) - count(unique_id) "
                                       f"FROM input_{i}").fetchall()[0]
        if n_null:
            raise ValueError(f"{n_null} record(s) have no value in the id column {id_col!r}")
        if n_ids != n:
            raise ValueError(f"id column {id_col!r} is not unique ({n - n_ids} duplicate ids)")
        names.append(f"input_{i}")
    return names


# ---------------------------------------------------------------------------------------------- model


def _location_comparison(roles: Mapping[str, str]):
    """One hierarchical comparison over postcode, city and state, so places implied by each other are not counted
    twice (a US zip implies its city and state); where they are independent (FEBRL) the joint level learns that."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    have = [r for r in ("postcode", "city", "state") if r in roles]
    both = " AND ".join
    null = both(f'("{r}_l" IS NULL OR "{r}_r" IS NULL)' for r in have)
    pc_eq, city_eq = '"postcode_l" = "postcode_r"', '"city_l" = "city_r"'
    pc_typo = f'{_edit_sql("postcode_l", "postcode_r")} <= 1'
    st_eq = '"state_l" = "state_r"'
    levels = [cll.CustomLevel(null, "no place on one side").configure(is_null_level=True)]
    if {"postcode", "city", "state"} <= set(have):
        levels.append(cll.CustomLevel(both([pc_eq, city_eq, st_eq]), "same postcode, city and state"))
    if {"postcode", "city"} <= set(have):
        levels.append(cll.CustomLevel(both([pc_eq, city_eq]), "same postcode and city"))
    if "postcode" in have:
        levels.append(cll.CustomLevel(pc_eq, "same postcode"))
    if {"postcode", "city"} <= set(have):
        levels.append(cll.CustomLevel(both([city_eq, pc_typo]), "same city, postcode one edit apart"))
    if {"city", "state"} <= set(have):
        levels.append(cll.CustomLevel(both([city_eq, st_eq]), "same city and state"))
    if "city" in have:
        levels.append(cll.CustomLevel(city_eq, "same city"))
        levels.append(cll.CustomLevel('jaro_winkler_similarity("city_l", "city_r") >= 0.9', "city similar"))
    if "postcode" in have:
        levels.append(cll.CustomLevel(pc_typo, "postcode one edit apart"))
    if "state" in have:
        levels.append(cll.CustomLevel(st_eq, "same state"))
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(levels, output_column_name="place", comparison_description="postcode > city > state")


def _edit_sql(a: str, b: str) -> str:
    """Damerau-Levenshtein distance, computed only for pairs that Jaro-Winkler finds close (a one- or two-edit
    difference always is): DuckDB's damerau_levenshtein is ~40x slower than jaro_winkler_similarity."""
    return f"(CASE WHEN jaro_winkler_similarity({a}, {b}) >= 0.8 THEN damerau_levenshtein({a}, {b}) ELSE 99 END)"


def _typo_comparison(role: str, edits: Sequence[int], tf: bool = False):
    """Null, exact (optionally term-frequency adjusted), within k typos for each k, anything else."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    exact = cll.ExactMatchLevel(role)
    if tf:
        exact = exact.configure(tf_adjustment_column=role)
    levels = [cll.NullLevel(role), exact]
    levels += [cll.CustomLevel(f'{_edit_sql(f"{role}_l", f"{role}_r")} <= {k}', f"{role} within {k} edit(s)")
               for k in edits]
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(levels, output_column_name=role, comparison_description=f"{role} with typos")


def _email_comparison():
    """Exact, nearly equal (a typo; Jaro-Winkler >= 0.97, which edit distance costs 40x more to find), else."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    return cl.CustomComparison(
        [cll.NullLevel("email"), cll.ExactMatchLevel("email"),
         cll.CustomLevel('jaro_winkler_similarity("email_l", "email_r") >= 0.97', "email nearly equal (typo)"),
         cll.ElseLevel()], output_column_name="email", comparison_description="email")


def _name_comparison(role: str, roles: Mapping[str, str], tf: bool):
    """Splink's NameComparison levels plus one for first and last name entered the other way round."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    other = "surname" if role == "given_name" else "given_name"
    exact = cll.ExactMatchLevel(role)
    if tf:
        exact = exact.configure(tf_adjustment_column=role)
    levels = [cll.NullLevel(role), exact, cll.JaroWinklerLevel(role, 0.92), cll.JaroWinklerLevel(role, 0.88)]
    if other in roles:
        levels.append(cll.CustomLevel(f'jaro_winkler_similarity("{role}_l", "{other}_r") >= 0.88',
                                      f"{role} similar to the other record's {other} (swapped)"))
    levels += [cll.JaroWinklerLevel(role, 0.7), cll.ElseLevel()]
    return cl.CustomComparison(levels, output_column_name=role, comparison_description=f"{role} (name)")


def _comparisons(roles: Mapping[str, str], extra: Sequence[str], cfg: LinkageConfig) -> list:
    import splink.comparison_library as cl

    tf = cfg.term_frequency
    out = []
    for role in roles:
        if role in ("given_name", "surname"):
            c = _name_comparison(role, roles, tf)
        elif role == "date_of_birth":
            c = cl.DateOfBirthComparison(role, input_is_string=True, datetime_format="%Y%m%d",
                                         invalid_dates_as_null=False)
        elif role in ("address_1", "address_2"):
            c = cl.JaroWinklerAtThresholds(role, [0.9, 0.7]).configure(term_frequency_adjustments=tf)
        elif role == "street_number":
            c = _typo_comparison(role, [1], tf)
        elif role in ("postcode", "city", "state"):
            continue  # one place comparison below
        elif role in ("phone", "national_id"):
            c = _typo_comparison(role, [1, 2])
        elif role == "email":
            # Exact or one typo only: Splink's EmailComparison also rewards equal usernames, which for
            # first.last@company addresses repeats the name evidence and links namesakes.
            c = _email_comparison()
        else:  # pragma: no cover - roles are validated in _resolve_roles
            raise ValueError(role)
        out.append(c)
    if any(r in roles for r in ("postcode", "city", "state")):
        out.append(_location_comparison(roles))
    out += [cl.JaroWinklerAtThresholds(f"x_{_norm(c)}", [0.9, 0.7]) for c in extra]
    return out


def _floor_m(settings: dict, floor: float) -> dict:
    """Keep every trained m probability >= floor: EM gives exactly 0 to levels never seen among its matches, which
    would make one disagreement veto a link whatever the other fields say."""
    for comp in settings.get("comparisons", []):
        for level in comp.get("comparison_levels", []):
            m = level.get("m_probability")
            if m is not None and not level.get("is_null_level") and m < floor:
                level["m_probability"] = floor
    return settings


def _rule_sql(rule: Sequence[str]) -> str:
    return " AND ".join(f'l."{r}" = r."{r}"' for r in rule)


def _count_rule_pairs(con: duckdb.DuckDBPyConnection, tables: Sequence[str], rule: Sequence[str]) -> int:
    """Candidate pairs a conjunction rule generates, from block sizes (no pairs are built)."""
    keys = ", ".join(f'"{r}"' for r in rule)
    not_null = " AND ".join(f'"{r}" IS NOT NULL' for r in rule)
    if len(tables) == 1:
        sql = (f"SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM (SELECT count(*) AS n FROM {tables[0]} "
               f"WHERE {not_null} GROUP BY {keys})")
    else:
        sql = (f"SELECT coalesce(sum(a.n * b.n), 0) FROM (SELECT {keys}, count(*) AS n FROM {tables[0]} WHERE {not_null} "
               f"GROUP BY {keys}) a JOIN (SELECT {keys}, count(*) AS n FROM {tables[1]} WHERE {not_null} GROUP BY {keys}) b "
               f"USING ({keys})")
    return int(con.execute(sql).fetchall()[0][0])


REFINE_WITH = ("state", "postcode", "city", "date_of_birth", "given_name", "surname")


def _select_rules(con: duckdb.DuckDBPyConnection, tables: Sequence[str], roles: Mapping[str, str],
                  cfg: LinkageConfig) -> list[tuple[str, ...]]:
    """Blocking rules for this data: each candidate within the per-rule budget, else refined with one more role
    until it is; rules are taken in order until the total budget is spent. Small data keep every rule."""
    n = sum(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in tables)
    budget = max(cfg.min_pair_budget, cfg.max_pairs_per_record * n)
    total_budget = max(cfg.min_pair_budget, cfg.max_total_pairs_per_record * n)
    chosen: list[tuple[str, ...]] = []
    total = 0
    for rule in cfg.rules():
        if not all(r in roles for r in rule):
            continue
        options = [rule] + [(*rule, r) for r in REFINE_WITH if r in roles and r not in rule]
        for cand in options:
            if any(set(c) <= set(cand) for c in chosen):
                break  # every pair of this rule is already generated by a chosen one
            pairs = _count_rule_pairs(con, tables, cand)
            if pairs <= budget and total + pairs <= total_budget:
                chosen.append(cand)
                total += pairs
                break
            log.info("blocking rule %s: %s candidate pairs over budget", cand, f"{pairs:,}")
    if not chosen:
        raise ValueError(f"no blocking rule applies to roles {sorted(roles)} within the pair budget")
    log.info("blocking rules %s: at most %s candidate pairs for %s records", chosen, f"{total:,}", f"{n:,}")
    return chosen


def _splink_linker(con: duckdb.DuckDBPyConnection, tables: Sequence[str], settings):
    from splink import DuckDBAPI, Linker

    db_api = DuckDBAPI(connection=con)
    sdfs = [db_api.register(t) for t in tables]
    return Linker(sdfs if len(sdfs) > 1 else sdfs[0], settings, log_level=logging.ERROR)


def _n_pairs(sizes: Sequence[int]) -> float:
    return float(sizes[0]) * (sizes[0] - 1) / 2 if len(sizes) == 1 else float(sizes[0]) * sizes[1]


def _frames(df: pd.DataFrame | Sequence[pd.DataFrame]) -> list[pd.DataFrame]:
    frames = [df] if isinstance(df, pd.DataFrame) else list(df)
    if len(frames) not in (1, 2):
        raise ValueError("give one frame (deduplicate) or two frames (link)")
    return frames


def train(df: pd.DataFrame | Sequence[pd.DataFrame], roles: Mapping[str, str] | None = None, *,
          id_col: str = "unique_id", config: LinkageConfig | None = None) -> TrainedModel:
    """Train a model: prior from deterministic rules, u by random sampling, m by EM on two blocking rules.

    One frame means deduplicate; two frames mean link only (records are not matched within a frame).
    At most `config.train_sample` records are used, so training time is bounded whatever the input size.
    """
    from splink import SettingsCreator, block_on

    cfg = config or LinkageConfig()
    frames = _frames(df)
    roles, extra = _resolve_roles(frames[0], roles, id_col, cfg)
    sizes = [len(f) for f in frames]  # a uniform sample keeps the prior of the whole input: both scale with n²
    share = min(1.0, cfg.train_sample / sum(sizes))
    if share < 1.0:
        frames = [f.sample(frac=share, random_state=cfg.seed) for f in frames]
    con = _connect(cfg)
    tables = _prepare(con, frames, roles, extra, id_col)
    rules = _select_rules(con, tables, roles, cfg)
    link_type = "dedupe_only" if len(tables) == 1 else "link_only"
    settings = SettingsCreator(
        link_type=link_type,
        unique_id_column_name="unique_id",
        comparisons=_comparisons(roles, extra, cfg),
        blocking_rules_to_generate_predictions=[block_on(*r) for r in rules],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    linker = _splink_linker(con, tables, settings)
    linker.training.estimate_probability_two_random_records_match(
        [block_on(*r) for r in _deterministic_rules(roles)], recall=cfg.prior_recall)
    linker.training.estimate_u_using_random_sampling(max_pairs=cfg.u_max_pairs, seed=cfg.seed)
    comparisons = [c["output_column_name"] for c in linker.misc.save_model_to_json()["comparisons"]]
    for alternatives in _em_rules(con, tables[0], roles):
        if not any(_em_session(linker, rule) for rule in alternatives):  # any() stops at the first that trains
            con.close()
            raise TrainingError(f"EM failed on every candidate block {alternatives}: the m probabilities these "
                                "blocks train are unknown, and a half-trained model is never returned")
    model = _floor_m(linker.misc.save_model_to_json(), cfg.m_floor)
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
                if "below the minimum" not in str(exc):
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
    filled = {r: con.execute(f'SELECT count("{r}") FROM {table}').fetchall()[0][0] / n for r in roles}
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


# ---------------------------------------------------------------------------------------------- predict


def predict_pairs(df: pd.DataFrame | Sequence[pd.DataFrame], model: TrainedModel, threshold: float | None = None, *,
                  id_col: str = "unique_id") -> pd.DataFrame:
    """Score candidate pairs with a trained model; returns unique_id_l, unique_id_r, match_probability (>= threshold).

    One frame deduplicates; two frames link across frames only. Blocking rules over the pair budget are skipped.
    """
    from splink import SettingsCreator

    cfg = model.config
    threshold = cfg.match_threshold if threshold is None else threshold
    frames = _frames(df)
    if (len(frames) == 1) != (model.link_type == "dedupe_only"):
        raise ValueError(f"model was trained for {model.link_type}; got {len(frames)} frame(s)")
    for frame in frames:
        missing = [c for c in list(model.roles.values()) + model.extra_columns if c not in frame.columns]
        if missing:
            raise ValueError(f"column(s) {missing} of the model's roles are missing from the data")
    con = _connect(cfg)
    tables = _prepare(con, frames, model.roles, model.extra_columns, id_col)
    rules = _select_rules(con, tables, model.roles, cfg)
    settings = dict(model.settings)
    settings["blocking_rules_to_generate_predictions"] = [_rule_sql(r) for r in rules]
    sizes = [len(f) for f in frames]
    if cfg.rescale_prior and model.trained_on.get("records"):
        settings["probability_two_random_records_match"] = _rescaled_prior(
            settings["probability_two_random_records_match"], model.trained_on["records"], sizes)
    linker = _splink_linker(con, tables, SettingsCreator.from_path_or_dict(settings))
    pred = linker.inference.predict(threshold_match_probability=threshold, warning_mode="never")
    cols = ["unique_id_l", "unique_id_r", "match_probability"]
    if len(frames) == 2:
        cols = ["source_dataset_l", "unique_id_l", "source_dataset_r", "unique_id_r", "match_probability"]
    out = con.execute(f"SELECT {', '.join(cols)} FROM {pred.physical_name}").df()
    con.close()
    if len(frames) == 2:
        # Splink may put either input on the left; report frame 0 on the left.
        swap = out.source_dataset_l != "input_0"
        out.loc[swap, ["unique_id_l", "unique_id_r"]] = out.loc[swap, ["unique_id_r", "unique_id_l"]].to_numpy()
        out = out[["unique_id_l", "unique_id_r", "match_probability"]]
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
    cfg = model.config
    threshold = cfg.match_threshold if threshold is None else threshold
    for frame in (new, existing):
        missing = [c for c in list(model.roles.values()) + model.extra_columns if c not in frame.columns]
        if missing:
            raise ValueError(f"column(s) {missing} of the model's roles are missing from the data")
    con = _connect(cfg)
    old_t, new_t = _prepare(con, [existing, new], model.roles, model.extra_columns, id_col)
    con.execute(f"CREATE TABLE input_all AS SELECT * FROM {old_t} UNION ALL SELECT * FROM {new_t}").fetchall()
    clash = con.execute(f"SELECT count(*) FROM {new_t} JOIN {old_t} USING (unique_id)").fetchall()[0][0]
    if clash:
        raise ValueError(f"{clash} new record id(s) already exist among the existing records")
    rules = _select_rules(con, ["input_all"], model.roles, cfg)
    settings = dict(model.settings)
    settings["blocking_rules_to_generate_predictions"] = [_rule_sql(r) for r in rules]
    n_all = len(existing) + len(new)
    if cfg.rescale_prior and model.trained_on.get("records"):
        settings["probability_two_random_records_match"] = _rescaled_prior(
            settings["probability_two_random_records_match"], model.trained_on["records"], [n_all])
    db_api = DuckDBAPI(connection=con)
    linker = Linker(db_api.register("input_all"), SettingsCreator.from_path_or_dict(settings), log_level=logging.ERROR)
    for col in linker._settings_obj._term_frequency_columns:
        linker.table_management.compute_tf_table(col.unquote().name)
    old_sdf, new_sdf = db_api.register(old_t), db_api.register(new_t)
    parts = [linker.inference.predict_between(old_sdf, new_sdf, threshold_match_probability=threshold,
                                              warning_mode="never"),
             linker.inference.predict_within(new_sdf, threshold_match_probability=threshold, warning_mode="never")]
    out = con.execute(" UNION ALL ".join(f"SELECT unique_id_l, unique_id_r, match_probability FROM {p.physical_name}"
                                         for p in parts)).df()
    con.close()
    return out.reset_index(drop=True)


def _rescaled_prior(prior: float, trained: Sequence[int], now: Sequence[int]) -> float:
    """Prior for data of another size: true matches grow with the record count, candidate pairs with its square."""
    if list(trained) == list(now):
        return prior
    matches_then = prior * _n_pairs(trained)
    matches_now = matches_then * (min(now) / min(trained) if len(now) == 2 else now[0] / trained[0])
    return float(min(max(matches_now / _n_pairs(now), 1e-12), 0.999))


# ---------------------------------------------------------------------------------------------- cluster


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
