"""Every benchmark, in one place; run them as `beacon bench <name> [--repeat K] --json`.

`pipeline` (each stage timed) and `warehouse` (the Cosmos DAG against a plain dbt build), `ingest`
(events rows/s against DuckDB's read_json), `activation` (diff of a large audience, webhook delivery
under faults), `score` (the scoring path on synthetic customers), `identity` (the linker at scale on a
generated world). Figures and how they were taken: docs/benchmarks.md.
"""
