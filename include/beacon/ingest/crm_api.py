"""CRM REST API connector: contacts and companies, paged, incremental on `updated_since`, into the raw CRM tables.

The API contract (a typical CRM list endpoint): `GET <base>/<resource>?updated_since=<iso>&page=<n>&per_page=<m>`
with `Authorization: Bearer <token>`, answering `{"data": [...], "next_page": n + 1 | null}` ordered by
`updated_at`. The base URL and token come from an Airflow connection (never from code or config).
Retries with exponential backoff on 429 and 5xx honour `Retry-After` (urllib3's Retry does this).
Each page is one unit of the load engine (ledger by content hash, quarantine, one transaction). A page
that is not valid JSON is quarantined whole with its location; the cursor then stays where it was so
the next run fetches that interval again (pages already loaded are skipped by their hash).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

import duckdb
import pyarrow as pa
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from beacon.ingest.core import (
    Batches,
    FileLoad,
    LoadSummary,
    SourceSpec,
    ensure_raw_schema,
    json_depth_exceeds,
    load_specs,
    load_unit,
    safe_text,
)
from beacon.warehouse import connect

RESOURCES = {"contacts": "crm_contacts", "companies": "crm_companies"}
CONN_ID = "beacon_crm_api"
CURSOR_FIELD = "updated_at"  # what the API filters `updated_since` on
MAX_BAD_PAGES_IN_A_ROW = 3


class ApiError(RuntimeError):
    """The API could not be read (retries exhausted, authentication refused): the run fails loudly."""


@dataclass(frozen=True)
class ApiConfig:
    """Where the CRM API is and how to call it; the token comes from the Airflow connection."""

    base_url: str
    token: str
    per_page: int = 100
    retries: int = 5
    backoff: float = 0.5  # seconds; doubles per retry (Retry-After wins when the server sends it)
    timeout: float = 30.0
    invalid_json_refetches: int = 1

    def __repr__(self) -> str:  # never print the token
        return f"ApiConfig(base_url={self.base_url!r}, per_page={self.per_page})"


def config_from_connection(conn_id: str = CONN_ID) -> ApiConfig:
    """Read the API's base URL (host, with schema/port) and bearer token (password) from an Airflow connection."""
    from airflow.sdk import BaseHook  # only where a connection is really read

    c = BaseHook.get_connection(conn_id)
    host = c.host or ""
    if "://" not in host:
        host = f"{c.schema or 'https'}://{host}" + (f":{c.port}" if c.port else "")
    extra = c.extra_dejson or {}
    return ApiConfig(base_url=host.rstrip("/"), token=c.password or "", per_page=int(extra.get("per_page", 100)),
                     retries=int(extra.get("retries", 5)), backoff=float(extra.get("backoff", 0.5)))


def session(cfg: ApiConfig) -> requests.Session:
    """A session that retries 429/5xx with exponential backoff, honouring Retry-After."""
    s = requests.Session()
    retry = Retry(total=cfg.retries, backoff_factor=cfg.backoff, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=("GET",), respect_retry_after_header=True, raise_on_status=False)
    s.mount("http://", HTTPAdapter(max_retries=retry))
    s.mount("https://", HTTPAdapter(max_retries=retry))
    s.headers["Authorization"] = f"Bearer {cfg.token}"
    s.headers["Accept"] = "application/json"
    return s


@dataclass
class ApiRun:
    """What one incremental run of one resource did."""

    resource: str
    cursor_before: str | None
    cursor_after: str | None
    pages: int = 0
    overlap_skipped: int = 0  # records at the previous cursor already loaded last time
    loads: list[FileLoad] = field(default_factory=list)


def _text(v) -> str | None:
    """A JSON value as text: scalars as is, nested objects and arrays as JSON (typed columns then reject them)."""
    if v is None:
        return None
    if isinstance(v, dict | list):
        return json.dumps(v, sort_keys=True)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def records_batches(spec: SourceSpec, records: list) -> Batches:
    """One page of records as a text batch; a record that is not an object is marked malformed."""
    names = [c.name for c in spec.columns]
    extras = sorted({k for r in records if isinstance(r, dict) for k in r} - set(names))
    cols: dict[str, list] = {n: [] for n in [*names, *extras]}
    malformed, payloads = [], []
    for r in records:
        ok = isinstance(r, dict)
        malformed.append(None if ok else f"record is a {type(r).__name__}, not an object")
        payloads.append(None if ok else json.dumps(r))
        for n in cols:
            cols[n].append(_text(r.get(n)) if ok else None)

    def batches() -> Iterator[pa.Table]:
        yield pa.table({"_line": pa.array(range(1, len(records) + 1), pa.int64()),
                        "_malformed": pa.array(malformed, pa.string()), "_payload": pa.array(payloads, pa.string()),
                        **{n: pa.array(v, pa.string()) for n, v in cols.items()}})

    return Batches("text", extras, batches())


def _get_cursor(con: duckdb.DuckDBPyConnection, key: str) -> dict:
    row = con.execute("SELECT cursor FROM raw._cursors WHERE source = ?", [key]).fetchall()
    return json.loads(row[0][0]) if row else {}


def _set_cursor(con: duckdb.DuckDBPyConnection, key: str, state: dict) -> None:
    con.execute("INSERT OR REPLACE INTO raw._cursors VALUES (?, ?, ?)",
                [key, json.dumps(state), datetime.now().replace(microsecond=0)])


def _quarantine_page(con, spec: SourceSpec, location: str, body: bytes, error: str, batch_id: str, sha: str) -> None:
    """A page that is not JSON: keep its body in the quarantine and a failed ledger row, so nothing is lost."""
    now = datetime.now().replace(microsecond=0)
    text = body.decode("utf-8", "backslashreplace")
    con.execute("INSERT INTO raw._quarantine VALUES (?, ?, 0, 'invalid_page', ?, ?, ?, ?)",
                [spec.name, location, safe_text(error), text, batch_id, now])
    con.execute("""INSERT INTO raw._load_ledger (batch_id, source, file, file_sha256, file_bytes, rows_read,
                   rows_loaded, rows_quarantined, status, error, loaded_at, reason)
                   VALUES (?, ?, ?, ?, ?, 0, 0, 0, 'failed', ?, ?, 'invalid_page')""",
                [batch_id, spec.name, location, sha, len(body), safe_text(error), now])


def load_resource(con: duckdb.DuckDBPyConnection, cfg: ApiConfig, resource: str, spec: SourceSpec,
                  max_event_time: datetime, http: requests.Session | None = None) -> ApiRun:
    """Fetch every page of one resource updated since the stored cursor and load it; advance the cursor on success."""
    http = http or session(cfg)
    key = f"crm_api:{resource}"
    state = _get_cursor(con, key)
    since, boundary = state.get("updated_since"), set(state.get("boundary_keys", []))
    run = ApiRun(resource=resource, cursor_before=since, cursor_after=since)
    et = CURSOR_FIELD
    newest, newest_keys, all_ok, page, bad_in_a_row = since, set(boundary), True, 1, 0
    while page:
        params = {"page": page, "per_page": cfg.per_page, **({"updated_since": since} if since else {})}
        url = f"{cfg.base_url}/{resource}?{urlencode(params)}"
        doc, body = None, b""
        for _ in range(cfg.invalid_json_refetches + 1):
            try:
                resp = http.get(f"{cfg.base_url}/{resource}", params=params, timeout=cfg.timeout)
            except requests.RequestException as exc:
                raise ApiError(f"{url}: {type(exc).__name__} after {cfg.retries} retries: {exc}") from exc
            if resp.status_code in (401, 403):
                raise ApiError(f"{url}: HTTP {resp.status_code} (check the bearer token of connection {CONN_ID})")
            if resp.status_code >= 400:
                raise ApiError(f"{url}: HTTP {resp.status_code} after {cfg.retries} retries: {resp.text[:200]}")
            body = resp.content
            if json_depth_exceeds(body, spec.limits.max_json_depth):  # checked before json.loads recurses
                err = f"{url}: page nests deeper than max_json_depth {spec.limits.max_json_depth}"
                break
            try:
                doc = json.loads(body)
                break
            except (ValueError, RecursionError) as exc:
                err = f"{url}: page is not valid JSON ({exc})"
        run.pages += 1
        sha = hashlib.sha256(body).hexdigest()
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            if doc is not None:
                err = f"{url}: page has no 'data' list"
            _quarantine_page(con, spec, url, body, err, f"{spec.name}:api:{sha[:12]}", sha)
            run.loads.append(FileLoad(source=spec.name, file=url, status="failed", reason="invalid_page", sha256=sha,
                                      error=safe_text(err)))
            all_ok = False
            bad_in_a_row += 1
            if bad_in_a_row >= MAX_BAD_PAGES_IN_A_ROW:  # the API is broken, not one page: stop, retry next run
                break
            page += 1  # page numbers let us go on past a bad page; the cursor will not move past it
            continue
        bad_in_a_row = 0
        records = doc["data"]
        keep = []
        for r in records:  # the inclusive cursor re-sends the last run's boundary records: skip those
            if isinstance(r, dict) and since and r.get(et) == since and _rkey(spec, r) in boundary:
                run.overlap_skipped += 1
                continue
            keep.append(r)
            if isinstance(r, dict) and isinstance(r.get(et), str):
                if newest is None or r[et] > newest:
                    newest, newest_keys = r[et], {_rkey(spec, r)}
                elif r[et] == newest:
                    newest_keys.add(_rkey(spec, r))
        if keep:
            fl = load_unit(con, spec, location=url, sha=sha, size=len(body),
                           open_batches=lambda keep=keep: records_batches(spec, keep), max_event_time=max_event_time,
                           origin="crm_api", batch_label="api")
            run.loads.append(fl)
            all_ok = all_ok and fl.status != "failed"
        page = doc.get("next_page")
    if all_ok and newest != since:
        _set_cursor(con, key, {"updated_since": newest, "boundary_keys": sorted(newest_keys)})
        run.cursor_after = newest
    return run


def _rkey(spec: SourceSpec, r: dict) -> str:
    return "|".join(str(r.get(k)) for k in spec.key)


def load_crm_api(cfg: ApiConfig, max_event_time: datetime, warehouse=None,
                 resources: dict[str, str] | None = None) -> tuple[LoadSummary, list[ApiRun]]:
    """Load contacts and companies incrementally from the CRM API into raw.crm_contacts / raw.crm_companies."""
    specs = load_specs()
    runs = []
    with connect(warehouse) as con:
        ensure_raw_schema(con, specs)
        http = session(cfg)
        for resource, table in (resources or RESOURCES).items():
            runs.append(load_resource(con, cfg, resource, specs[table], max_event_time, http))
    return LoadSummary([fl for r in runs for fl in r.loads]), runs


def load_crm_api_if_configured(until, conn_id: str = CONN_ID) -> dict:
    """The ingest DAG's CRM step: load when the Airflow connection exists, else say why nothing was done."""
    from datetime import date as _date
    from datetime import timedelta

    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        cfg = config_from_connection(conn_id)
    except AirflowNotFoundException:
        return {"skipped": f"connection {conn_id} is not defined"}
    day = until if isinstance(until, _date) else _date.fromisoformat(str(until))
    summary, runs = load_crm_api(cfg, datetime.combine(day, datetime.min.time()) + timedelta(days=2))
    return {**summary.totals(), "reasons": summary.reasons(),
            "cursors": {r.resource: r.cursor_after for r in runs}, "pages": {r.resource: r.pages for r in runs}}
