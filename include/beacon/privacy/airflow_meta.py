"""Airflow's metadata database: what Beacon's tasks (and the people who ran them) left there about a person.

Beacon's tasks return summaries (counts, file names), but a task may push a value that quotes a person (a sync
sample, an error), a run may be triggered with a `conf` naming one (`airflow dags trigger --conf`), and Airflow's own
audit table `log` keeps the command line of CLI calls in `extra`. The erasure reads every table of the metadata
database (found by reflection, not a hand-kept list) but the ones in `NOT_SCANNED` (Airflow's code, schema and
credentials), and for every row in which a text, JSON or binary column holds one of the person's keys
(`beacon.privacy.match`):

- `DELETE_ROWS` (values tasks pushed: XComs, rendered task fields, task and asset state stores): the row is deleted;
- any other table (the audit `log`, `dag_run.conf`, notes, `task_instance.next_kwargs`, asset event extras, …): the
  columns that hold the key are redacted (NULL, or `{"erased": true}` / `erased` where the column refuses NULL), the
  row stays (Airflow's history of runs and who did what stays whole);
- a key in a column that identifies the row (a primary key, e.g. a run id made from a person's id) or in a table with
  no primary key cannot be redacted safely: it is listed in the report's `unclean` with the reason.

All of it in one transaction. The database is the one Airflow is configured with (`AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`,
else the embedded home's `airflow.db`); an unreachable database is reported unclean.
"""

from __future__ import annotations

from pathlib import Path

from beacon.config import Settings
from beacon.privacy.match import Keys

DELETE_ROWS = ("xcom", "rendered_task_instance_fields", "task_state_store", "asset_state_store")
# Not scanned: Airflow's schema version, the DAGs' code and serialized form (written from the DAG files, not by a
# task), credentials (connections, web sessions, revoked tokens), and the web UI's own users (FAB `ab_*` tables:
# Beacon's operators, not the people Beacon markets to).
NOT_SCANNED = ("alembic_version", "serialized_dag", "dag_code", "connection", "session", "revoked_token")
NOT_SCANNED_PREFIXES = ("ab_",)
STORE = "airflow_xcom"  # rows deleted (DELETE_ROWS)
REDACTED_STORE = "airflow_metadata"  # columns redacted in rows kept (place: "<table>.<column>")


def metadata_url(s: Settings) -> str | None:
    """The metadata database's SQLAlchemy URL, or None when there is none to clean."""
    url = s.airflow_metadata_url
    if url:
        return url
    db = Path(s.airflow_home or s.home / ".airflow") / "airflow.db"
    return f"sqlite:///{db}" if db.exists() else None


def _value_text(v) -> str:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("utf-8", errors="replace")
    return "" if v is None else str(v)


def _scanned_tables(insp) -> list[str]:
    return sorted(t for t in insp.get_table_names()
                  if t not in NOT_SCANNED and not t.startswith(NOT_SCANNED_PREFIXES))


def _text_columns(table) -> list:
    """Columns that can hold text: strings, JSON, binary (pickled or serialized values)."""
    import sqlalchemy as sa

    kinds = (sa.String, sa.Text, sa.JSON, sa.LargeBinary, sa.types.BLOB, sa.types.NullType)
    return [c for c in table.columns if isinstance(c.type, kinds)]


def _key_columns(table) -> set[str]:
    """Columns that identify a row or link rows (primary key, unique constraints and indexes, foreign keys): a value
    there cannot be changed without breaking Airflow's links (a run id names its task instances)."""
    import sqlalchemy as sa

    keys = {c.name for c in table.primary_key.columns} | {c.name for c in table.columns if c.foreign_keys}
    keys |= {c.name for k in table.constraints if isinstance(k, sa.UniqueConstraint) for c in k.columns}
    keys |= {c.name for i in table.indexes if i.unique for c in i.columns}
    return keys


def _redacted(col):
    """What a redacted column holds: NULL where allowed, else a marker of the column's type."""
    import sqlalchemy as sa

    if col.nullable:
        return sa.null()  # SQL NULL (a JSON column would store None as the JSON text 'null')
    if isinstance(col.type, sa.JSON):
        return {"erased": True}
    if isinstance(col.type, (sa.LargeBinary, sa.types.BLOB)):
        return b"erased"
    return "erased"


def _clean_table(conn, table, keys: Keys, report) -> None:
    """Delete (DELETE_ROWS) or redact the rows of one table that hold a key; unclean what cannot be redacted."""
    import sqlalchemy as sa

    pk = list(table.primary_key.columns)
    cols = _text_columns(table)
    if not cols:
        return
    pk_names = _key_columns(table)
    doomed, redact, unclean = [], [], set()
    for row in conn.execute(sa.select(*{c.name: c for c in (*pk, *cols)}.values())):
        values = row._mapping
        hit = [c for c in cols if keys.tokens_hit(_value_text(values[c.name]))]
        if not hit:
            continue
        ident = {p.name: values[p.name] for p in pk}
        if not pk:
            unclean.add("the table has no primary key to change one row by")
        elif table.name in DELETE_ROWS:
            doomed.append(ident)
        elif any(c.name in pk_names for c in hit):
            unclean.add(f"the value is in a key column ({', '.join(c.name for c in hit if c.name in pk_names)}): "
                        "delete the run or record with Airflow's own commands")
        else:
            redact.append((ident, hit))
    by_pk = lambda ident: sa.and_(*(table.c[k] == v for k, v in ident.items()))  # noqa: E731
    for ident in doomed:
        conn.execute(sa.delete(table).where(by_pk(ident)))
    report.add(STORE, table.name, len(doomed))
    for ident, hit in redact:
        conn.execute(sa.update(table).where(by_pk(ident)).values({c.name: _redacted(c) for c in hit}))
        for c in hit:
            report.add(REDACTED_STORE, f"{table.name}.{c.name}", 1)
    for reason in sorted(unclean):
        report.fail(REDACTED_STORE, f"airflow metadata table {table.name}", reason)


def erase_airflow_metadata(s: Settings | None, keys: Keys, report, url: str | None = None) -> None:
    """Clean every scanned table of Airflow's metadata database of the keys (module doc), in one transaction."""
    if not keys:
        return
    url = url or (metadata_url(s) if s is not None else None)
    if url is None:
        return  # no Airflow metadata database on this machine: nothing was written
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                meta = sa.MetaData()
                for name in _scanned_tables(sa.inspect(conn)):
                    _clean_table(conn, sa.Table(name, meta, autoload_with=conn), keys, report)
        finally:
            engine.dispose()
    except sa.exc.SQLAlchemyError as exc:
        report.fail(STORE, "airflow metadata database", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")


# The erasure's name for it (XComs were the first table it cleaned).
erase_xcoms = erase_airflow_metadata
