"""Small simulated randomized campaigns with planted effects: for coverage checks, uplift evaluation and benchmarks.

The outcomes go through the same code the warehouse path and `--csv` use (`outcomes.exposure_outcomes`, then
`stats.lift_table`), so a coverage check tests the reported intervals, not a copy of them."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from beacon.generate.engagement import Effect, EffectBook, randomize, respond, simulate_people, true_effects
from beacon.measure.outcomes import exposure_outcomes

COVARIATES = ("prior_orders", "prior_revenue", "prior_visits", "prior_opens")


@dataclass
class SimulatedTest:
    frame: pd.DataFrame  # one row per assigned person: arm, outcomes, covariates
    truth: pd.DataFrame  # true_effects for the window
    exposures: pd.DataFrame
    events: pd.DataFrame


def simulate_test(seed: int, people: int = 3000, conversion: float = 0.03, heterogeneity: float = 0.0,
                  control_share: float = 0.5, window_days: float = 7.0, campaign: str = "audience:sim") -> SimulatedTest:
    """One randomized campaign over a fresh small population, with its outcomes and its true effect."""
    pop = simulate_people(people, seed)
    exp = randomize(pop, campaign, seed, "2026-07-01 06:00", {"treatment": 1 - control_share, "control": control_share})
    book = EffectBook({campaign: {"treatment": Effect(conversion=conversion, heterogeneity=heterogeneity)}})
    events = respond(exp, pop, seed=seed, effects=book)
    frame = exposure_outcomes(exp, events, window_days).merge(pop[["customer_id", *COVARIATES]], on="customer_id")
    return SimulatedTest(frame=frame, truth=true_effects(exp, pop, book, window_days), exposures=exp, events=events)
