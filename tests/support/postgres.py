"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, listening on 127.0.0.1.

The project's set-up (scripts/test.sh) installs the server with apt-get when it is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    return versions[-1] if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    database: str

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


def postgres_available() -> bool:
    return _bin_dir() is not None


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a private server (trust auth, loopback only) and stop it afterwards."""
    bindir = _bin_dir()
    if bindir is None:
        msg = "PostgreSQL server binaries not found; run scripts/test.sh (it installs them)"
        raise RuntimeError(msg)
    root = Path(tempfile.mkdtemp(prefix="ap-pg-"))
    data = root / "data"
    user = "postgres"
    env = dict(os.environ)
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: run the server as an unprivileged system user.
        shutil.chown(root, "postgres") if _has_user("postgres") else None
        run_as = ["runuser", "-u", "postgres", "--"] if _has_user("postgres") else []
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", user, "-A", "trust", "--no-sync"],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    port = _free_port()
    log = root / "server.log"
    subprocess.run(
        [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o",
         f"-h 127.0.0.1 -p {port} -k {root} -F", "start"],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield PostgresServer("127.0.0.1", port, user, "postgres")
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True, env=env,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
