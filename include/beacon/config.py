"""One place for settings: every environment variable Beacon reads is a field of `Settings`, and the base of every
typed configuration document (`StrictConfig`: connection extras, the service's file), which rejects unknown keys.

Imports nothing of ours (bottom of the import graph).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

# include/beacon/config.py -> project root is two levels above the package folder.
_DEFAULT_HOME = Path(__file__).resolve().parents[2]


def _path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def _number(var: str, default, kind: type = int, what: str = "a whole number"):
    value = os.environ.get(var)
    if value is None or not value.strip():
        return default
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"environment variable {var}={value!r}: expected {what}") from None


def _days(var: str, default: float) -> float:
    value = _number(var, default, float, "a number of days")
    if not 0 < value < float("inf"):
        raise ValueError(f"environment variable {var}={os.environ.get(var)!r}: expected a positive number of days")
    return value


def _int(var: str, default: int | None) -> int | None:
    return _number(var, default)


def _positive(var: str, default: int) -> int:
    value = _number(var, default)
    if value < 1:
        raise ValueError(f"environment variable {var}={os.environ.get(var)!r}: expected a whole number of at least 1")
    return value


# The engines BEACON_ENGINE may name (issue 29): DuckDB (the default, the demo) and Apache Spark.
ENGINES = ("duckdb", "spark")


def _engine(var: str = "BEACON_ENGINE") -> str:
    value = os.environ.get(var)
    if value is None or not value.strip():
        return ENGINES[0]
    if value.strip().lower() not in ENGINES:
        raise ValueError(f"environment variable {var}={value!r}: unknown engine (allowed: {', '.join(ENGINES)})")
    return value.strip().lower()


# How DuckDB encrypts the warehouse (BEACON_WAREHOUSE_CRYPTO; beacon.warehouse.prepare_crypto).
CRYPTO_MODES = ("auto", "openssl", "mbedtls")


def java_runtime() -> str | None:
    """A Java runtime for the spark engine: `java` on PATH, else JAVA_HOME (Spark's own variable), else None."""
    import shutil

    return shutil.which("java") or os.environ.get("JAVA_HOME") or None


def _choice(var: str, allowed: tuple[str, ...]) -> str:
    value = (os.environ.get(var) or "").strip().lower()
    if not value:
        return allowed[0]
    if value not in allowed:
        raise ValueError(f"environment variable {var}={os.environ.get(var)!r}: expected one of {', '.join(allowed)}")
    return value


def _secret(var: str, file_var: str) -> str | None:
    """A secret from `var`, else from the file `file_var` names (stripped); None when neither is set. The value is
    never part of an error message."""
    value = os.environ.get(var)
    if value:
        return value
    path = os.environ.get(file_var)
    if not path:
        return None
    try:
        text = Path(path).expanduser().read_text().strip()
    except OSError as exc:
        raise ValueError(f"environment variable {file_var}={path!r}: cannot read the file ({exc.strerror})") from None
    if not text:
        raise ValueError(f"environment variable {file_var}={path!r}: the file is empty")
    return text


@dataclass(frozen=True)
class Settings:
    """Every setting Beacon reads from the environment, resolved (the variable is named in each comment).

    Airflow connections (destinations, the CRM API) and dbt vars (segment windows) are read where they
    are used; README.md lists all three sources in one table."""

    home: Path  # BEACON_HOME: the project folder (default: the checkout)
    data_dir: Path  # BEACON_DATA_DIR: everything generated and built (default: <home>/data)
    landing_dir: Path  # BEACON_LANDING_DIR: landing files, a folder or fsspec URL (default: <data>/landing)
    truth_dir: Path  # BEACON_TRUTH_DIR: the generator's ground truth (default: <data>/truth)
    warehouse_path: Path  # BEACON_WAREHOUSE: the DuckDB file (default: <data>/warehouse/beacon.duckdb)
    exports_dir: Path  # BEACON_EXPORTS_DIR: file exports (default: <data>/exports)
    registry_dir: Path  # BEACON_REGISTRY_DIR: the model registry (default: <data>/registry)
    dbt_project_dir: Path  # BEACON_DBT_PROJECT_DIR: the dbt project (default: <home>/dbt_project)
    dbt_target_dir: Path  # BEACON_DBT_TARGET_DIR: dbt's target folder with the manifest (default: <dbt>/target)
    engine: str = "duckdb"  # BEACON_ENGINE: the warehouse engine, one of ENGINES (duckdb | spark; docs/scale.md)
    spark_master: str = "local[2]"  # BEACON_SPARK_MASTER: the spark engine's master (a local session by default)
    # BEACON_SPARK_DRIVER_MEMORY: the local Spark session's JVM heap (spark.driver.memory; in local mode the driver
    # is also the executor), set when the JVM starts
    spark_driver_memory: str = "1g"
    duckdb_memory_limit: str = "8GB"  # BEACON_DUCKDB_MEMORY_LIMIT: DuckDB spills to disk beyond this
    # BEACON_DBT_MEMORY_LIMIT / BEACON_INGEST_MEMORY_LIMIT: DuckDB's memory limit while dbt builds (identity resolution's
    # pandas frames come on top, in the same process) and while ingest loads (its Arrow batches and the checkpoint of a
    # big file's rows come on top) (docs/scale.md, Memory). dbt's is unset by default (DuckDB's own default, 80% of
    # the machine): at 4 GB a 1M-people build failed out of memory in int_customers_behaviour, which cannot spill.
    dbt_memory_limit: str | None = None
    ingest_memory_limit: str = "4GB"
    ingest_batch_rows: int = 250_000  # BEACON_INGEST_BATCH_ROWS: rows per batch a reader hands to the load engine
    ingest_prefetch: int = 1  # BEACON_INGEST_PREFETCH: batches read ahead of the one being loaded (Arrow, in memory)
    frequency_cap: int = 3  # BEACON_FREQUENCY_CAP: messages per person per 7 days (a connection may override)
    retry_delay_seconds: int | None = None  # BEACON_RETRY_DELAY_SECONDS: task retry delay (unset: 120 s; demo 3 s)
    airflow_home: Path | None = None  # AIRFLOW_HOME: the embedded Airflow's home (default: <home>/.airflow)
    airflow_log_level: str = "WARNING"  # AIRFLOW__LOGGING__LOGGING_LEVEL: the embedded Airflow's log level
    # AIRFLOW__LOGGING__NAMESPACE_LEVELS: per-logger levels for the embedded Airflow (Beacon adds one, see pipeline)
    airflow_namespace_levels: str = ""
    airflow_log_folder: Path | None = None  # AIRFLOW__LOGGING__BASE_LOG_FOLDER: task logs (privacy erasure cleans them)
    # AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: Airflow's metadata database (privacy erasure cleans XComs); never shown by repr
    airflow_metadata_url: str | None = field(default=None, repr=False)
    lock_wait_seconds: float = 300.0  # BEACON_LOCK_WAIT_SECONDS: how long a writer waits for the warehouse lock
    journeys_interval_minutes: int = 15  # BEACON_JOURNEYS_INTERVAL_MINUTES: how often the journeys DAG advances
    retrain_every_days: float = 7.0  # BEACON_RETRAIN_EVERY_DAYS: the ML DAG retrains a model this often, or when its scores drift
    # Measurement (docs/measurement.md).
    global_control_pct: float = 0.0  # BEACON_GLOBAL_CONTROL_PCT: % of everyone who gets no marketing at all
    global_control_period_days: int = 90  # BEACON_GLOBAL_CONTROL_PERIOD_DAYS: the global control is redrawn per period
    # BEACON_MEASUREMENT_WINDOW_DAYS: outcomes count this long after exposure; the one setting of the window, for the
    # report and (handed to dbt by beacon.dbt.dbt_env) the mart measurement.campaign_exposure_outcomes
    measurement_window_days: float = 7.0
    message_costs: str = "email=0.001,ads=0.005,webhook=0,file=0"  # BEACON_MESSAGE_COSTS: cost per message, per channel
    # --- service (beacon serve, issue 19) ---
    # BEACON_SERVICE_CONFIG: a JSON file outside the repo with the service's secrets (write keys, webhook and
    # unsubscribe keys); unset: the Airflow connection beacon_service (extras of the same shape)
    service_config: Path | None = None
    realtime_interval_seconds: int = 20  # BEACON_REALTIME_INTERVAL_SECONDS: the beacon_realtime DAG's cycle
    # --- `make up` (beacon.stack): the local Airflow stack on Postgres ---
    stack_dir: Path | None = None  # BEACON_STACK_DIR: its Postgres cluster, Airflow home, logs (default <home>/.beacon)
    api_port: int = 8080  # BEACON_API_PORT: the Airflow API server / UI port on 127.0.0.1
    # --- encryption at rest of the warehouse file (docs/privacy.md "Encryption at rest") ---
    # BEACON_WAREHOUSE_KEY: the key of the encrypted warehouse (unset: the file is not encrypted); or
    # BEACON_WAREHOUSE_KEY_FILE: a file holding it (e.g. a Docker secret); or BEACON_WAREHOUSE_KEY_CONN: the id of an
    # Airflow connection whose password is the key. Never printed (repr=False).
    warehouse_key: str | None = field(default=None, repr=False)
    warehouse_key_conn: str | None = None  # BEACON_WAREHOUSE_KEY_CONN (read by beacon.warehouse.warehouse_key)
    # BEACON_WAREHOUSE_CRYPTO: auto (OpenSSL through DuckDB's httpfs extension when it is installed, else DuckDB's
    # built-in mbedtls, with a warning) | openssl (refuse without httpfs) | mbedtls
    warehouse_crypto: str = "auto"
    # BEACON_RETENTION_CONFIG: a YAML file of retention windows replacing include/beacon/privacy/retention.yml
    retention_config: Path | None = None
    # --- privacy requests (docs/privacy.md) ---
    # BEACON_PRIVACY_KEY: the secret of the keyed hashes of erased identifiers (tombstones, blocked sets, the audit
    # trail); at least 16 characters, never in code or committed config; never shown by repr
    privacy_key: str | None = field(default=None, repr=False)
    privacy_due_days: int = 30  # BEACON_PRIVACY_DUE_DAYS: a request is due this many days after it was accepted

    @property
    def manifest_path(self) -> Path:
        return self.dbt_target_dir / "manifest.json"


def settings() -> Settings:
    """Read the settings now (environment variables win over defaults)."""
    home = _path("BEACON_HOME", _DEFAULT_HOME)
    data = _path("BEACON_DATA_DIR", home / "data")
    dbt_dir = _path("BEACON_DBT_PROJECT_DIR", home / "dbt_project")
    return Settings(
        home=home,
        data_dir=data,
        landing_dir=_path("BEACON_LANDING_DIR", data / "landing"),
        truth_dir=_path("BEACON_TRUTH_DIR", data / "truth"),
        warehouse_path=_path("BEACON_WAREHOUSE", data / "warehouse" / "beacon.duckdb"),
        exports_dir=_path("BEACON_EXPORTS_DIR", data / "exports"),
        registry_dir=_path("BEACON_REGISTRY_DIR", data / "registry"),
        dbt_project_dir=dbt_dir,
        dbt_target_dir=_path("BEACON_DBT_TARGET_DIR", dbt_dir / "target"),
        engine=_engine(),
        spark_master=os.environ.get("BEACON_SPARK_MASTER") or "local[2]",
        spark_driver_memory=os.environ.get("BEACON_SPARK_DRIVER_MEMORY") or "1g",
        duckdb_memory_limit=os.environ.get("BEACON_DUCKDB_MEMORY_LIMIT") or "8GB",
        dbt_memory_limit=os.environ.get("BEACON_DBT_MEMORY_LIMIT") or None,
        ingest_memory_limit=os.environ.get("BEACON_INGEST_MEMORY_LIMIT") or "4GB",
        ingest_batch_rows=_positive("BEACON_INGEST_BATCH_ROWS", 250_000),
        ingest_prefetch=_positive("BEACON_INGEST_PREFETCH", 1),
        frequency_cap=_int("BEACON_FREQUENCY_CAP", 3),
        retry_delay_seconds=_int("BEACON_RETRY_DELAY_SECONDS", None),
        # Not resolved: Airflow reads AIRFLOW_HOME as given.
        airflow_home=Path(os.environ["AIRFLOW_HOME"]) if os.environ.get("AIRFLOW_HOME") else home / ".airflow",
        airflow_log_level=os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL") or "WARNING",
        airflow_namespace_levels=os.environ.get("AIRFLOW__LOGGING__NAMESPACE_LEVELS", ""),
        airflow_log_folder=_path("AIRFLOW__LOGGING__BASE_LOG_FOLDER", None),  # type: ignore[arg-type]
        airflow_metadata_url=os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or None,
        lock_wait_seconds=max(0.0, _number("BEACON_LOCK_WAIT_SECONDS", 300.0, float, "a number of seconds")),
        journeys_interval_minutes=_int("BEACON_JOURNEYS_INTERVAL_MINUTES", 15),
        retrain_every_days=_days("BEACON_RETRAIN_EVERY_DAYS", 7.0),
        global_control_pct=_number("BEACON_GLOBAL_CONTROL_PCT", 0.0, float, "a percentage"),
        global_control_period_days=_number("BEACON_GLOBAL_CONTROL_PERIOD_DAYS", 90),
        measurement_window_days=_days("BEACON_MEASUREMENT_WINDOW_DAYS", 7.0),
        message_costs=os.environ.get("BEACON_MESSAGE_COSTS") or "email=0.001,ads=0.005,webhook=0,file=0",
        service_config=_path("BEACON_SERVICE_CONFIG", None),  # type: ignore[arg-type]
        realtime_interval_seconds=_int("BEACON_REALTIME_INTERVAL_SECONDS", 20) or 20,
        stack_dir=_path("BEACON_STACK_DIR", home / ".beacon"),
        api_port=_int("BEACON_API_PORT", 8080),
        warehouse_key=_secret("BEACON_WAREHOUSE_KEY", "BEACON_WAREHOUSE_KEY_FILE"),
        warehouse_key_conn=os.environ.get("BEACON_WAREHOUSE_KEY_CONN") or None,
        warehouse_crypto=_choice("BEACON_WAREHOUSE_CRYPTO", CRYPTO_MODES),
        retention_config=_path("BEACON_RETENTION_CONFIG", None),  # type: ignore[arg-type]
        privacy_key=os.environ.get("BEACON_PRIVACY_KEY") or None,
        privacy_due_days=_int("BEACON_PRIVACY_DUE_DAYS", 30) or 30,
    )


class StrictConfig(BaseModel):
    """A configuration document: every key is declared, so a typo is an error rather than a silently ignored key."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ConfigError(ValueError):
    """A configuration document (a connection's extras, the service's JSON file) has an unknown or invalid key."""


C = TypeVar("C", bound=StrictConfig)


def parse_config(model: type[C], doc: object, where: str, prefix: str = "") -> C:
    """`doc` validated as `model`; errors name `where` (e.g. "connection beacon_email") and every bad key, with
    the closest known key for a typo ("extra: unknown key 'form' (did you mean 'from'?)"). `prefix` names the
    document inside `where` ("extra"). Values are never repeated in the message: they may be secrets."""
    try:
        return model.model_validate(doc if doc is not None else {})
    except ValidationError as exc:
        raise ConfigError(f"{where}: " + "; ".join(_problem(model, e, prefix) for e in exc.errors())) from None


def _problem(model: type[StrictConfig], err, prefix: str) -> str:
    loc = [str(p) for p in err["loc"]]
    path = ".".join(([prefix] if prefix else []) + loc)
    if err["type"] == "extra_forbidden":
        parent = ".".join(([prefix] if prefix else []) + loc[:-1])
        known = _known_keys(model, loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(known))}"
        return f"{parent + ': ' if parent else ''}unknown key {loc[-1]!r} ({hint})"
    if err["type"] == "missing":
        return f"{path} is required"
    return f"{path}: {err['msg']}"


def _known_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    """The keys a (possibly nested) model accepts at `path`, by their names in the document."""
    for part in path:
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        sub = getattr(field, "annotation", None) if field else None
        sub = next((a for a in getattr(sub, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)),
                   sub)
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            return []
        model = sub
    return [f.alias or n for n, f in model.model_fields.items()]


@contextmanager
def override_env(**values: str) -> Iterator[None]:
    """Set environment variables for a block (e.g. point Beacon at another data folder), then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
