"""Run suites as GX Core checkpoints: one row per expectation into quality.expectation_results, Data Docs to a folder.

Great Expectations is imported inside `run_suites` only (about 5 s): DAG files and the CLI stay fast.
The breaker (`breaker.breaker_state`) then reads each suite's latest run.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb

from beacon.quality.breaker import ensure_results_table
from beacon.quality.suites import SuiteDef, mart_suites, raw_suites


@dataclass
class SuiteResult:
    """The outcome of one suite in one checkpoint run."""

    suite: str
    run_id: str
    rows: int
    success: bool
    failed_critical: list[str] = field(default_factory=list)
    failed_warning: list[str] = field(default_factory=list)


@dataclass
class CheckpointReport:
    """All suites of one checkpoint run, and where the Data Docs are."""

    suites: list[SuiteResult]
    docs: str

    @property
    def blocking(self) -> bool:
        return any(s.failed_critical for s in self.suites)

    def to_dict(self) -> dict:
        return {"blocking": self.blocking, "docs": self.docs, "suites": [asdict(s) for s in self.suites]}


def _label(config) -> str:
    """A readable expectation name: its type and the column(s) it checks."""
    kw = config.kwargs
    col = kw.get("column") or ",".join(kw.get("column_list") or [])
    return f"{config.type}({col})" if col else config.type


# SUMMARY without its sample of failing values: GX would keep up to 20 of them (a malformed e-mail, a name) in
# quality.expectation_results and in the Data Docs pages, where an erasure cannot find them (they no longer match the
# person's identifiers). Counts and percentages say what failed; the rows themselves stay in their table.
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}


def _observed(result: dict) -> str:
    if "observed_value" in result:
        return str(result["observed_value"])
    if "unexpected_count" in result:
        return f"{result['unexpected_count']} of {result.get('element_count')} unexpected"
    return ""


class _CompiledTemplates:
    """A jinja2 bytecode cache in memory, shared by every Data Docs view of this process.

    GX builds a new jinja2 Environment for each page it renders, so each page compiled the same ~20 templates
    again: about two thirds of a checkpoint run's time (profiled on the demo world: 45 of 80 s under cProfile).
    Jinja checks each template's source checksum before using its cached code, so a changed template compiles
    anew; the pages are the same."""

    def __init__(self) -> None:
        import jinja2

        class Cache(jinja2.BytecodeCache):
            def __init__(self) -> None:
                self.store: dict[str, bytes] = {}

            def load_bytecode(self, bucket) -> None:
                if bucket.key in self.store:
                    bucket.bytecode_from_string(self.store[bucket.key])

            def dump_bytecode(self, bucket) -> None:
                self.store[bucket.key] = bucket.bytecode_to_string()

        self.cache = Cache()

    def install(self) -> None:
        """Give every GX jinja view (created from now on) this cache; once per process."""
        from great_expectations.render.view.view import DefaultJinjaView

        if getattr(DefaultJinjaView, "_beacon_bytecode_cache", None) is not None:
            return
        init, cache = DefaultJinjaView.__init__, self.cache

        def __init__(view, *args, **kwargs) -> None:
            init(view, *args, **kwargs)
            view.env.bytecode_cache = cache  # read by jinja2's loaders on each get_template

        DefaultJinjaView.__init__ = __init__
        DefaultJinjaView._beacon_bytecode_cache = cache


def _context(docs_dir: Path):
    """An ephemeral GX context whose Data Docs site is a plain folder."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no network calls from a warehouse task
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    _CompiledTemplates().install()

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    ctx.add_data_docs_site(site_name="beacon", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
    return gx, ctx


def _frame(con: duckdb.DuckDBPyConnection, sql: str):
    """A suite's rows as pandas with Arrow-backed columns: a string is its bytes in one buffer, not a Python object
    each (a 36-character id: about 40 bytes against about 90); GX's pandas expectations give the same results on
    them (tests/quality)."""
    import pandas as pd

    return con.sql(sql).to_arrow_table().to_pandas(types_mapper=pd.ArrowDtype)  # con.execute: one more copy


def run_suites(con: duckdb.DuckDBPyConnection, suites: list[SuiteDef], docs_dir: Path,
               run_id: str | None = None) -> CheckpointReport:
    """Validate each suite's rows in one GX checkpoint and record one result row per expectation."""
    ensure_results_table(con)
    docs_dir = Path(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    if not suites:
        return CheckpointReport([], str(docs_dir / "index.html"))
    gx, ctx = _context(docs_dir)
    source = ctx.data_sources.add_pandas("beacon")
    run_id = run_id or f"{datetime.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    validations = []
    for s in suites:
        suite = ctx.suites.add(gx.ExpectationSuite(name=s.name))
        for c in s.checks:
            suite.add_expectation(getattr(gx.expectations, c.expectation)(**c.kwargs, severity=c.severity))
        batch = source.add_dataframe_asset(s.name).add_batch_definition_whole_dataframe("rows")
        validations.append(ctx.validation_definitions.add(gx.ValidationDefinition(name=s.name, data=batch, suite=suite)))
    out: list[SuiteResult] = []
    rows = []
    for s, vd in zip(suites, validations, strict=True):  # one checkpoint per suite: each suite gets its own dataframe
        cp = ctx.checkpoints.add(gx.Checkpoint(
            name=f"{vd.name}_checkpoint", validation_definitions=[vd], result_format=RESULT_FORMAT,
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["beacon"])]))
        # Loaded here, one suite's rows at a time, and dropped before the next: memory is the largest suite's.
        frame = _frame(con, s.sql)
        result = cp.run(batch_parameters={"dataframe": frame})
        n_rows = len(frame)
        del frame, cp
        now = datetime.now()
        sr = SuiteResult(suite=vd.name, run_id=f"{vd.name}:{run_id}", rows=n_rows, success=True)
        for vr in result.run_results.values():
            for er in vr.results:
                cfg = er.expectation_config
                severity = getattr(cfg.severity, "value", str(cfg.severity))
                name = _label(cfg)
                if not er.success:
                    sr.success = False
                    (sr.failed_critical if severity == "critical" else sr.failed_warning).append(
                        f"{name}: {_observed(er.result)}")
                details = json.dumps({"kwargs": {k: v for k, v in cfg.kwargs.items() if k != "batch_id"},
                                      "result": er.result}, default=str)[:20_000]
                rows.append([sr.run_id, vd.name, name, severity, bool(er.success), _observed(er.result), details, now])
        out.append(sr)
    con.executemany("INSERT INTO quality.expectation_results VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return CheckpointReport(out, str(docs_dir / "index.html"))


def run_raw_checkpoint(con: duckdb.DuckDBPyConnection, as_of: date, docs_dir: Path,
                       batches: dict[str, list[str]] | None = None, run_id: str | None = None) -> CheckpointReport:
    """Validate the latest load of every raw source (or the given batches)."""
    return run_suites(con, raw_suites(con, as_of, batches), docs_dir, run_id)


def run_marts_checkpoint(con: duckdb.DuckDBPyConnection, docs_dir: Path, run_id: str | None = None) -> CheckpointReport:
    """Validate the marts activation reads (customers, orders, consent)."""
    return run_suites(con, mart_suites(con), docs_dir, run_id)
