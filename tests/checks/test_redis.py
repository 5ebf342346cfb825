"""The redis check against real redis-server primaries and replicas."""

from __future__ import annotations

import contextlib
import gc
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.checks.base import Check, Status
from app.checks.redis import RedisCheck
from app.config import parse_config
from app.errors import ConfigError
from app.runner import run_check
from tests.polling import eventually, wait_until
from tests.servers import RedisServer, black_hole, free_port, refused_port

# Redis waits 5 s by default before a diskless full sync, in case more replicas arrive.
FAST_SYNC = ("--repl-diskless-sync-delay", "0")


def replication_info(server: RedisServer) -> dict[str, str]:
    lines = server.cli("INFO", "replication").splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


@pytest.fixture(scope="module")
def primary() -> Iterator[RedisServer]:
    server = RedisServer.create(*FAST_SYNC)
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def replica(primary: RedisServer) -> Iterator[RedisServer]:
    server = primary.replica()
    wait_until(lambda: replication_info(server).get("master_link_status") == "up")
    yield server
    server.destroy()


def build(params: dict[str, Any], *, timeout: str = "5s") -> Check[Any]:
    """A check built the way drwatch builds it: from a config document."""
    config = parse_config(
        {"checks": [{"name": "cache", "type": "redis", "timeout": timeout, "params": params}]}
    )
    return config.checks[0].build()


def connected_clients(server: RedisServer) -> int:
    """Clients connected to the server, not counting the redis-cli asking."""
    info = dict(
        line.split(":", 1) for line in server.cli("INFO", "clients").splitlines() if ":" in line
    )
    return int(info["connected_clients"]) - 1


@contextlib.contextmanager
def unclosed_resource_warnings() -> Iterator[list[str]]:
    """Collects "unclosed ..." warnings: a client or socket left to the garbage collector."""
    unclosed: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield unclosed
    unclosed.extend(str(w.message) for w in caught if "nclosed" in str(w.message))


async def test_it_passes_on_a_healthy_primary(primary: RedisServer, replica: RedisServer) -> None:
    """A primary that answers PING passes and reports role, memory and replicas."""
    result = await run_check(build({"url": primary.url, "expect_role": "primary"}))

    assert result.status is Status.PASS, result.output
    assert result.observed_unit == "s"
    assert result.observed_value is not None and result.observed_value > 0
    assert result.details["role"] == "primary"
    assert result.details["connected_slaves"] == 1
    assert result.details["used_memory_bytes"] > 0
    assert result.details["maxmemory_bytes"] == 0
    assert f"127.0.0.1:{primary.port}/0" in result.output


async def test_it_passes_on_a_replica_linked_to_its_primary(
    primary: RedisServer, replica: RedisServer
) -> None:
    """A replica whose link to the primary is up passes expect_role: replica."""
    result = await run_check(build({"url": replica.url, "expect_role": "replica"}))

    assert result.status is Status.PASS, result.output
    assert result.details["role"] == "replica"
    assert result.details["master_link_status"] == "up"
    assert result.details["master"] == f"127.0.0.1:{primary.port}"


async def test_it_fails_when_the_primary_is_expected_to_be_a_replica(primary: RedisServer) -> None:
    """A primary fails expect_role: replica, suggesting a promotion."""
    result = await run_check(build({"url": primary.url, "expect_role": "replica"}))

    assert result.status is Status.FAIL
    assert "replica was expected" in result.output
    assert "promoted" in result.output


async def test_it_fails_when_a_replica_is_expected_to_be_the_primary(
    primary: RedisServer, replica: RedisServer
) -> None:
    """A replica fails expect_role: primary, naming the primary it follows."""
    result = await run_check(build({"url": replica.url, "expect_role": "primary"}))

    assert result.status is Status.FAIL
    assert f"replica of 127.0.0.1:{primary.port} but a primary was expected" in result.output


async def test_it_fails_when_the_replica_lost_its_primary() -> None:
    """A replica whose primary went away fails on master_link_status, naming the primary."""
    lost = RedisServer.create(*FAST_SYNC)
    orphan = lost.replica()
    try:
        wait_until(lambda: replication_info(orphan).get("master_link_status") == "up")
        check = build({"url": orphan.url})
        assert (await run_check(check)).status is Status.PASS

        lost.stop()
        await eventually(lambda: replication_info(orphan).get("master_link_status") == "down")
        result = await run_check(check)
    finally:
        orphan.destroy()
        lost.destroy()

    assert result.status is Status.FAIL
    assert "lost its primary" in result.output
    assert f"127.0.0.1:{lost.port}" in result.output
    assert "master_last_io_seconds_ago" in result.output
    assert result.details["master_link_status"] == "down"


async def test_it_reports_a_wrong_password_as_permanent_without_revealing_it() -> None:
    """AUTH failures cannot be fixed by retrying, and the password appears nowhere."""
    server = RedisServer.create("--requirepass", "right-redis-pass-8812")
    wrong = "wrong-redis-pass-3390"
    try:
        # Built directly, so no secret is registered for scrubbing: the check must not leak.
        def check(url: str) -> RedisCheck:
            return RedisCheck("cache", RedisCheck.Params(url=url), timeout=5)

        rejected = await run_check(check(f"redis://:{wrong}@127.0.0.1:{server.port}/0"))
        anonymous = await run_check(check(f"redis://127.0.0.1:{server.port}/0"))
        accepted = await run_check(
            check(f"redis://default:right-redis-pass-8812@127.0.0.1:{server.port}/0")
        )
    finally:
        server.destroy()

    assert rejected.status is Status.FAIL
    assert rejected.permanent
    assert "rejected the credentials" in rejected.output
    assert wrong not in repr(rejected.as_dict())
    assert anonymous.status is Status.FAIL
    assert anonymous.permanent
    assert "requires a password but the URL has none" in anonymous.output
    assert accepted.status is Status.PASS, accepted.output
    assert "right-redis-pass-8812" not in repr(accepted.as_dict())


async def test_it_fails_at_once_when_the_connection_is_refused() -> None:
    """Nothing listening on the port: a clear, retryable failure naming the address."""
    port = refused_port()

    result = await run_check(build({"url": f"redis://127.0.0.1:{port}/0"}))

    assert result.status is Status.FAIL
    assert f"127.0.0.1:{port} refused the connection" in result.output
    assert not result.permanent


async def test_it_fails_within_the_timeout_on_a_black_holed_port() -> None:
    """A server that accepts TCP but never answers is reported as a timeout, naming the address."""
    with black_hole() as hole:
        check = build({"url": f"redis://127.0.0.1:{hole.port}/0"}, timeout="1s")

        result = await run_check(check)

    assert result.status is Status.FAIL
    assert "timeout" in result.output
    assert f"127.0.0.1:{hole.port}" in result.output
    assert result.duration < 1 + 2  # a sanity bound: run_check returned, it did not hang


async def test_it_warns_when_memory_nears_maxmemory() -> None:
    """used_memory above memory_warn of maxmemory warns; without maxmemory there is no limit."""
    server = RedisServer.create()
    try:
        check = build({"url": server.url, "memory_warn": 0.9})
        server.cli("DEBUG", "POPULATE", "2000", "key", "1000")
        unlimited = await run_check(check)
        used = int(
            dict(
                line.split(":", 1)
                for line in server.cli("INFO", "memory").splitlines()
                if ":" in line
            )["used_memory"]
        )
        server.cli("CONFIG", "SET", "maxmemory", str(int(used / 0.95)))

        nearly_full = await run_check(check)
    finally:
        server.destroy()

    assert unlimited.status is Status.PASS, unlimited.output
    assert nearly_full.status is Status.WARN, nearly_full.output
    assert nearly_full.details["memory_used_ratio"] > 0.9
    assert "of maxmemory" in nearly_full.output
    assert "writes will be rejected" in nearly_full.output


def test_it_rejects_a_url_that_is_not_redis_without_echoing_it() -> None:
    """Config validation names the field but never repeats the secret value."""
    with pytest.raises(ConfigError) as caught:
        build({"url": "http://:hunter2-secret@cache:6379"})
    with pytest.raises(ConfigError) as bad_port:
        build({"url": "redis://app:hunter2-secret@db:port/app"})

    assert "checks.0.params.url" in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)
    assert "port" in str(bad_port.value)
    assert "hunter2-secret" not in str(bad_port.value)


@pytest.fixture(scope="module")
def tls_files() -> Iterator[Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    root = Path(tempfile.mkdtemp(prefix="drwatch-tls-"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=root, check=True, capture_output=True)

    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=drwatch test CA")  # fmt: skip
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (root / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2",
            "-extfile", "san.cnf")  # fmt: skip
    yield root
    shutil.rmtree(root, ignore_errors=True)


async def test_it_speaks_tls_to_a_rediss_url(tls_files: Path) -> None:
    """rediss:// verifies the server against ssl_ca_file, or skips verification when told to."""
    tls_port = free_port()
    server = RedisServer.create(
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(tls_files / "server.crt"),
        "--tls-key-file", str(tls_files / "server.key"),
        "--tls-ca-cert-file", str(tls_files / "ca.crt"),
        "--tls-auth-clients", "no",
        "--requirepass", "tls-redis-pass-4471",
    )  # fmt: skip
    url = f"rediss://:tls-redis-pass-4471@127.0.0.1:{tls_port}/0"
    try:
        trusted = await run_check(build({"url": url, "ssl_ca_file": str(tls_files / "ca.crt")}))
        untrusted = await run_check(build({"url": url}))
        unverified = await run_check(build({"url": url, "ssl_verify": False}))
        plain_to_tls = await run_check(build({"url": url.replace("rediss", "redis")}, timeout="1s"))
    finally:
        server.destroy()

    assert trusted.status is Status.PASS, trusted.output
    assert untrusted.status is Status.FAIL
    assert "certificate drwatch does not trust" in untrusted.output
    assert "ssl_ca_file" in untrusted.output
    assert unverified.status is Status.PASS, unverified.output
    assert plain_to_tls.status is Status.FAIL


async def test_it_leaves_no_connection_behind_after_many_runs(primary: RedisServer) -> None:
    """Every run closes its connection: the server's client count stays flat."""
    check = build({"url": primary.url})
    before = connected_clients(primary)

    with unclosed_resource_warnings() as unclosed:
        statuses = {(await run_check(check)).status for _ in range(300)}
        gc.collect()

    assert statuses == {Status.PASS}
    assert unclosed == []
    await eventually(lambda: connected_clients(primary) <= before, timeout=10)
    assert connected_clients(primary) == before


async def test_it_leaves_no_connection_behind_when_runs_are_cancelled_at_the_timeout() -> None:
    """Runs cut off by the runner while the server is paused still close their connections."""
    server = RedisServer.create()
    try:
        check = build({"url": server.url}, timeout="1s")
        before = connected_clients(server)
        with unclosed_resource_warnings() as unclosed:
            # Every command waits while the server is paused, so the runner cancels each run.
            server.cli("CLIENT", "PAUSE", "1500", "ALL")
            results = [await run_check(check, timeout=0.2) for _ in range(5)]
            await eventually(lambda: connected_clients(server) <= before, timeout=10)
            gc.collect()
    finally:
        server.destroy()

    assert {r.status for r in results} == {Status.FAIL}
    assert all("timeout" in r.output for r in results)
    assert unclosed == []
