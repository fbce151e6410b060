"""Identity resolution: normalization, deterministic and probabilistic (Splink) links, stable customer ids."""
