"""The control plane's view of what Spark publishes (issue 29, item 5; docs/architecture.md, "The control-plane
boundary").

Activation, journeys and measurement keep their state on one node (DuckDB's sync log, membership history, journey
logs: written in transactions, so a delivery is never lost nor sent twice). With the spark engine they read what
the cluster computed, audiences (`segments.*`), marts and scores, as Parquet. `attach` declares, in the control
plane's DuckDB, one view per Spark table over that table's Parquet folder (`read_parquet`, Hive partition folders
such as `model=lead_score` as columns), under the same `schema.table` names the DuckDB build would have written, so
the activation code reads them unchanged. A dbt view on Spark is SQL in Spark's catalog, not files: `publish_views`
writes the rows of each view as Parquet after a build (the facts activation's governance reads are views). No JVM
is needed on the control plane: the folders are read directly.
The views read the files when queried; the control plane reads after the Spark build that wrote them has finished
(Airflow orders the two by the build's Asset), because plain Parquet tables have no snapshot isolation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from beacon.config import Settings, settings
from beacon.spark.session import spark_dir
from beacon.warehouse import quote_ident, sql_literal, table_type

# The schemas of the Spark build the control plane reads (dbt's: audiences, marts, ML outputs).
READ_SCHEMAS = ("segments", "marts", "ml")


def spark_tables(s: Settings | None = None, schemas: tuple[str, ...] = READ_SCHEMAS) -> dict[str, Path]:
    """The Spark tables of these schemas that hold Parquet files, `schema.table` -> folder (Spark's warehouse
    layout: <warehouse>/<schema>.db/<table>), the views' copies publish_views wrote, and the scores
    beacon.spark.score publishes (`ml.scores`)."""
    found: dict[str, Path] = {}
    for root in (spark_dir(s) / "warehouse", views_dir(s)):  # the tables, then the views' copies (publish_views)
        for schema in schemas:
            base = root / f"{schema}.db"
            for folder in sorted(base.iterdir()) if base.is_dir() else []:
                if folder.is_dir() and next(folder.rglob("*.parquet"), None) is not None:
                    found[f"{schema}.{folder.name}"] = folder
    from beacon.spark.score import scores_dir

    scores = scores_dir(s)
    if "ml" in schemas and scores.is_dir() and next(scores.rglob("*.parquet"), None) is not None:
        found["ml.scores"] = scores
    return found


def views_dir(s: Settings | None = None) -> Path:
    """Where publish_views writes the Spark views' rows: <data>/spark/published/views/<schema>.db/<view>."""
    return spark_dir(s) / "published" / "views"


def publish_views(spark: Any, s: Settings | None = None, schemas: tuple[str, ...] = READ_SCHEMAS) -> dict[str, Path]:
    """Write the rows of every view of these schemas as Parquet (a view is SQL in Spark's catalog, which the control
    plane's DuckDB cannot read: activation's governance reads `marts.fct_email_events`, a view), replacing the
    previous copy; run after each build. Returns `schema.view` -> folder."""
    written = {}
    for schema in schemas:
        if not spark.catalog.databaseExists(schema):
            continue
        for table in spark.catalog.listTables(schema):
            if table.tableType == "VIEW" and not table.isTemporary:
                folder = views_dir(s) / f"{schema}.db" / table.name
                spark.table(f"{schema}.{table.name}").write.mode("overwrite").parquet(str(folder))
                written[f"{schema}.{table.name}"] = folder
    return written


def attach(con: duckdb.DuckDBPyConnection, tables: Mapping[str, Path]) -> list[str]:
    """One view per table over its Parquet files (replacing an earlier view of the same name); a table of that
    name in DuckDB is refused, named, rather than shadowed or dropped. Returns the views made."""
    made = []
    for name, folder in sorted(tables.items()):
        schema, table = name.split(".", 1)
        kind = table_type(con, schema, table)
        if kind is not None and kind != "VIEW":
            raise ValueError(f"{name} is a DuckDB table here: it would hide the Spark table at {folder} "
                             "(a control plane reads the Spark build's tables only; drop it first)")
        files = sql_literal(str(Path(folder) / "**" / "*.parquet"))
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        con.execute(f"CREATE OR REPLACE VIEW {quote_ident(schema)}.{quote_ident(table)} AS "
                    f"SELECT * FROM read_parquet({files}, hive_partitioning = true, union_by_name = true)")
        made.append(name)
    return made


def attach_published(con: duckdb.DuckDBPyConnection, s: Settings | None = None) -> list[str]:
    """Attach every table the Spark build published for the control plane (spark_tables) to `con`."""
    return attach(con, spark_tables(s or settings()))
