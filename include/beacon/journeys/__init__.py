"""Journeys: multi-step campaigns defined in YAML (journeys/*.yml), advanced in bulk by set-based SQL."""
