"""Always-valid (sequential) interval half-widths: pure math, no numpy/pandas, so the journeys' split node can
validate a `winner:` block at DAG-parse time without loading the statistics stack (`beacon.measure.stats`
re-exports these)."""

from __future__ import annotations

import math

ALPHA = 0.05
SEQUENTIAL_TUNING_N = 5000  # GrowthBook's default: the sample size where the sequential interval is tightest


def sequential_halfwidth(se: float, n: int, alpha: float = ALPHA, tuning_n: int = SEQUENTIAL_TUNING_N) -> float:
    """Half-width of an always-valid interval for an estimate with standard error `se` from `n` observations.

    Normal-mixture confidence sequence (Howard et al. 2021) in GrowthBook's parameterisation."""
    sigma = se * math.sqrt(n)  # per-observation standard deviation of the estimator
    rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning_n)
    return sigma * math.sqrt(2 * (n * rho**2 + 1) / (n**2 * rho**2) * math.log(math.sqrt(n * rho**2 + 1) / alpha))
