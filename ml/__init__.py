"""Beacon's ML package: point-in-time features, LightGBM training, registry and scoring."""
