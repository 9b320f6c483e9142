"""A real PostgreSQL for tests: the machine's own when one answers on 127.0.0.1:5432 (or $VOICEBOT_TEST_POSTGRES),
else a throwaway cluster started here (initdb + pg_ctl on a free loopback port, in a temp dir)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _answers(dsn: str) -> bool:
    import psycopg

    try:
        psycopg.connect(dsn, connect_timeout=2).close()
        return True
    except psycopg.Error:
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (scripts/setup.sh --test installs postgresql)")
    return found


class Cluster:
    """A PostgreSQL cluster of our own in a temp dir (runs as the postgres user when we are root)."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="vb-pg-"))
        self.port = _free_port()
        self.data = self.directory / "data"
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            shutil.chown(self.directory, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*self._as_user, pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                        "--no-sync"], check=True, capture_output=True, timeout=120)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        subprocess.run([*self._as_user, pg_bin("pg_ctl"), "-D", str(self.data), "-w", "-t", "60", "-l",
                        str(self.directory / "log"), "-o", f"-p {self.port} -h 127.0.0.1 -k {self.directory}",
                        "start"], check=True, capture_output=True, timeout=90)

    def stop(self) -> None:
        subprocess.run([*self._as_user, pg_bin("pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "stop"],
                       check=False, capture_output=True, timeout=90)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def server_dsn() -> Iterator[str]:
    """The DSN of a PostgreSQL server to create test databases on."""
    dsn = os.environ.get("VOICEBOT_TEST_POSTGRES", DEFAULT_DSN)
    if _answers(dsn):
        yield dsn
        return
    cluster = Cluster()
    cluster.start()
    try:
        yield cluster.dsn
    finally:
        cluster.remove()


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """A new empty database on `server` for one test; dropped afterwards."""
    import psycopg

    name = f"vb_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        deadline = time.monotonic() + 10
        with psycopg.connect(server, autocommit=True) as admin:
            while True:
                try:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    break
                except psycopg.Error:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
