"""Identity resolution: normalization, deterministic and probabilistic links, stable customer ids."""
