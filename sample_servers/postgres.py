"""A throwaway PostgreSQL server on 127.0.0.1 for the tests and the benchmarks of the PostgreSQL store.

    from sample_servers.postgres import start_postgres

    with start_postgres() as server:
        name = server.create_database()        # owned by the ordinary role "switchboard"
        url = server.url(name)                 # postgresql://switchboard:…@127.0.0.1:PORT/NAME

The binaries come from Debian's `postgresql` package (`./dev test` and `.ci/run` install it). The
cluster is made by `initdb` in a temporary directory and started by `pg_ctl` on an ephemeral port
(as the `postgres` user when running as root, since PostgreSQL refuses to run as root), with
durability settings off (fsync: the tests kill clients, never the server); it is removed on exit.
The store logs in as `switchboard`, an ordinary role (not a superuser) with a password that owns
each database — as a team would deploy it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STORE_ROLE = "switchboard"


@dataclass
class PostgresServer:
    host: str
    port: int
    superuser_password: str
    role_password: str

    def url(self, database: str, *, user: str = STORE_ROLE, password: str | None = None) -> str:
        password = self.role_password if password is None else password
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{database}"

    def admin(self, database: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(
            self.url(database, user="postgres", password=self.superuser_password), autocommit=True
        )

    def create_database(self, template: str = "template0") -> str:
        """A new database owned by the store's role (a copy of `template`); returns its name."""
        name = "t_" + secrets.token_hex(6)
        with self.admin() as con:
            con.execute(f"CREATE DATABASE {name} OWNER {STORE_ROLE} TEMPLATE {template} STRATEGY FILE_COPY")
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (./dev test does it)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def start_postgres() -> Iterator[PostgresServer]:
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="switchboard-pg-"))
    data, log = root / "data", root / "server.log"
    superuser_password, role_password = secrets.token_hex(12), secrets.token_hex(12)
    (root / "pw").write_text(superuser_password)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(root / "pw", "postgres", "postgres")
    subprocess.run(
        _as_server_user(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256"]
            + ["--pwfile", str(root / "pw"), "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]
        ),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = (
        f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    )
    subprocess.run(
        _as_server_user(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]
        ),
        check=True,
        capture_output=True,
    )
    server = PostgresServer("127.0.0.1", port, superuser_password, role_password)
    try:
        with server.admin() as con:
            con.execute(f"CREATE ROLE {STORE_ROLE} LOGIN CREATEROLE CREATEDB PASSWORD '{role_password}'")
        yield server
    finally:
        subprocess.run(
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)
