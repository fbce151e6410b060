"""Email normalization, defined once: the dbt macros in `dbt_project/macros/normalize.sql`.

Staging models call the macros; Python code that needs the same rules (the GX validity checks, the
identity benchmark) renders the same macros here with Jinja instead of restating them.
"""

from __future__ import annotations

import re
from functools import lru_cache

import jinja2

from beacon.config import settings


class _DefaultAdapter:
    """dbt's `adapter.dispatch` for plain Jinja: the `default__` form (DuckDB's SQL) of a cross-engine macro."""

    def __init__(self) -> None:
        self.module = None

    def dispatch(self, name: str, _namespace: str | None = None):
        return getattr(self.module, f"default__{name}")


@lru_cache(maxsize=4)
def _macros(path: str):
    # normalize.sql calls the cross-engine macros (macros/cross_engine.sql): render both as one module.
    cross = open(str(path).replace("normalize.sql", "cross_engine.sql")).read()
    adapter = _DefaultAdapter()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.globals.update(adapter=adapter, **{"return": lambda value: value})
    adapter.module = env.from_string(cross + "\n" + open(path).read()).module
    return adapter.module


def macro_sql(macro: str, column: str) -> str:
    """The SQL that the dbt macro `macro` (normalized_email, is_valid_email, canonical_email) gives for `column`."""
    path = settings().dbt_project_dir / "macros" / "normalize.sql"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the dbt normalization macros are missing")
    return str(getattr(_macros(str(path)), macro)(column)).strip()


def valid_email_pattern() -> str:
    """The address pattern of `is_valid_email` (it matches the normalized, lower-case form)."""
    sql = macro_sql("is_valid_email", "x")
    m = re.search(r"regexp_full_match\(.*, '((?:[^']|'')*)'\)", sql)
    if not m:
        raise ValueError(f"cannot find the regexp_full_match pattern in is_valid_email: {sql}")
    return m.group(1).replace("''", "'")


def raw_email_regex() -> str:
    """`valid_email_pattern` for values not yet normalized: surrounding spaces and any letter case allowed."""
    # Groups made non-capturing: pandas (under GX) warns about match groups it would not use.
    pattern = re.sub(r"(?<!\\)\((?!\?)", "(?:", valid_email_pattern())
    return rf"^\s*(?i:{pattern})\s*$"
