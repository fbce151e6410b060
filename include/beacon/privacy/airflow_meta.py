"""Airflow's metadata database: XComs and rendered task fields that Beacon's tasks wrote and that hold a person.

Beacon's tasks return summaries (counts, file names), but a task may push a value that quotes a person (a sync
sample, an error). The rows of `xcom` and `rendered_task_instance_fields` whose value holds one of the person's keys
are deleted, in one transaction. The database is the one Airflow is configured with
(`AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`, else the embedded home's `airflow.db`).
"""

from __future__ import annotations

from pathlib import Path

from beacon.config import Settings
from beacon.privacy.match import Keys

TABLES = ("xcom", "rendered_task_instance_fields")
STORE = "airflow_xcom"


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


def erase_xcoms(s: Settings, keys: Keys, report, url: str | None = None) -> None:
    """Delete the XCom and rendered-field rows that hold a key; an unreachable database is reported unclean."""
    if not keys:
        return
    url = url or metadata_url(s)
    if url is None:
        return  # no Airflow metadata database on this machine: nothing was written
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            meta = sa.MetaData()
            insp = sa.inspect(conn)
            for name in TABLES:
                if not insp.has_table(name):
                    continue
                table = sa.Table(name, meta, autoload_with=conn)
                pk = list(table.primary_key.columns)
                text_cols = [c for c in table.columns if c.name not in {p.name for p in pk}]
                doomed = []
                for row in conn.execute(sa.select(*pk, *text_cols)):
                    values = row._mapping
                    if any(keys.tokens_hit(_value_text(values[c.name])) for c in text_cols):
                        doomed.append({p.name: values[p.name] for p in pk})
                for ident in doomed:
                    conn.execute(sa.delete(table).where(sa.and_(*(table.c[k] == v for k, v in ident.items()))))
                report.add(STORE, name, len(doomed))
        engine.dispose()
    except sa.exc.SQLAlchemyError as exc:
        report.fail(STORE, "airflow metadata database", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
