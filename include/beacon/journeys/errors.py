"""The journeys engine's errors."""

from __future__ import annotations


class JourneysBusy(RuntimeError):
    """Another advance holds the journeys lock (runs never overlap)."""


class JourneyRuntimeError(ValueError):
    """A journey refers to something the warehouse does not have (names journey and node)."""
