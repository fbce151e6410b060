"""The local Spark session dbt-spark's `session` method runs on, with Beacon's SQL functions registered.

dbt-spark (method: session) takes `SparkSession.builder.enableHiveSupport().getOrCreate()` in dbt's own process, so
the session made here first, with the same settings as profiles.yml's `spark` target, is the one dbt uses, and the
functions registered on it are visible to every model. The catalog (Hive metastore on Derby) and the tables live
under <data>/spark, so a later process finds the tables an earlier one wrote.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from pathlib import Path
from typing import Any

from beacon.config import Settings, settings


def spark_dir(s: Settings | None = None) -> Path:
    """The spark engine's folder: the warehouse (table files) and the metastore."""
    return (s or settings()).data_dir / "spark"


def spark_conf(s: Settings | None = None) -> dict[str, str]:
    """The session's settings, the same as profiles.yml's `spark` target (BEACON_SPARK_MASTER, BEACON_DATA_DIR,
    BEACON_SPARK_DRIVER_MEMORY)."""
    s = s or settings()
    root = spark_dir(s)
    return {
        "spark.master": s.spark_master,
        "spark.app.name": "beacon",
        "spark.sql.warehouse.dir": str(root / "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={root / 'metastore_db'};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={root}",
        # Time is UTC, and a `timestamp` means what DuckDB's does: a time without a zone.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.timestampType": "TIMESTAMP_NTZ",
        # insert_overwrite replaces only the day partitions a run writes (macros/incremental_by_day.sql).
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": s.spark_driver_memory,  # BEACON_SPARK_DRIVER_MEMORY
        # Regular expressions are written once for both engines: a backslash in a string literal is kept, as DuckDB
        # keeps it (Spark would otherwise read '\b' as an escape).
        "spark.sql.parser.escapedStringLiterals": "true",
    }


def strip_accents(value: str | None) -> str | None:
    """DuckDB's strip_accents: the text without its marks (decomposed, every mark dropped: Mn, Mc and Me, as
    utf8proc's STRIPMARK does; recomposed). Python's Unicode database (`unicodedata.unidata_version`) may be older
    than DuckDB's utf8proc: a mark assigned in a later Unicode version is kept here and stripped by DuckDB."""
    if value is None:
        return None
    return unicodedata.normalize("NFC", "".join(c for c in unicodedata.normalize("NFD", value)
                                                if not unicodedata.category(c).startswith("M")))


def nfc_normalize(value: str | None) -> str | None:
    """DuckDB's nfc_normalize: Unicode NFC."""
    return None if value is None else unicodedata.normalize("NFC", value)


def register_functions(spark: Any) -> None:
    """Beacon's SQL functions on a Spark session: the same Python functions the dbt-duckdb plugin registers on
    DuckDB (beacon.identity.normalize), and DuckDB's strip_accents / nfc_normalize, which Spark lacks."""
    from pyspark.sql.types import ArrayType, StringType

    from beacon.identity.normalize import e164, name_aliases

    spark.udf.register("beacon_e164", e164, StringType())
    spark.udf.register("beacon_name_aliases", name_aliases, ArrayType(StringType()))
    spark.udf.register("beacon_strip_accents", strip_accents, StringType())
    spark.udf.register("beacon_nfc_normalize", nfc_normalize, StringType())


def set_privacy_key(spark: Any, s: Settings | None = None) -> None:
    """The session variable `beacon_privacy_key` staging's not_erased filter hashes with (dbt_project/macros/
    privacy.sql; the DuckDB plugin beacon.privacy.dbt_plugin sets DuckDB's): the configured key, bound as a
    parameter so it never appears in SQL text, or null when none is configured."""
    from beacon.tombstones import check_key

    key = (s or settings()).privacy_key
    spark.sql("DECLARE OR REPLACE VARIABLE beacon_privacy_key STRING DEFAULT NULL")
    if key:
        spark.sql("SET VARIABLE beacon_privacy_key = :key", args={"key": check_key(key)})


def session(s: Settings | None = None) -> Any:
    """The process's Spark session (made once: Spark has one per process), with Beacon's functions."""
    from pyspark.sql import SparkSession

    s = s or settings()
    spark_dir(s).mkdir(parents=True, exist_ok=True)
    # The Python workers of Beacon's functions run this Python (the project's environment, where beacon imports);
    # PySpark reads the variable when the session starts.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.enableHiveSupport()
    for key, value in spark_conf(s).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    register_functions(spark)
    set_privacy_key(spark, s)
    return spark
