"""File export: CSV (or Parquet) plus a manifest, to a local folder or any fsspec URL."""

from __future__ import annotations

import hashlib
import io
import json

import fsspec
import pandas as pd

from beacon.activation.destinations import Batch, RowResult

# Cells starting with these are run as formulas by spreadsheet programs (OWASP CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralize_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would evaluate with a single quote."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            s = out[col]
            mask = s.map(lambda v: isinstance(v, str) and v.startswith(_FORMULA_START))
            out.loc[mask, col] = "'" + s[mask]
    return out


class FileExport:
    """Writes one file per batch and a manifest (row count, schema, checksum) beside it."""

    def __init__(self, base_url: str, fmt: str = "csv", key: str = "customer_id", storage_options: dict | None = None):
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"file export format must be csv or parquet, not {fmt!r}")
        self.name = f"file_{fmt}"
        self.base_url = base_url.rstrip("/")
        self.fmt = fmt
        self.key = key
        self.storage_options = storage_options or {}

    def plan(self, rows: pd.DataFrame, name: str, meta: dict) -> list[Batch]:
        """One file per audience and run date: sorted by key so the same members give the same bytes."""
        return [Batch(name=name, rows=rows.sort_values(self.key, kind="stable").reset_index(drop=True), meta=meta)]

    def send(self, batch: Batch) -> list[RowResult]:
        folder = f"{self.base_url}/{batch.name}"
        data_name = f"{batch.meta.get('audience', 'export')}.{self.fmt}"
        if self.fmt == "csv":
            payload = neutralize_formulas(batch.rows).to_csv(index=False).encode("utf-8")
        else:
            buf = io.BytesIO()
            batch.rows.to_parquet(buf, index=False)
            payload = buf.getvalue()
        manifest = {
            **batch.meta,
            "file": data_name,
            "format": self.fmt,
            "row_count": len(batch.rows),
            "columns": [{"name": c, "type": str(t)} for c, t in batch.rows.dtypes.items()],
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        fs, root = fsspec.core.url_to_fs(folder, **self.storage_options)
        fs.makedirs(root, exist_ok=True)
        # Data first, manifest last: a consumer that sees the manifest sees a complete file.
        tmp = f"{root}/.{data_name}.partial"
        with fs.open(tmp, "wb") as fh:
            fh.write(payload)
        fs.mv(tmp, f"{root}/{data_name}")
        with fs.open(f"{root}/manifest.json", "w") as fh:
            fh.write(json.dumps(manifest, indent=2, default=str))
        return [RowResult(key=str(k), status="delivered") for k in batch.rows[self.key]]
