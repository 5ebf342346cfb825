"""Throwaway servers for tests: PostgreSQL clusters, Redis servers, black holes, free ports.

Each server runs on a free loopback port in its own temporary directory and is stopped and removed
by ``stop()``. PostgreSQL refuses to run as root, so clusters run as the ``postgres`` user when the
tests run as root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

PG_BIN = Path(
    next(
        (p for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)),
        Path("/usr/bin"),
    )
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def _chown_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


class PostgresCluster:
    """A PostgreSQL cluster made with initdb, listening on 127.0.0.1:<port> with trust auth."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port
        self.log = root / "postgres.log"

    # -- lifecycle

    @classmethod
    def create(
        cls, settings: Mapping[str, str] | None = None, *, name: str = "pg"
    ) -> PostgresCluster:
        root = Path(tempfile.mkdtemp(prefix=f"drwatch-{name}-"))
        root.chmod(0o755)
        _chown_postgres(root)
        cluster = cls(root, free_port())
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(cluster.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]
            ),
            check=True,
            capture_output=True,
        )
        cluster.configure({"fsync": "off", "full_page_writes": "off", **(settings or {})})
        cluster.start()
        return cluster

    def replica(self, *, name: str = "replica") -> PostgresCluster:
        """A streaming replica of this cluster (pg_basebackup -R), started."""
        root = Path(tempfile.mkdtemp(prefix=f"drwatch-{name}-"))
        root.chmod(0o755)
        _chown_postgres(root)
        replica = PostgresCluster(root, free_port())
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_basebackup"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-D",
                    str(replica.data),
                    "-R",
                    "-X",
                    "stream",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        replica.start()
        return replica

    def configure(self, settings: Mapping[str, str]) -> None:
        lines = [f"{key} = '{value}'" for key, value in settings.items()]
        self._append(self.data / "postgresql.auto.conf", lines)

    def prepend_hba(self, *lines: str) -> None:
        hba = self.data / "pg_hba.conf"
        content = hba.read_text()
        self._write(hba, "\n".join(lines) + "\n" + content)

    def _append(self, path: Path, lines: list[str]) -> None:
        current = path.read_text() if path.exists() else ""
        self._write(path, current + "\n".join(lines) + "\n")

    def _write(self, path: Path, text: str) -> None:
        subprocess.run(
            _as_postgres(["tee", str(path)]), input=text.encode(), check=True, capture_output=True
        )

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]),
            check=check,
            capture_output=True,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._ctl("-o", options, "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop", check=False)

    def reload(self) -> None:
        self._ctl("reload")

    def restart(self) -> None:
        self.stop()
        self.start()

    def promote(self) -> None:
        self._ctl("-w", "promote")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- access

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str, user: str = "postgres", password: str | None = None) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql and return its unaligned output."""
        result = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def add_password_user(self, user: str, password: str) -> None:
        """A login role that must authenticate with scram-sha-256 over TCP."""
        self.psql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        self.prepend_hba(f"host all {user} 127.0.0.1/32 scram-sha-256")
        self.reload()


class RedisServer:
    """A redis-server process on 127.0.0.1:<port> that keeps nothing on disk."""

    def __init__(self, port: int, args: list[str], root: Path) -> None:
        self.port = port
        self.args = args
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, *args: str) -> RedisServer:
        root = Path(tempfile.mkdtemp(prefix="drwatch-redis-"))
        server = cls(free_port(), list(args), root)
        server.start()
        return server

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def replica(self, *args: str) -> RedisServer:
        return RedisServer.create("--replicaof", "127.0.0.1", str(self.port), *args)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, check=True
        )
        return result.stdout.strip()


class BlackHole:
    """A TCP port that completes the handshake (kernel backlog) but never reads or answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    try:
        yield hole
    finally:
        hole.close()


def refused_port() -> int:
    """A port nothing listens on: connecting is refused at once."""
    return free_port()


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class ThreadedServer:
    """Runs a blocking ``serve_forever`` server in a daemon thread (for small HTTP fakes)."""

    def __init__(self, server: object) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)  # type: ignore[attr-defined]
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()  # type: ignore[attr-defined]
        self.server.server_close()  # type: ignore[attr-defined]
