"""Identity resolution: probabilistic record linkage (Splink on DuckDB) and its evaluation."""
