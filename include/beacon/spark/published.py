"""The control plane's view of what Spark publishes (issue 29, item 5; docs/architecture.md, "The control-plane
boundary").

Activation, journeys and measurement keep their state on one node (DuckDB's sync log, membership history, journey
logs: written in transactions, so a delivery is never lost nor sent twice). With the spark engine they read what
the cluster computed, audiences (`segments.*`), marts and scores, as Parquet. `attach` declares, in the control
plane's DuckDB, one view per Spark table over that table's Parquet folder (`read_parquet`, Hive partition folders
such as `model=lead_score` as columns), under the same `schema.table` names the DuckDB build would have written, so
the activation code reads them unchanged. No JVM is needed on the control plane: the folders are read directly.
The views read the files when queried; the control plane reads after the Spark build that wrote them has finished
(Airflow orders the two by the build's Asset), because plain Parquet tables have no snapshot isolation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb

from beacon.config import Settings, settings
from beacon.spark.session import spark_dir
from beacon.warehouse import quote_ident, sql_literal

# The schemas of the Spark build the control plane reads (dbt's: audiences, marts, ML outputs).
READ_SCHEMAS = ("segments", "marts", "ml")


def spark_tables(s: Settings | None = None, schemas: tuple[str, ...] = READ_SCHEMAS) -> dict[str, Path]:
    """The Spark tables of these schemas that hold Parquet files, `schema.table` -> folder (Spark's warehouse
    layout: <warehouse>/<schema>.db/<table>), and the scores beacon.spark.score publishes (`ml.scores`)."""
    root = spark_dir(s) / "warehouse"
    found: dict[str, Path] = {}
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


def attach(con: duckdb.DuckDBPyConnection, tables: Mapping[str, Path]) -> list[str]:
    """One view per table over its Parquet files (replacing an earlier view of the same name); a table of that
    name in DuckDB is refused, named, rather than shadowed or dropped. Returns the views made."""
    made = []
    for name, folder in sorted(tables.items()):
        schema, table = name.split(".", 1)
        kind = con.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = ? "
                           "AND table_name = ?", [schema, table]).fetchall()
        if kind and kind[0][0] != "VIEW":
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
