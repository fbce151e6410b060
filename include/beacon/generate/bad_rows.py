"""Bad rows, injected at a known rate and recorded in the ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from beacon.generate.config import GenConfig


def _inject_bad(df: pd.DataFrame, name: str, cfg: GenConfig, rng: np.random.Generator,
                key: str, ts_col: str, num_col: str | None, email_col: str | None, header: bool) -> list[dict]:
    """Corrupt a share of rows in place (missing key, wrong type, future timestamp, invalid email)."""
    n = len(df)
    k = int(round(n * cfg.bad_rate))
    bad: list[dict] = []
    if k == 0 or n == 0:
        return bad
    rows = rng.choice(n, size=min(k, n), replace=False)
    kinds = ["missing_key", "future_timestamp"] + (["wrong_type"] if num_col else [])
    future = pd.Timestamp(cfg.day_date()) + pd.Timedelta(days=400)
    for j, r in enumerate(sorted(rows.tolist())):
        kind = kinds[j % len(kinds)]
        if kind == "missing_key":
            df.iat[r, df.columns.get_loc(key)] = None if df[key].dtype != object or not header else ""
        elif kind == "future_timestamp":
            col = df.columns.get_loc(ts_col)
            df.iat[r, col] = future.tz_localize("UTC") if str(df[ts_col].dtype).startswith("datetime64") \
                else future.strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            df.iat[r, df.columns.get_loc(num_col)] = "many"
        bad.append({"file": name, "line": int(r) + (2 if header else 1), "kind": kind})
    if email_col:
        m = int(round(n * cfg.invalid_email_rate))
        for r in rng.choice(n, size=min(m, n), replace=False).tolist():
            v = str(df.iat[r, df.columns.get_loc(email_col)])
            df.iat[r, df.columns.get_loc(email_col)] = v.replace("@", " at ", 1) if r % 2 else v.split("@")[0] + "@"
    return bad


def _append_malformed(path: Path, fmt: str, n_rows: int, n_cols: int, cfg: GenConfig, rng: np.random.Generator,
                      header: bool) -> list[dict]:
    """Append truncated JSON or ragged CSV lines, as a crashed exporter leaves them."""
    k = int(round(n_rows * cfg.bad_rate / 2))
    if k == 0:
        return []
    lines = []
    for i in range(k):
        if fmt == "jsonl":
            lines.append('{"type": "track", "event": "Product Vie' + str(i))
        else:
            lines.append(",".join(["junk"] * (n_cols + 2 + int(rng.integers(0, 3)))))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    first = n_rows + (2 if header else 1)
    return [{"file": path.name, "line": first + i, "kind": "malformed"} for i in range(k)]




def _bad_events(n: int, name: str, kinds: list[str], cfg: GenConfig, rng: np.random.Generator) -> pd.DataFrame:
    k = int(round(n * cfg.bad_rate))
    rows = np.sort(rng.choice(n, size=min(k, n), replace=False)) if n else np.array([], np.int64)
    # An explicit string dtype: with no bad rows an empty list would become float64, and the writers' SQL
    # compares `kind` with strings.
    kind = pd.Series([kinds[i % len(kinds)] for i in range(len(rows))], dtype=object).astype(str)
    return pd.DataFrame({"row": rows.astype(np.int64), "kind": kind})

