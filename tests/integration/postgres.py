"""A real PostgreSQL server for tests: a throw-away cluster in the test's temp dir.

Debian's ``postgresql`` package provides the binaries (``/usr/lib/postgresql/<v>/bin``).
The cluster listens on 127.0.0.1 on a free port and on a unix socket in its own
directory; it is started with ``pg_ctl -w`` (which returns once the server accepts
connections) and stopped with ``-m immediate`` (nothing in it is worth a checkpoint).
PostgreSQL refuses to run as root, so as root the commands run as the ``postgres``
user the package creates, and the directories on the way get the traverse bit.

Use :func:`postgres_server` as a context manager, or the ``postgres`` fixture in a
conftest. Each server has a database and a password-protected role for the test::

    with postgres_server(tmp_path) as pg:
        url = pg.url("optuna")   # postgresql://tester:...@127.0.0.1:PORT/optuna
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port, need

USER = "tester"


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    root = Path("/usr/lib/postgresql")
    found = sorted(
        (p / "bin" for p in root.glob("*") if (p / "bin" / "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _open_path_for_server(folder: Path) -> None:
    """As root: let the postgres user traverse to ``folder`` and own it (tmp dirs are 0700)."""
    if os.geteuid() != 0:
        return
    import pwd

    account = pwd.getpwnam("postgres")
    os.chown(folder, account.pw_uid, account.pw_gid)
    for parent in folder.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)  # traverse only: nothing becomes listable


@dataclass
class PostgresServer:
    bin: Path
    root: Path
    port: int
    password: str

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def url(self, database: str, with_password: bool = True) -> str:
        secret = f":{self.password}" if with_password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the unix socket; return psql's unaligned output."""
        command = [
            str(self.bin / "psql"),
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]
        done = subprocess.run(_as_server_user(command), capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}" OWNER {USER}')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            _as_server_user(
                [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]
            ),
            capture_output=True,
            timeout=60,
        )


def _start(bin_dir: Path, root: Path) -> PostgresServer:
    password = secrets.token_hex(12)
    server = PostgresServer(bin_dir, root, 0, password)
    server.socket_dir.mkdir()
    _open_path_for_server(root)
    _open_path_for_server(server.socket_dir)
    # The superuser connects over the socket without a password; TCP needs one (scram).
    init = _as_server_user(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(server.data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        ]
    )
    done = subprocess.run(init, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stderr.strip()}")
    log = root / "server.log"
    if os.geteuid() == 0:
        log.touch()
        _open_path_for_server(log)
    # PostgreSQL cannot bind port 0 and report it: take a free port, retry if it is gone.
    for _ in range(5):
        server.port = free_port()
        options = f"-k {server.socket_dir} -p {server.port} -h 127.0.0.1 -c fsync=off"
        start = _as_server_user(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(server.data),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ]
        )
        if subprocess.run(start, capture_output=True, timeout=90).returncode == 0:
            break
    else:
        raise RuntimeError(f"PostgreSQL did not start: {log.read_text()[-2000:]}")
    try:
        server.psql(f"CREATE ROLE {USER} LOGIN PASSWORD '{password}'")
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def postgres_server(folder: Path) -> Iterator[PostgresServer]:
    """A running server with role ``tester``; needs Debian's postgresql package."""
    bin_dir = binaries()
    need(bin_dir is not None, "PostgreSQL is not installed (Debian package postgresql)")
    need(os.geteuid() != 0 or shutil.which("runuser") is not None, "runuser is missing")
    assert bin_dir is not None
    root = folder / "pg"
    if len(str(root / "sock" / ".s.PGSQL.65535")) > 100:
        # A unix socket path has a 107-byte limit: a deep temp dir gets a short sibling.
        root = Path(tempfile.mkdtemp(prefix="pg-"))
    root.mkdir(parents=True, exist_ok=True)
    server = _start(bin_dir, root)
    try:
        yield server
    finally:
        server.stop()
