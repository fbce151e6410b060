# Beacon's Airflow image: the official image plus Beacon and its locked dependencies.
# Built by `docker compose build` (see docker-compose.yml); never _PIP_ADDITIONAL_REQUIREMENTS.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

ENV BEACON_HOME=/opt/airflow/project \
    DO_NOT_TRACK=1 \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=false

# Java 17 for the spark engine (pyspark; docker-compose.yml's `spark` profile runs Spark's master, worker and Thrift
# Server from this image too, so the executors have the driver's Python and packages).
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
USER airflow

WORKDIR /opt/airflow/project

# Dependencies first, so code edits do not invalidate the (slow) install layer.
COPY --chown=airflow:0 pyproject.toml requirements.lock README* ./
COPY --chown=airflow:0 include ./include
COPY --chown=airflow:0 ml ./ml
COPY --chown=airflow:0 dbt_project ./dbt_project

# Pin apache-airflow to the image's own version (AIRFLOW_VERSION is set by the official image)
# so pip never swaps Airflow out; everything else is constrained by requirements.lock.
RUN test -f README.md || echo "# Beacon" > README.md \
 && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -c requirements.lock .

# DuckDB writes an encrypted warehouse with OpenSSL, which its httpfs extension brings (docs/privacy.md "Encryption
# at rest"); installed once here, into the airflow user's ~/.duckdb, so no task downloads anything.
RUN python -c "import duckdb; duckdb.connect().install_extension('httpfs')"

WORKDIR /opt/airflow
