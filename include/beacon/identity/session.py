"""The linker's working set: an in-memory DuckDB with each input frame loaded as a normalized table.

Every role's column is normalized once here (lower case, no accents, digits only for phones, YYYYMMDD dates,
null for blanks), so the comparisons and blocking rules see clean values.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import duckdb
import pandas as pd

from beacon.identity.model import LinkageConfig
from beacon.identity.roles import norm
from beacon.warehouse import quote_ident, sql_literal


def role_sql(role: str, col: str) -> str:
    """SQL normalizing one input column for its role (null for blanks), so comparisons see clean values."""
    c = f"CAST({quote_ident(col)} AS VARCHAR)"
    text = f"nullif(trim(regexp_replace(lower(strip_accents({c})), '\\s+', ' ', 'g')), '')"
    digits = f"nullif(regexp_replace({c}, '[^0-9]', '', 'g'), '')"
    if role in ("phone", "national_id"):
        return digits
    if role == "date_of_birth":
        # Any layout with year first (YYYYMMDD, YYYY-MM-DD, timestamps) becomes YYYYMMDD.
        return f"nullif(left(regexp_replace({c}, '[^0-9]', '', 'g'), 8), '')"
    if role == "postcode":
        return f"nullif(upper(regexp_replace({c}, '\\s', '', 'g')), '')"
    if role in ("given_name", "surname"):
        return f"nullif(regexp_replace({text}, '[^a-z ''-]', '', 'g'), '')"
    return text


def prepare_sql(src: str, roles: Mapping[str, str], extra: Sequence[str], id_col: str) -> str:
    cols = [f"CAST({quote_ident(id_col)} AS VARCHAR) AS unique_id"]
    cols += [f"{role_sql(r, c)} AS {r}" for r, c in roles.items()]
    cols += [f"nullif(trim(lower(CAST({quote_ident(c)} AS VARCHAR))), '') AS x_{norm(c)}" for c in extra]
    return f"SELECT {', '.join(cols)} FROM {src}"


def connect(cfg: LinkageConfig) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the configured threads and memory limit."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {int(cfg.threads or os.cpu_count() or 1)}").fetchall()
    if cfg.memory_limit:
        con.execute(f"SET memory_limit = {sql_literal(cfg.memory_limit)}").fetchall()
    con.execute("SET preserve_insertion_order = false").fetchall()
    return con


def prepare(con: duckdb.DuckDBPyConnection, frames: Sequence[pd.DataFrame], roles: Mapping[str, str],
            extra: Sequence[str], id_col: str) -> list[str]:
    """Load each input frame into DuckDB as a normalized table `input_<i>` and check ids are unique and non-null."""
    names = []
    for i, frame in enumerate(frames):
        con.register(f"raw_{i}", frame)
        con.execute(f"CREATE TABLE input_{i} AS {prepare_sql(f'raw_{i}', roles, extra, id_col)}").fetchall()
        con.unregister(f"raw_{i}")
        n, n_ids, n_null = con.execute(f"SELECT count(*), count(DISTINCT unique_id), count(*) - count(unique_id) "
                                       f"FROM input_{i}").fetchall()[0]
        if n_null:
            raise ValueError(f"{n_null} record(s) have no value in the id column {id_col!r}")
        if n_ids != n:
            raise ValueError(f"id column {id_col!r} is not unique ({n - n_ids} duplicate ids)")
        names.append(f"input_{i}")
    return names


def frames_of(df: pd.DataFrame | Sequence[pd.DataFrame]) -> list[pd.DataFrame]:
    """One frame (deduplicate) or two (link), as a list."""
    frames = [df] if isinstance(df, pd.DataFrame) else list(df)
    if len(frames) not in (1, 2):
        raise ValueError("give one frame (deduplicate) or two frames (link)")
    return frames


def splink_linker(con: duckdb.DuckDBPyConnection, tables: Sequence[str], settings, validate: bool = True):
    """A Splink linker over the prepared tables (one: dedupe; two: link). `validate=False` skips Splink's check of
    the settings' SQL against the columns, which only logs (for a model trained and checked before: ~0.4 s a call)."""
    from splink import DuckDBAPI, Linker

    db_api = DuckDBAPI(connection=con)
    sdfs = [db_api.register(t) for t in tables]
    return Linker(sdfs if len(sdfs) > 1 else sdfs[0], settings, log_level=logging.ERROR, validate_settings=validate)
