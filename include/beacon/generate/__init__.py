"""Seeded generator of a realistic marketing world, with ground truth kept apart from the landing files.

Everything is vectorised (numpy/pandas) and DuckDB writes the files, so 1,000,000 people with
about 20M events fit in a few minutes on two cores. Person attributes are drawn per fixed-size
block of people from ``(seed, block)``, so a person is the same on every day and for every N;
events are drawn from ``(seed, day, block)``, so day 2 adds new facts without rewriting day 1.

Modules, in the order a run uses them: `config` (knobs, files), `vocab` (names, places), `helpers`,
`population` (people), `records` (source records with variation), `behaviour` (orders, web and email
events, consent), `bad_rows`, `writers`, `world` (`generate`, one day of the world).
"""

from beacon.generate.config import BLOCK, DAY, FILES, HISTORY_DAYS, GenConfig, GenSummary
from beacon.generate.population import people
from beacon.generate.world import generate

__all__ = ["BLOCK", "DAY", "FILES", "HISTORY_DAYS", "GenConfig", "GenSummary", "generate", "people"]
