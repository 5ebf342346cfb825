"""The postgres check against a real primary and streaming replica."""

from __future__ import annotations

import contextlib
import gc
import warnings
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from app.checks.base import Check, Status
from app.checks.postgres import PostgresCheck
from app.config import parse_config
from app.errors import ConfigError
from app.runner import run_check
from tests.polling import eventually, wait_until
from tests.servers import PostgresCluster, black_hole, refused_port


@pytest.fixture(scope="module")
def primary() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster.create(name="pg-primary")
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="module")
def replica(primary: PostgresCluster) -> Iterator[PostgresCluster]:
    standby = primary.replica(name="pg-replica")
    wait_until(lambda: standby.psql("SELECT count(*) FROM pg_stat_wal_receiver") == "1")
    yield standby
    standby.destroy()


def build(params: dict[str, Any], *, timeout: str = "5s") -> Check[Any]:
    """A check built the way drwatch builds it: from a config document."""
    config = parse_config(
        {"checks": [{"name": "db", "type": "postgres", "timeout": timeout, "params": params}]}
    )
    return config.checks[0].build()


async def wait_for_replay(primary: PostgresCluster, replica: PostgresCluster) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    lsn = primary.psql("SELECT pg_current_wal_lsn()")
    await eventually(lambda: replica.psql(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'") == "t")


@contextlib.contextmanager
def unclosed_connection_warnings() -> Iterator[list[str]]:
    """Collects asyncpg's "unclosed connection" warnings: a connection left to the GC."""
    unclosed: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield unclosed
    unclosed.extend(str(w.message) for w in caught if "unclosed connection" in str(w.message))


def client_backends(cluster: PostgresCluster) -> int:
    """Client connections the server holds, not counting the psql asking."""
    return int(
        cluster.psql(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
    )


async def test_it_passes_on_a_healthy_primary(primary: PostgresCluster) -> None:
    """A primary that answers passes and reports its role, version and connection usage."""
    result = await run_check(build({"dsn": primary.dsn, "expect_role": "primary"}))

    assert result.status is Status.PASS, result.output
    assert result.observed_unit == "s"
    assert result.observed_value is not None and result.observed_value > 0
    assert result.details["role"] == "primary"
    assert result.details["server_version"].split(".")[0].isdigit()
    assert 0 < result.details["connections_used_ratio"] < 1
    assert result.details["latency_seconds"] == pytest.approx(result.observed_value, abs=1e-5)
    assert "replication_lag_seconds" not in result.details
    assert f"127.0.0.1:{primary.port}/postgres" in result.output


async def test_it_passes_on_a_healthy_replica(
    primary: PostgresCluster, replica: PostgresCluster
) -> None:
    """A streaming replica expected to be a replica passes and reports its lag."""
    await wait_for_replay(primary, replica)
    check = build({"dsn": replica.dsn, "expect_role": "replica", "max_replication_lag": "15m"})

    result = await run_check(check)

    assert result.status is Status.PASS, result.output
    assert result.details["role"] == "replica"
    assert result.details["streaming"] is True
    assert result.details["replication_lag_seconds"] is not None


async def test_it_reports_no_lag_for_an_idle_replica_that_is_in_sync(
    primary: PostgresCluster, replica: PostgresCluster
) -> None:
    """With nothing written for a while, the last replay is old but the replica is not behind."""
    primary.psql(
        "CREATE TABLE IF NOT EXISTS idle_probe (id int); INSERT INTO idle_probe VALUES (1)"
    )
    await wait_for_replay(primary, replica)
    # The last replayed commit is now older than the allowed lag, although nothing is missing.
    await eventually(
        lambda: (
            replica.psql("SELECT now() - pg_last_xact_replay_timestamp() > interval '1.5 seconds'")
            == "t"
        )
    )

    result = await run_check(build({"dsn": replica.dsn, "max_replication_lag": "1s"}))

    assert result.status is Status.PASS, result.output
    assert result.details["replication_lag_seconds"] == 0


async def test_it_fails_when_the_replica_lags_past_max_replication_lag(
    primary: PostgresCluster, replica: PostgresCluster
) -> None:
    """A replica whose replay is paused falls behind, fails, and passes again once it catches up."""
    check = build({"dsn": replica.dsn, "max_replication_lag": "1s"})
    primary.psql("CREATE TABLE IF NOT EXISTS lag_probe (id int); INSERT INTO lag_probe VALUES (1)")
    await wait_for_replay(primary, replica)
    replica.psql("SELECT pg_wal_replay_pause()")
    try:
        primary.psql("INSERT INTO lag_probe VALUES (2)")
        lsn = primary.psql("SELECT pg_current_wal_lsn()")
        await eventually(
            lambda: replica.psql(f"SELECT pg_last_wal_receive_lsn() >= '{lsn}'") == "t"
        )
        await eventually(
            lambda: (
                replica.psql(
                    "SELECT now() - pg_last_xact_replay_timestamp() > interval '1.5 seconds'"
                )
                == "t"
            )
        )

        lagging = await run_check(check)
    finally:
        replica.psql("SELECT pg_wal_replay_resume()")

    assert lagging.status is Status.FAIL, lagging.output
    assert lagging.details["replication_lag_seconds"] > 1
    assert "behind its primary" in lagging.output
    assert f"127.0.0.1:{replica.port}/postgres" in lagging.output

    await wait_for_replay(primary, replica)
    caught_up = await run_check(check)
    assert caught_up.status is Status.PASS, caught_up.output
    assert caught_up.details["replication_lag_seconds"] == 0


async def test_it_fails_when_a_promoted_replica_is_expected_to_be_a_replica(
    primary: PostgresCluster,
) -> None:
    """A replica that was promoted is no longer in recovery: a failover happened."""
    standby = primary.replica(name="pg-promoted")
    try:
        check = build({"dsn": standby.dsn, "expect_role": "replica"})
        assert (await run_check(check)).status is Status.PASS

        standby.promote()
        result = await run_check(check)
    finally:
        standby.destroy()

    assert result.status is Status.FAIL
    assert "promoted" in result.output
    assert result.details["role"] == "primary"


async def test_it_fails_when_the_primary_is_expected_to_be_a_replica(
    primary: PostgresCluster,
) -> None:
    """A server not in recovery fails expect_role: replica."""
    result = await run_check(build({"dsn": primary.dsn, "expect_role": "replica"}))

    assert result.status is Status.FAIL
    assert "replica was expected" in result.output


async def test_it_fails_when_a_replica_is_expected_to_be_the_primary(
    replica: PostgresCluster,
) -> None:
    """A server in recovery fails expect_role: primary, and the message suggests a failover."""
    result = await run_check(build({"dsn": replica.dsn, "expect_role": "primary"}))

    assert result.status is Status.FAIL
    assert "is a replica (in recovery) but a primary was expected" in result.output
    assert "failover" in result.output


async def test_it_fails_when_the_primary_is_read_only(primary: PostgresCluster) -> None:
    """A primary whose sessions default to read-only cannot take the application's writes."""
    primary.psql("CREATE DATABASE fenced")
    primary.psql("ALTER DATABASE fenced SET default_transaction_read_only = on")

    fenced = await run_check(build({"dsn": primary.dsn_for("fenced"), "expect_role": "primary"}))
    writable = await run_check(build({"dsn": primary.dsn, "expect_role": "primary"}))

    assert fenced.status is Status.FAIL
    assert "read-only" in fenced.output
    assert writable.status is Status.PASS


async def test_it_fails_at_once_when_the_connection_is_refused() -> None:
    """Nothing listening on the port: a clear, retryable failure naming the address."""
    port = refused_port()

    result = await run_check(build({"dsn": f"postgresql://postgres@127.0.0.1:{port}/app"}))

    assert result.status is Status.FAIL
    assert f"127.0.0.1:{port} refused the connection" in result.output
    assert not result.permanent


async def test_it_fails_when_the_host_name_does_not_resolve() -> None:
    """A DSN host that DNS does not know is reported as a DNS failure."""
    check = build({"dsn": "postgresql://postgres@drwatch-missing.invalid:5432/app"})

    result = await run_check(check)

    assert result.status is Status.FAIL
    assert "'drwatch-missing.invalid' does not resolve" in result.output


async def test_it_fails_within_the_timeout_on_a_black_holed_port() -> None:
    """A server that accepts TCP but never answers is reported as a timeout, naming the address."""
    with black_hole() as hole:
        check = build({"dsn": f"postgresql://postgres@127.0.0.1:{hole.port}/app"}, timeout="1s")

        result = await run_check(check)

    assert result.status is Status.FAIL
    assert "timeout" in result.output
    assert f"127.0.0.1:{hole.port}/app" in result.output
    assert result.duration < 1 + 2  # a sanity bound: run_check returned, it did not hang


async def test_it_reports_a_wrong_password_as_permanent_without_revealing_it(
    primary: PostgresCluster,
) -> None:
    """Bad credentials cannot be fixed by retrying, and the password appears nowhere."""
    primary.add_password_user("booking_app", "correct-horse-7291")
    wrong = "wrong-battery-5512"
    # Built directly, so no secret is registered for scrubbing: the check itself must not leak.
    check = PostgresCheck(
        "db",
        PostgresCheck.Params(dsn=primary.dsn_for("postgres", "booking_app", wrong)),
        timeout=5,
    )

    result = await run_check(check)

    assert result.status is Status.FAIL
    assert result.permanent
    assert "booking_app" in result.output
    assert wrong not in repr(result.as_dict())
    right = PostgresCheck(
        "db",
        PostgresCheck.Params(dsn=primary.dsn_for("postgres", "booking_app", "correct-horse-7291")),
        timeout=5,
    )
    accepted = await run_check(right)
    assert accepted.status is Status.PASS, accepted.output
    assert "correct-horse-7291" not in repr(accepted.as_dict())


async def test_it_reports_a_missing_database_as_permanent(primary: PostgresCluster) -> None:
    """A DSN naming a database that does not exist fails permanently, naming the database."""
    result = await run_check(build({"dsn": primary.dsn_for("no_such_db")}))

    assert result.status is Status.FAIL
    assert result.permanent
    assert "no database 'no_such_db'" in result.output


async def test_it_fails_when_no_connection_slot_is_left(primary: PostgresCluster) -> None:
    """A server that refuses new connections (too many connections) fails, retryably."""
    primary.psql("CREATE ROLE capped LOGIN CONNECTION LIMIT 0")

    result = await run_check(build({"dsn": primary.dsn_for("postgres", user="capped")}))

    assert result.status is Status.FAIL
    assert "too many connections" in result.output
    assert not result.permanent


async def test_it_warns_when_connections_near_max_connections(primary: PostgresCluster) -> None:
    """Connections held open by clients count against max_connections."""
    check = build({"dsn": primary.dsn, "connections_warn": 0.1})
    max_connections = int(primary.psql("SHOW max_connections"))
    held = [await asyncpg.connect(primary.dsn) for _ in range(max_connections // 10 + 1)]
    try:
        crowded = await run_check(check)
    finally:
        for connection in held:
            await connection.close()

    assert crowded.status is Status.WARN, crowded.output
    assert crowded.details["connections_used_ratio"] > 0.1
    assert f"of {max_connections} connections" in crowded.output
    assert (await run_check(check)).status is Status.PASS


async def test_it_warns_when_the_answer_is_slower_than_latency_warn(
    primary: PostgresCluster,
) -> None:
    """A probe query that takes longer than latency_warn gives a warning, not a failure."""
    check = build({"dsn": primary.dsn, "query": "SELECT pg_sleep(0.3)", "latency_warn": "200ms"})

    result = await run_check(check)

    assert result.status is Status.WARN, result.output
    assert result.observed_value is not None and result.observed_value > 0.2
    assert "warn above 200 ms" in result.output


async def test_it_runs_the_configured_query_in_a_read_only_transaction(
    primary: PostgresCluster,
) -> None:
    """A custom query runs; one that writes is refused and changes nothing."""
    reading = await run_check(build({"dsn": primary.dsn, "query": "SELECT count(*) FROM pg_class"}))
    writing = await run_check(build({"dsn": primary.dsn, "query": "CREATE TABLE probe_wrote ()"}))

    escaping = await run_check(
        build({"dsn": primary.dsn, "query": "COMMIT; CREATE TABLE probe_escaped ()"})
    )

    assert reading.status is Status.PASS, reading.output
    assert writing.status is Status.FAIL
    assert writing.permanent
    assert "read-only" in writing.output
    assert escaping.status is Status.FAIL
    assert primary.psql("SELECT to_regclass('probe_wrote') IS NULL") == "t"
    assert primary.psql("SELECT to_regclass('probe_escaped') IS NULL") == "t"


async def test_it_reports_a_broken_query_as_permanent(primary: PostgresCluster) -> None:
    """A query naming a table that does not exist is a configuration error."""
    result = await run_check(build({"dsn": primary.dsn, "query": "SELECT * FROM no_such_table"}))

    assert result.status is Status.FAIL
    assert result.permanent
    assert "no_such_table" in result.output


def test_it_rejects_a_dsn_that_is_not_postgresql_without_echoing_it() -> None:
    """Config validation names the field but never repeats the secret value."""
    with pytest.raises(ConfigError) as caught:
        build({"dsn": "mysql://root:hunter2-secret@db/app"})
    with pytest.raises(ConfigError) as bad_port:
        build({"dsn": "postgresql://app:hunter2-secret@db:port/app"})

    assert "checks.0.params.dsn" in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)
    assert "port" in str(bad_port.value)
    assert "hunter2-secret" not in str(bad_port.value)


async def test_it_leaves_no_connection_behind_after_a_thousand_runs(
    primary: PostgresCluster,
) -> None:
    """Every run closes its connection: the server's client connection count stays flat."""
    check = build({"dsn": primary.dsn})
    before = client_backends(primary)

    with unclosed_connection_warnings() as unclosed:
        statuses = {(await run_check(check)).status for _ in range(1000)}
        gc.collect()

    assert statuses == {Status.PASS}
    assert unclosed == []
    # A closed connection's backend exits a moment after the client hung up.
    await eventually(lambda: client_backends(primary) <= before, timeout=10)
    assert client_backends(primary) == before


async def test_it_leaves_no_connection_behind_when_runs_are_cancelled_at_the_timeout(
    primary: PostgresCluster,
) -> None:
    """Runs cut off by the runner mid-query still close their connections and stop the query."""
    check = build({"dsn": primary.dsn, "query": "SELECT pg_sleep(60)"}, timeout="1s")
    before = client_backends(primary)

    with unclosed_connection_warnings() as unclosed:
        results = [await run_check(check, timeout=0.3) for _ in range(10)]
        # The cancelled runs finish closing in the background.
        await eventually(lambda: client_backends(primary) <= before, timeout=10)
        gc.collect()

    assert {r.status for r in results} == {Status.FAIL}
    assert all("timeout" in r.output for r in results)
    assert unclosed == []
    sleeping = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'"
    )
    assert primary.psql(sleeping) == "0"
