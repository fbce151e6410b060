"""The data-quality circuit breaker: activation sends nothing while a critical expectation is failing.

Checkpoint tasks append one row per expectation to `quality.expectation_results`; the breaker looks
only at each suite's latest run, so a fixed problem closes it again on the next successful checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

RESULTS_DDL = """
CREATE TABLE IF NOT EXISTS quality.expectation_results (
    run_id VARCHAR,           -- one checkpoint run of one suite
    suite VARCHAR,            -- e.g. raw_crm_contacts, marts_dim_customers
    expectation VARCHAR,      -- expectation type plus its column, readable
    severity VARCHAR,         -- 'critical' blocks activation; 'warning' is reported only
    success BOOLEAN,
    observed VARCHAR,         -- observed value / unexpected count, as text
    details VARCHAR,          -- JSON from the validator
    run_at TIMESTAMP
)"""


def ensure_results_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schema and results table if they are not there yet."""
    con.execute("CREATE SCHEMA IF NOT EXISTS quality")
    con.execute(RESULTS_DDL)


@dataclass(frozen=True)
class BreakerState:
    """Open means: do not activate. `failures` names each failing critical expectation."""

    open: bool
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def breaker_state(con: duckdb.DuckDBPyConnection) -> BreakerState:
    """Read each suite's latest run and open the breaker if any critical expectation in it failed."""
    ensure_results_table(con)
    rows = con.execute("""
        WITH latest AS (
            SELECT suite, arg_max(run_id, run_at) AS run_id FROM quality.expectation_results GROUP BY suite)
        SELECT r.suite, r.expectation, r.severity, r.observed
        FROM quality.expectation_results r JOIN latest USING (suite, run_id)
        WHERE NOT r.success ORDER BY r.suite, r.expectation""").fetchall()
    failures = [f"{s}: {e} (observed {o})" for s, e, sev, o in rows if sev == "critical"]
    warnings = [f"{s}: {e} (observed {o})" for s, e, sev, o in rows if sev != "critical"]
    return BreakerState(open=bool(failures), failures=failures, warnings=warnings)


def record_results(con: duckdb.DuckDBPyConnection, suite: str, run_id: str,
                   results: list[tuple[str, bool, str, str, str]]) -> None:
    """Append one checked rule's outcome per row (name, success, observed, limit, severity) as a suite run.

    For checks that are not Great Expectations suites (the identity guards): the breaker reads them the same way,
    so a failing critical rule blocks activation until a later run of the suite passes."""
    import json
    from datetime import UTC, datetime

    ensure_results_table(con)
    now = datetime.now(UTC).replace(tzinfo=None)  # an audit time, like the checkpoints' run_at
    con.executemany("INSERT INTO quality.expectation_results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [[f"{suite}:{run_id}", suite, name, severity, bool(ok), observed, json.dumps({"limit": limit}), now]
                     for name, ok, observed, limit, severity in results])
