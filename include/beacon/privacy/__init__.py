"""Personal data: where it lives (the PII catalog), how to find one person's rows, and privacy requests
(docs/privacy.md). Names are loaded on first use, so `beacon serve` can accept requests (`beacon.privacy.queue`)
without loading the warehouse code."""

from importlib import import_module

_NAMES = {"KINDS": "catalog", "PiiColumn": "catalog", "catalog": "catalog", "Hit": "locate", "locate": "locate"}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(import_module(f"beacon.privacy.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'beacon.privacy' has no attribute {name!r}")
