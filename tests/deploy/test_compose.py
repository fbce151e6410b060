"""docker-compose.yml: it interpolates and validates against the Compose Specification's JSON Schema (no Docker
engine or CLI needed, so it never skips), and it keeps the house rules of the production shape."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

# Variables the compose file requires (`${VAR:?...}`); dummy values, never real secrets.
REQUIRED_ENV = {
    "AIRFLOW__CORE__FERNET_KEY": "test-fernet-key",
    "AIRFLOW__API__SECRET_KEY": "test-api-secret-key",
    "AIRFLOW__API_AUTH__JWT_SECRET": "test-jwt-secret",
    "AIRFLOW_ADMIN_PASSWORD": "test-admin-password",
    "BEACON_WAREHOUSE_KEY": "test-warehouse-key",
    "BEACON_PRIVACY_KEY": "test-privacy-key-0123456789",
}

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}

INTERPOLATION = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:[?-][^}]*)?\}$")
REQUIRED_INTERPOLATION = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}$")


# Compose's interpolation: $$ is a literal $, ${VAR}, ${VAR:-default}/${VAR-default}, ${VAR:?error}/${VAR?error}.
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class MissingVariable(ValueError):
    """A `${VAR:?message}` whose variable is unset (compose refuses to start)."""


def interpolate(value, env: dict[str, str]):
    """The compose file as `docker compose config` sees it: every string interpolated from `env` (no engine)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        have = env.get(name)
        unset = have is None or (op is not None and op.startswith(":") and have == "")
        if op and op.endswith("?") and unset:
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        if op and op.endswith("-") and unset:
            return arg
        return have or ""

    return _VAR.sub(one, value)


def compose_schema() -> dict:
    """The Compose Specification's JSON Schema, as vendored (with its licence) by check-jsonschema."""
    from importlib.resources import files

    return json.loads((files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text())


def validate_compose(env: dict[str, str], path: Path = COMPOSE_FILE) -> dict:
    """Load (YAML anchors and merge keys resolved), interpolate and validate against the compose-spec schema."""
    doc = interpolate(yaml.safe_load(path.read_text()), env)
    validator = jsonschema.Draft202012Validator(compose_schema(), format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        raise jsonschema.ValidationError("; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                                                  for e in errors[:5]))
    return doc


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def _env(service: dict) -> dict[str, str]:
    """The service's environment as compose builds it: its env_file(s) first, `environment` over them."""
    from beacon.stack import read_env_file

    files = service.get("env_file") or []
    out: dict[str, str] = {}
    for f in [files] if isinstance(files, str) else files:
        out.update(read_env_file(ROOT / (f if isinstance(f, str) else f["path"])))
    return {**out, **{k: str(v) for k, v in (service.get("environment") or {}).items()}}


def _command_text(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def test_compose_config_validates_with_required_env():
    # With every required secret set, the file interpolates and validates against the Compose Specification.
    doc = validate_compose(REQUIRED_ENV)
    assert doc["x-airflow-common"]["environment"]["AIRFLOW__CORE__FERNET_KEY"] == "test-fernet-key"


def test_compose_config_refuses_missing_fernet_key():
    # A missing secret stops compose instead of starting with an empty key.
    env = {k: v for k, v in REQUIRED_ENV.items() if k != "AIRFLOW__CORE__FERNET_KEY"}
    with pytest.raises(MissingVariable, match="AIRFLOW__CORE__FERNET_KEY"):
        validate_compose(env)


def test_compose_config_refuses_missing_warehouse_key():
    # The warehouse is encrypted at rest in compose: no key, no start (docs/privacy.md "Encryption at rest").
    env = {k: v for k, v in REQUIRED_ENV.items() if k != "BEACON_WAREHOUSE_KEY"}
    with pytest.raises(MissingVariable, match="BEACON_WAREHOUSE_KEY"):
        validate_compose(env)
    doc = validate_compose(REQUIRED_ENV)
    assert doc["x-airflow-common"]["environment"]["BEACON_WAREHOUSE_CRYPTO"] == "openssl"


def test_compose_config_refuses_missing_privacy_key():
    # Without the key, erased people's tombstones could not be checked: compose refuses to start.
    env = {k: v for k, v in REQUIRED_ENV.items() if k != "BEACON_PRIVACY_KEY"}
    with pytest.raises(MissingVariable, match="BEACON_PRIVACY_KEY"):
        validate_compose(env)


def test_schema_validation_catches_what_compose_would_refuse(tmp_path):
    # The validator is not a rubber stamp: a misspelled service key and a wrong type are refused, naming the place.
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    doc["services"]["redis"]["healthchek"] = doc["services"]["redis"].pop("healthcheck")
    doc["services"]["postgres"]["restart"] = ["always"]
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(jsonschema.ValidationError) as err:
        validate_compose(REQUIRED_ENV, bad)
    assert "services/redis" in str(err.value) and "healthchek" in str(err.value)
    assert "services/postgres/restart" in str(err.value)


def test_interpolation_follows_compose_rules():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET}/${UNSET:-d}/${EMPTY:-d}/${EMPTY-d}/$$HOME/$SET", env) == "x/d/d//$HOME/x"
    with pytest.raises(MissingVariable, match="EMPTY"):
        interpolate("${EMPTY:?needed}", env)
    assert interpolate("${EMPTY?needed}", env) == ""


def test_uses_celery_executor_on_every_airflow_service(compose, services):
    # The common anchor sets CeleryExecutor and each Airflow service inherits it.
    assert "x-airflow-common" in compose
    assert set(services) >= AIRFLOW_SERVICES
    for name in AIRFLOW_SERVICES:
        assert _env(services[name])["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name


def test_backing_services_present(services):
    # Postgres metadata DB and Redis broker, both health-checked.
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]
    env = _env(services["airflow-scheduler"])
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")


def test_airflow3_components_and_worker(services):
    # Airflow 3: api-server (not webserver), separate dag-processor, triggerer, a Celery worker.
    commands = {name: _command_text(services[name]) for name in AIRFLOW_SERVICES - {"airflow-init"}}
    assert commands == {
        "airflow-api-server": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
        "airflow-worker": "celery worker",
    }
    assert not any("webserver" in c for c in commands.values())
    env = _env(services["airflow-worker"])
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-api-server:8080/execution/"


def test_long_running_services_are_health_checked_and_wait_for_init(services):
    # Every long-running Airflow service has a healthcheck and starts after a successful init.
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        service = services[name]
        assert "healthcheck" in service, name
        depends = service["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_init_migrates_and_creates_duckdb_writer_pool(services):
    # The init service migrates the DB and creates the 1-slot pool that serializes DuckDB writers.
    init = _command_text(services["airflow-init"])
    assert "airflow db migrate" in init
    assert "airflow pools import /opt/airflow/project/deploy/pools.json" in init, init
    pools = json.loads((ROOT / "deploy" / "pools.json").read_text())
    assert pools["duckdb_writer"]["slots"] == 1
    # ... and it parses the dbt project, so the DAG processor finds a manifest on a fresh clone.
    assert "ensure_manifest()" in init and init.index("ensure_manifest()") > init.index("airflow db migrate")


def test_warehouse_on_named_volume(compose, services):
    # The DuckDB warehouse lives on a named volume, and BEACON_WAREHOUSE points into it.
    named = set(compose.get("volumes") or {})
    for name in AIRFLOW_SERVICES:
        service = services[name]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert mounts.get("/opt/airflow/warehouse") in named, name
        assert mounts.get("/opt/airflow/dags") == "./dags", name
        for folder in ("include", "ml", "dbt_project"):
            assert f"./{folder}" in mounts.values(), (name, folder)
        env = _env(service)
        assert env["BEACON_WAREHOUSE"] == "/opt/airflow/warehouse/beacon.duckdb"
        assert env["BEACON_HOME"] == "/opt/airflow/project"
        assert "/opt/airflow/project" in env["PYTHONPATH"].split(":")


def test_no_telemetry_no_examples_no_runtime_pip(services):
    # Examples off, telemetry off, and dependencies come from the image, not installed at start.
    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false", name
        assert env["AIRFLOW__COSMOS__ENABLE_TELEMETRY"].lower() == "false", name
        assert env["DO_NOT_TRACK"] == "1", name
        assert not env.get("_PIP_ADDITIONAL_REQUIREMENTS"), name


def test_no_literal_secrets(services):
    # Keys and passwords come from ${...}; fernet/secret/JWT keys are required (no default at all).
    secret_key = re.compile(r"(FERNET|SECRET|JWT|PASSWORD|TOKEN)", re.IGNORECASE)
    url_password = re.compile(r"://[^:/@]+:([^@]*)@")
    for name, service in services.items():
        for key, value in _env(service).items():
            if key.startswith(
                ("AIRFLOW__CORE__FERNET", "AIRFLOW__API__SECRET", "AIRFLOW__API_AUTH__JWT_SECRET")
            ):
                assert REQUIRED_INTERPOLATION.match(value), (name, key, value)
            elif secret_key.search(key) and "AUDIENCE" not in key:
                assert INTERPOLATION.match(value), (name, key, value)
                if ":-" in value:  # only the local Postgres password may have a dev-only default
                    assert value.startswith("${POSTGRES_PASSWORD:-"), (name, key, value)
            for password in url_password.findall(value):
                assert INTERPOLATION.match(password), (name, key, value)


def test_image_built_from_official_airflow(compose):
    # The image extends the official Airflow 3.3.2 image; Beacon is installed against the lock.
    common = compose["x-airflow-common"]
    assert common["build"]["args"]["AIRFLOW_IMAGE"] == "apache/airflow:3.3.2-python3.11"
    dockerfile = (ROOT / common["build"]["dockerfile"]).read_text()
    assert "FROM ${AIRFLOW_IMAGE}" in dockerfile
    assert "-c requirements.lock ." in dockerfile


SPARK_SERVICES = {"spark-master", "spark-worker", "spark-thrift"}


def test_spark_profile_is_opt_in_and_runs_beacons_image(compose, services):
    # `docker compose up` starts no Spark; `--profile spark` starts the three, from the image the Airflow
    # services run (the executors need the driver's Python and packages for mapInPandas scoring).
    assert SPARK_SERVICES <= set(services)
    for name, service in services.items():
        assert (service.get("profiles") == ["spark"]) == (name in SPARK_SERVICES), name
    for name in SPARK_SERVICES:
        assert services[name]["image"] == compose["x-airflow-common"]["image"], name
        assert "ports" not in services[name], name  # the compose network only, like Postgres and Redis
        assert "healthcheck" in services[name], name
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "openjdk-17-jre-headless" in dockerfile


def test_spark_nodes_share_the_drivers_data_folder_and_session_settings(services, monkeypatch):
    # The executors write the tables the driver names: the same folder at the same path on every node, and the
    # Thrift Server's SQL settings equal the session's (beacon.spark.session.spark_conf), so one SQL text means
    # the same through either.
    from beacon.config import settings
    from beacon.spark.session import spark_conf

    data_dir = _env(services["airflow-worker"])["BEACON_DATA_DIR"]
    for name in SPARK_SERVICES:
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        assert mounts[data_dir] == "beacon-data", name
        assert _env(services[name])["BEACON_DATA_DIR"] == data_dir, name
    monkeypatch.setenv("BEACON_DATA_DIR", data_dir)
    conf = spark_conf(settings())
    thrift = _command_text(services["spark-thrift"])
    given = dict(re.findall(r"--conf (\S+?)=(\S+)", thrift))
    for key in ("spark.sql.warehouse.dir", "spark.sql.session.timeZone", "spark.sql.timestampType",
                "spark.sql.sources.partitionOverwriteMode", "spark.sql.parser.escapedStringLiterals"):
        assert given[key] == conf[key], key
    assert "spark://spark-master:7077" in _command_text(services["spark-worker"])
    assert "--master spark://spark-master:7077" in thrift


def test_the_engine_is_chosen_by_environment_duckdb_by_default():
    doc = validate_compose(REQUIRED_ENV)
    env = doc["x-airflow-common"]["environment"]
    assert (env["BEACON_ENGINE"], env["BEACON_SPARK_MASTER"]) == ("duckdb", "local[2]")
    doc = validate_compose({**REQUIRED_ENV, "BEACON_ENGINE": "spark", "BEACON_SPARK_MASTER": "spark://spark-master:7077"})
    env = doc["services"]["airflow-worker"]["environment"]
    assert (env["BEACON_ENGINE"], env["BEACON_SPARK_MASTER"]) == ("spark", "spark://spark-master:7077")
