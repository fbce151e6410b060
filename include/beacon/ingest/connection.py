"""Where the landing zone is: an Airflow connection naming the root URL and its filesystem options."""

from __future__ import annotations

LANDING_CONN_ID = "beacon_landing"


def landing_from_connection(conn_id: str = LANDING_CONN_ID) -> tuple[str, dict] | None:
    """The landing root and fsspec options from an Airflow connection, or None when it is not defined.

    Extra `url` is the root (e.g. s3://bucket/landing); login/password are the access key and secret;
    other extras (endpoint_url, ...) are passed to the filesystem. Secrets stay in the connection."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        c = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    extra = dict(c.extra_dejson or {})
    url = extra.pop("url", None) or c.host
    if not url:
        raise ValueError(f"connection {conn_id}: set extra 'url' (or host) to the landing root")
    opts = {**({"key": c.login} if c.login else {}), **({"secret": c.password} if c.password else {}), **extra}
    return url, opts
