"""Personal data: where it lives (the PII catalog) and how to find one person's rows (docs/privacy.md)."""

from beacon.privacy.catalog import KINDS, PiiColumn, catalog
from beacon.privacy.locate import Hit, locate

__all__ = ["KINDS", "Hit", "PiiColumn", "catalog", "locate"]
