"""`make up` / `make down`: Airflow 3's real components on a local Postgres, no Docker.

Everything lives in a git-ignored folder (Settings.stack_dir, default `<home>/.beacon`):

    postgres/data  the cluster (Debian's `postgresql` binaries; run as the `postgres` user when we are root,
                   because Postgres refuses to run as root), listening on 127.0.0.1 only
    airflow/       AIRFLOW_HOME: airflow.cfg-free (all settings are environment variables, below)
    logs/          one log per component: postgres, scheduler, dag-processor, triggerer, api-server
    run/           one pid file per Airflow component
    secrets.json   generated once: database password, Fernet key, API secret, JWT secret (never committed)
    passwords.json the UI users' generated passwords (SimpleAuthManager's password file)
    stack.json     the ports in use

The Airflow settings shared with docker-compose.yml come from `deploy/airflow.env`, the pools from
`deploy/pools.json` (the same files compose reads), so the two deployments cannot drift.

Modules of one job each: `layout` (the folder, its files, stack.json), `env` (settings, secrets, the
components' environment), `processes` (ports, pid files, stopping), `postgres` (the cluster),
`components` (Airflow's four processes), `lifecycle` (up, down, status) and `api` (the REST API v2
client, triggering and waiting for the chain of `beacon.dag_chain`). This package re-exports their
public names.
"""


from beacon.stack.api import CHAIN, OPTIONAL, Api, chain, trigger_chain, wait_for_chain
from beacon.stack.components import COMPONENTS, airflow_cli
from beacon.stack.env import (
    ENV_FILE,
    LOCAL_SETTINGS,
    POOLS_FILE,
    USERS,
    passwords,
    read_env_file,
    shared_env,
    stack_env,
)
from beacon.stack.layout import Paths, StackError, log_tail, paths
from beacon.stack.lifecycle import down, status, up
from beacon.stack.postgres import pg_bin, start_postgres, stop_postgres
from beacon.stack.processes import free_port

__all__ = ["CHAIN", "COMPONENTS", "ENV_FILE", "LOCAL_SETTINGS", "OPTIONAL", "POOLS_FILE", "USERS", "Api", "Paths",
           "StackError", "airflow_cli", "chain", "down", "free_port", "log_tail", "passwords", "paths", "pg_bin",
           "read_env_file", "shared_env", "stack_env", "start_postgres", "status", "stop_postgres",
           "trigger_chain", "up", "wait_for_chain"]
