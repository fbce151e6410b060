"""File export: CSV or Parquet plus a manifest, to a local folder or any fsspec URL (s3://, gcs://, ...)."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Literal

import fsspec
import pandas as pd

from beacon.activation.destinations import Batch, RowResult, StorageExtra, parse_extra

# Cells starting with these are run as formulas by spreadsheet programs (OWASP CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Engine columns that are not part of the exported record.
INTERNAL = ("idempotency_key", "version")


def neutralize_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would evaluate with a single quote."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            s = out[col]
            mask = s.map(lambda v: isinstance(v, str) and v.startswith(_FORMULA_START))
            out.loc[mask, col] = "'" + s[mask]
    return out


def batch_id(rows: pd.DataFrame) -> str:
    """A name for a set of changes: the same changes (a retry, a re-run after a crash) get the same name."""
    keys = rows["idempotency_key"] if "idempotency_key" in rows else pd.util.hash_pandas_object(rows, index=False)
    return hashlib.sha256("\n".join(map(str, keys)).encode()).hexdigest()[:12]


def write_with_manifest(base_url: str, folder: str, stem: str, df: pd.DataFrame, fmt: str, meta: dict,
                        storage_options: dict) -> dict:
    """Write `df` then its manifest (row count, schema, sha256, and `pii_columns`: column -> kind of personal data,
    from `meta["pii_columns"]`, for the columns the file holds); a consumer that sees the manifest sees a complete
    file."""
    if fmt == "csv":
        payload = neutralize_formulas(df).to_csv(index=False).encode("utf-8")
    else:
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        payload = buf.getvalue()
    data_name = f"{stem}.{fmt}"
    manifest = {**meta, "file": data_name, "format": fmt, "row_count": len(df),
                "columns": [{"name": c, "type": str(t)} for c, t in df.dtypes.items()],
                "sha256": hashlib.sha256(payload).hexdigest(),
                "pii_columns": {c: k for c, k in (meta.get("pii_columns") or {}).items() if c in df.columns}}
    fs, root = fsspec.core.url_to_fs(f"{base_url.rstrip('/')}/{folder}", **storage_options)
    fs.makedirs(root, exist_ok=True)
    tmp = f"{root}/.{data_name}.partial"
    with fs.open(tmp, "wb") as fh:
        fh.write(payload)
    fs.mv(tmp, f"{root}/{data_name}")
    with fs.open(f"{root}/{stem}.manifest.json", "w") as fh:
        fh.write(json.dumps(manifest, indent=2, default=str))
    return manifest


class FileExtra(StorageExtra):
    """Extras of a file export connection."""

    format: Literal["csv", "parquet"] = "csv"
    fields: tuple[str, ...] | None = None  # the exported columns (default: every column)


def storage_options_from(conn, extra: StorageExtra | None = None) -> dict:
    """fsspec options from an Airflow connection: extra.storage_options, S3 keys from login/password, extra.endpoint_url."""
    extra = extra or StorageExtra()
    opts = dict(extra.storage_options or {})
    if conn is not None and conn.login:
        opts.setdefault("key", conn.login)
    if conn is not None and conn.password:
        opts.setdefault("secret", conn.password)
    if extra.endpoint_url:
        opts.setdefault("client_kwargs", {})["endpoint_url"] = extra.endpoint_url
    return opts


class FileExport:
    """Writes the changes of each sync as one file (with an `operation` column) and a manifest beside it."""

    channel = "file"
    Extra = FileExtra
    required_any: tuple[str, ...] = ()
    default_mode = "mirror"

    def __init__(self, base_url: str, fmt: str = "csv", key: str = "customer_id", storage_options: dict | None = None,
                 fields: tuple[str, ...] | None = None, name: str = "file"):
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"file export format must be csv or parquet, not {fmt!r}")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.fmt = fmt
        self.key = key
        self.storage_options = storage_options or {}
        self.fields = fields

    @classmethod
    def from_connection(cls, name: str, conn, default_url: str) -> FileExport:
        """Configure from an Airflow connection: extra.url (or host), extra.format, extra.fields, storage options."""
        x = parse_extra(FileExtra, name, conn)
        url = x.url or (conn.host if conn is not None and conn.host else default_url)
        return cls(url, fmt=x.format, storage_options=storage_options_from(conn, x), fields=x.fields or None,
                   name=name)

    def plan(self, rows: pd.DataFrame, name: str, meta: dict) -> list[Batch]:
        """One file per sync: sorted by key so the same changes give the same bytes and the same file name."""
        rows = rows.sort_values(self.key, kind="stable").reset_index(drop=True)
        return [Batch(name=name, rows=rows, meta={**meta, "batch_id": batch_id(rows)})]

    def send(self, batch: Batch) -> list[RowResult]:
        """Write the file and its manifest; every row of a written file is delivered."""
        stem = f"{batch.meta.get('audience', 'export')}-{batch.meta['batch_id']}"
        out = batch.rows.drop(columns=[c for c in INTERNAL if c in batch.rows])
        write_with_manifest(self.base_url, batch.name, stem, out, self.fmt, batch.meta, self.storage_options)
        return [RowResult(key=str(k), status="delivered") for k in batch.rows[self.key]]
