"""The linker's settings (`LinkageConfig`) and a trained, storable model (`TrainedModel`).

Trade-off of the thresholds: raising `match_threshold` / `cluster_threshold` removes weak links (higher
precision, fewer merged people, lower recall); lowering them merges more records per person (higher recall)
at the risk of chaining two people together through one false link. Blocking rules bound which pairs are
compared at all: a pair that no rule brings together can never be linked, and rules producing more candidate
pairs than `max_pairs_per_record * records` are refined or skipped so prediction stays fast on millions of records.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

MODEL_FORMAT = "beacon.identity/1"

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
        return json.dumps({"format": MODEL_FORMAT, "settings": self.settings, "roles": self.roles,
                           "extra_columns": self.extra_columns, "config": asdict(self.config),
                           "link_type": self.link_type, "trained_on": self.trained_on}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> TrainedModel:
        """Load a model stored with `to_json`."""
        d = json.loads(text)
        if d.get("format") != MODEL_FORMAT:
            raise ValueError(f"not a beacon.identity model (missing format '{MODEL_FORMAT}')")
        cfg = d["config"]
        if cfg.get("blocking") is not None:
            cfg["blocking"] = tuple(tuple(r) for r in cfg["blocking"])
        return cls(settings=d["settings"], roles=d["roles"], extra_columns=d["extra_columns"],
                   config=LinkageConfig(**cfg), link_type=d["link_type"], trained_on=d.get("trained_on", {}))
