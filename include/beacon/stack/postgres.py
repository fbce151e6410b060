"""The stack's Postgres: Debian's binaries, one cluster in the stack folder, listening on 127.0.0.1 only.

Postgres refuses to run as root: as root, its tools run as the `postgres` system user, which must be able
to walk down to the data folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from beacon.config import Settings
from beacon.stack.env import stack_secrets
from beacon.stack.layout import Paths, StackError, log_tail, read_state, save_state, write_private
from beacon.stack.processes import free_port, port_free


def pg_bin(tool: str) -> str:
    """A Postgres server binary: Debian keeps them in /usr/lib/postgresql/<version>/bin (newest first)."""
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda x: int(x.parent.name)
                    if x.parent.name.isdigit() else 0, reverse=True):
        if (d / tool).exists():
            return str(d / tool)
    found = shutil.which(tool)
    if not found:
        raise StackError(f"`{tool}` not found: install Debian's postgresql package (apt-get install postgresql)")
    return found


def _as_pg_user(cmd: list[str]) -> list[str]:
    """Postgres refuses to run as root: as root, run its tools as the `postgres` system user."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def _check_reachable_by_pg(path: Path) -> None:
    """As root, Postgres runs as `postgres`, which must be able to walk down to its data folder."""
    if os.geteuid() != 0:
        return
    for d in [path, *path.parents]:
        if d.exists() and not d.stat().st_mode & 0o001:
            raise StackError(f"the postgres user cannot enter {d} (mode {oct(d.stat().st_mode & 0o777)}), on the way "
                             f"to {path}: choose a BEACON_STACK_DIR under folders others may enter (chmod o+x)")


def _chown_pg(path: Path) -> None:
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


def pg_running(p: Paths) -> bool:
    if not (p.pg_data / "PG_VERSION").exists():
        return False
    res = subprocess.run(_as_pg_user([pg_bin("pg_ctl"), "-D", str(p.pg_data), "status"]),
                         capture_output=True, text=True)
    return res.returncode == 0


def _init_cluster(p: Paths, db_password: str, say: Callable[[str], None]) -> None:
    """initdb once, with the generated password for the `airflow` superuser (never on a command line)."""
    say(f"initialising a Postgres cluster in {p.pg_data}")
    _check_reachable_by_pg(p.root)
    p.pg_data.mkdir(parents=True, exist_ok=True)
    p.pg_data.chmod(0o700)
    _chown_pg(p.pg_data)
    pwfile = p.root / "postgres" / ".pw"
    write_private(pwfile, db_password + "\n")
    _chown_pg(pwfile)
    try:
        res = subprocess.run(_as_pg_user([pg_bin("initdb"), "-D", str(p.pg_data), "-U", "airflow",
                                          f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8",
                                          "--locale=C"]), capture_output=True, text=True)
    finally:
        pwfile.unlink(missing_ok=True)
    if res.returncode != 0:
        raise StackError(f"initdb failed:\n{res.stdout[-1500:]}{res.stderr[-1500:]}")


def _ensure_database(port: int, db_password: str) -> None:
    import psycopg2

    con = psycopg2.connect(host="127.0.0.1", port=port, user="airflow", password=db_password, dbname="postgres")
    con.autocommit = True
    try:
        with con.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = 'airflow'")
            if cur.fetchone() is None:
                cur.execute("CREATE DATABASE airflow")
    finally:
        con.close()


def start_postgres(s: Settings, p: Paths, say: Callable[[str], None]) -> int:
    """Initialise the cluster once, start it on 127.0.0.1 (its port kept in stack.json), create the database."""
    sec = stack_secrets(p)
    st = read_state(p)
    if not (p.pg_data / "PG_VERSION").exists():
        _init_cluster(p, sec["db_password"], say)
    p.pg_socket_dir.mkdir(parents=True, exist_ok=True)
    _chown_pg(p.pg_socket_dir)
    p.logs.mkdir(parents=True, exist_ok=True)
    log = p.log("postgres")
    if not log.exists():
        log.touch()
    _chown_pg(log)
    if pg_running(p):
        port = int(st["pg_port"])
        say(f"Postgres already running on 127.0.0.1:{port}")
    else:
        port = int(st.get("pg_port") or 0)
        if not port or not port_free(port):
            port = free_port()
        save_state(p, pg_port=port)
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {p.pg_socket_dir}"
        res = subprocess.run(_as_pg_user([pg_bin("pg_ctl"), "-D", str(p.pg_data), "-l", str(log), "-o", opts,
                                          "-w", "-t", "60", "start"]), capture_output=True, text=True)
        if res.returncode != 0:
            raise StackError(f"Postgres did not start on 127.0.0.1:{port}:\n{log_tail(log)}")
        say(f"Postgres started on 127.0.0.1:{port}")
    _ensure_database(port, sec["db_password"])
    return port


def stop_postgres(p: Paths) -> bool:
    if not pg_running(p):
        return False
    subprocess.run(_as_pg_user([pg_bin("pg_ctl"), "-D", str(p.pg_data), "-m", "fast", "-w", "-t", "60", "stop"]),
                   capture_output=True, text=True)
    return True
