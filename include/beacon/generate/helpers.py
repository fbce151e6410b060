"""Small vectorised helpers: keyed scrambles for ids, weighted picks, epochs, human typos."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd


def _mix(x: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64: a keyed, collision-free scramble, so record ids do not reveal the person."""
    with np.errstate(over="ignore"):
        z = (x.astype(np.uint64) + np.uint64(salt & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _hexid(prefix: str, x: np.ndarray, salt: int, width: int = 12) -> pd.Series:
    vals = _mix(x, salt) & np.uint64((1 << (4 * width)) - 1)
    return pd.Series([f"{prefix}{v:0{width}x}" for v in vals.tolist()], dtype=object)


def _pick(rng: np.random.Generator, items: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    p = None if weights is None else weights / weights.sum()
    return rng.choice(len(items), size=n, p=p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _epoch(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def _typo(s: pd.Series, rng: np.random.Generator) -> pd.Series:
    """Swap two adjacent letters or drop one: the typos humans make when keying names."""
    out = s.copy()
    for i, v in zip(s.index, s.tolist(), strict=True):
        if len(v) < 4:
            continue
        k = int(rng.integers(1, len(v) - 2))
        out.at[i] = v[:k] + v[k + 1] + v[k] + v[k + 2:] if rng.random() < 0.6 else v[:k] + v[k + 1:]
    return out

