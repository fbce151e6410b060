"""Guards that fail closed: identity resolution refuses to publish a model or clusters that cannot be right.

A degenerate linkage model does not crash; it links everything, and every downstream table then applies one
person's email, consent and scores to thousands of others. So every resolution run checks, before anything is
written: the trained model (after training), the links it predicts, and the clusters and merges they make.
A failing guard raises `IdentityGuardError`; the dbt model records every guard's figures as a critical
data-quality result (the breaker then blocks activation) and fails, so the previous ids and model stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SUITE = "identity_resolution"  # the suite name of the guards' rows in quality.expectation_results


@dataclass(frozen=True)
class GuardConfig:
    """Bounds of a plausible identity graph (dbt vars `identity_guard_*`; docs/identity.md says how they were set)."""

    # Prior x candidate pairs / records: the matches a record has on average. A person has a handful of records,
    # so this stays well under one (0.19 on the generated worlds); a degenerate prior gives thousands.
    max_matches_per_record: float = 5.0
    # Agreeing exactly on an identifier must be evidence for a match, and disagreeing on everything must never be
    # more than weak evidence for one (a field that only one source fills, such as the shop's birth date, is
    # barely trained and may sit a little above 1: 1.42 on one 50k world).
    min_exact_bayes_factor: float = 2.0
    max_else_bayes_factor: float = 2.0
    # Links predicted at the threshold against the matches the prior expects among all pairs.
    max_links_over_expected: float = 5.0
    # Records per customer: the largest cluster, and the share of records in clusters above `large_cluster_size`.
    max_cluster_size: int = 50
    large_cluster_size: int = 10
    max_large_cluster_share: float = 0.005
    # Existing customers merged away in one run: at most this share of them, or `min_merge_allowance`.
    max_merge_share: float = 0.02
    min_merge_allowance: int = 100


@dataclass(frozen=True)
class GuardResult:
    """One guard's verdict with the figure it observed and the bound it held it to."""

    name: str
    passed: bool
    observed: str
    limit: str
    # 'critical' fails the run and blocks activation; 'warning' is recorded and reported only.
    severity: str = "critical"

    def describe(self) -> str:
        return f"{self.name}: observed {self.observed}, limit {self.limit}"


class IdentityGuardError(RuntimeError):
    """A guard tripped: nothing of this resolution run may be published."""

    def __init__(self, results: list[GuardResult]):
        self.results = results
        failed = [r.describe() for r in results if not r.passed and r.severity == "critical"]
        super().__init__("identity resolution refused by its guards (previous ids and model kept; activation "
                         "blocked): " + "; ".join(failed))


# Identifier comparisons (Splink output column names) whose exact level must favour a match.
IDENTIFIERS = ("email", "phone", "given_name", "surname", "date_of_birth", "address_1", "national_id")


def _bayes_factor(level: dict) -> float | None:
    m, u = level.get("m_probability"), level.get("u_probability")
    if not isinstance(m, int | float) or not isinstance(u, int | float) or u <= 0:
        return None  # a level EM or sampling never observed carries no evidence to check
    return m / u


def check_model(settings: dict, expected_comparisons: list[str], records: int, cfg: GuardConfig) -> list[GuardResult]:
    """Is the trained Splink model sane: every comparison present, a plausible prior, identifiers that discriminate?"""
    out: list[GuardResult] = []
    present = [c.get("output_column_name") for c in settings.get("comparisons", [])]
    missing = [c for c in expected_comparisons if c not in present]
    out.append(GuardResult("model_has_every_comparison", not missing, f"missing {missing}" if missing else "all",
                           f"{len(expected_comparisons)} comparisons"))
    prior = float(settings.get("probability_two_random_records_match") or 0.0)
    per_record = prior * (records - 1) / 2 if records > 1 else 0.0
    out.append(GuardResult("model_prior_plausible", 0.0 < per_record <= cfg.max_matches_per_record,
                           f"prior {prior:.3g} = {per_record:.3g} matches per record",
                           f"(0, {cfg.max_matches_per_record}] matches per record"))
    weak, pro_disagree = [], []
    for comp in settings.get("comparisons", []):
        name = comp.get("output_column_name")
        levels = [lv for lv in comp.get("comparison_levels", []) if not lv.get("is_null_level")]
        if not levels:
            continue
        exact, other = _bayes_factor(levels[0]), _bayes_factor(levels[-1])
        if name in IDENTIFIERS and exact is not None and exact < cfg.min_exact_bayes_factor:
            weak.append(f"{name} exact {exact:.3g}")
        if other is not None and other > cfg.max_else_bayes_factor:
            pro_disagree.append(f"{name} else {other:.3g}")
    out.append(GuardResult("model_identifiers_discriminate", not weak, "; ".join(weak) or "all",
                           f"exact-match Bayes factor >= {cfg.min_exact_bayes_factor}"))
    out.append(GuardResult("model_disagreement_not_evidence", not pro_disagree, "; ".join(pro_disagree) or "none",
                           f"'all other' Bayes factor <= {cfg.max_else_bayes_factor}"))
    return out


def check_links(links: int, expected_matches: float, cfg: GuardConfig) -> GuardResult:
    """Are the predicted links near what the prior expects (a model that links everything fails here)?"""
    allowed = max(cfg.max_links_over_expected * expected_matches, 100.0)
    return GuardResult("links_near_prior", links <= allowed,
                       f"{links:,} links against {expected_matches:,.0f} expected matches",
                       f"<= {allowed:,.0f}")


def check_clusters(sizes: np.ndarray, merges: int, existing_customers: int, cfg: GuardConfig) -> list[GuardResult]:
    """Is the cluster-size distribution plausible, and are this run's merges within bounds?"""
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    largest = int(sizes.max()) if len(sizes) else 0
    large = int(sizes[sizes > cfg.large_cluster_size].sum()) if len(sizes) else 0
    share = large / total if total else 0.0
    merge_limit = max(cfg.min_merge_allowance, int(cfg.max_merge_share * existing_customers))
    return [
        GuardResult("largest_cluster", largest <= cfg.max_cluster_size, f"{largest:,} records",
                    f"<= {cfg.max_cluster_size}"),
        GuardResult("records_in_large_clusters", share <= cfg.max_large_cluster_share,
                    f"{share:.4%} ({large:,} of {total:,} records in clusters over {cfg.large_cluster_size})",
                    f"<= {cfg.max_large_cluster_share:.2%}"),
        GuardResult("merges_this_run", merges <= merge_limit,
                    f"{merges:,} of {existing_customers:,} existing customers merged", f"<= {merge_limit:,}"),
    ]


@dataclass
class GuardReport:
    """Every guard run on one resolution, in order."""

    results: list[GuardResult] = field(default_factory=list)

    def add(self, *results: GuardResult) -> None:
        self.results.extend(results)

    def rows(self) -> list[tuple[str, bool, str, str, str]]:
        """(name, passed, observed, limit, severity) per guard, as the quality results table takes them."""
        return [(r.name, r.passed, r.observed, r.limit, r.severity) for r in self.results]

    def raise_if_failed(self) -> None:
        if any(not r.passed and r.severity == "critical" for r in self.results):
            raise IdentityGuardError(self.results)
