"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` into a temporary directory,
listening on 127.0.0.1 only, run as an unprivileged user (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN_DIRS = [
    Path("/usr/lib/postgresql/15/bin"),
    *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True),
]


def find_pg_bin() -> Path | None:
    for directory in PG_BIN_DIRS:
        if (directory / "initdb").exists() and (directory / "postgres").exists():
            return directory
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TemporaryPostgres:
    """``with TemporaryPostgres() as pg: pg.create_database("x")`` -> a ``postgresql://`` URL."""

    def __init__(self, fsync: bool = False):
        self.bin = find_pg_bin()
        if self.bin is None:
            raise FileNotFoundError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.fsync = fsync
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def _as_user(self) -> dict:
        """Popen arguments that drop root for the server (the process we signal is postgres itself)."""
        if os.geteuid() != 0:
            return {}
        owner = pwd.getpwnam("postgres" if _user_exists("postgres") else "nobody")
        os.chmod(self.root, 0o700)
        os.chown(self.root, owner.pw_uid, owner.pw_gid)
        return {
            "user": owner.pw_uid,
            "group": owner.pw_gid,
            "extra_groups": [],
            "env": {**os.environ, "HOME": str(self.root)},
        }

    def start(self) -> TemporaryPostgres:
        self.root = Path(tempfile.mkdtemp(prefix="penchant-pg-"))
        as_user = self._as_user()
        data = self.root / "data"
        subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(data),
                "-U",
                "penchant",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            cwd=self.root,
            **as_user,
        )
        args = [
            str(self.bin / "postgres"),
            "-D",
            str(data),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            str(self.root),
            "-c",
            "max_connections=200",
        ]
        if not self.fsync:
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=self.root, **as_user
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with status {self.process.returncode}")
            try:
                import psycopg

                psycopg.connect(self.url("postgres"), connect_timeout=1).close()
                return self
            except Exception:
                time.sleep(0.1)
        raise TimeoutError("postgres did not start within 30 s")

    def url(self, database: str) -> str:
        return f"postgresql://penchant@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # "Immediate" shutdown of the server we started, by its pid: its data is thrown away next,
            # so there is no point in a shutdown checkpoint.
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
