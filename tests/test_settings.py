"""Process settings: DRWATCH_* from a mapping, <NAME>_FILE secrets, errors by variable name."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from app.errors import ConfigError
from app.settings import load_settings


class _ReadOnlyEnviron(Mapping[str, str]):
    """Stands in for os.environ and fails the test on any attempt to change it."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"os.environ.{name} was called while loading settings")


def test_it_reads_the_given_mapping_without_touching_os_environ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """os.environ is neither changed nor read when a mapping is given."""
    # Undone before pytest's own teardown, which writes to os.environ.
    with monkeypatch.context() as patch:
        patch.setattr(os, "environ", _ReadOnlyEnviron({"DRWATCH_PORT": "1234"}))
        assert load_settings({"DRWATCH_PORT": "9000"}).port == 9000
        assert load_settings({}).port == 8080


def test_it_reads_os_environ_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI passes nothing: the process environment is read."""
    monkeypatch.setenv("DRWATCH_PORT", "9100")
    assert load_settings().port == 9100


def test_threads_load_settings_from_their_own_mappings() -> None:
    """Loading from several mappings at once gives each its own values."""
    results: dict[int, int] = {}

    def load(port: int) -> None:
        for _ in range(50):
            settings = load_settings({"DRWATCH_PORT": str(port)})
            if settings.port != port:
                results[port] = settings.port
                return
        results[port] = port

    threads = [threading.Thread(target=load, args=(9000 + i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {9000 + i: 9000 + i for i in range(4)}


def test_a_file_variable_provides_a_secret(tmp_path: Path) -> None:
    """DRWATCH_ADMIN_TOKEN_FILE names a mounted secret; its content, stripped, is the value."""
    token = tmp_path / "admin-token"
    token.write_text("adm1n-token-value\n")
    settings = load_settings({"DRWATCH_ADMIN_TOKEN_FILE": str(token)})
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "adm1n-token-value"


def test_the_variable_itself_wins_over_its_file(tmp_path: Path) -> None:
    """DRWATCH_PORT and DRWATCH_PORT_FILE both set: the variable is used."""
    port = tmp_path / "port"
    port.write_text("9001")
    assert load_settings({"DRWATCH_PORT": "9002", "DRWATCH_PORT_FILE": str(port)}).port == 9002
    assert load_settings({"DRWATCH_PORT_FILE": str(port)}).port == 9001


def test_an_unreadable_file_is_named_by_its_variable(tmp_path: Path) -> None:
    """A _FILE variable pointing nowhere is an error that names the variable and the path."""
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as info:
        load_settings({"DRWATCH_DETAILS_TOKEN_FILE": str(missing)})
    assert info.value.errors == [
        (
            "environment",
            f"DRWATCH_DETAILS_TOKEN_FILE={missing} cannot be read: No such file or directory",
        )
    ]


def test_a_bad_value_read_from_a_file_is_named_by_its_variable(tmp_path: Path) -> None:
    """A port that is not a number, given through a file, is reported as DRWATCH_PORT."""
    port = tmp_path / "port"
    port.write_text("http")
    with pytest.raises(ConfigError) as info:
        load_settings({"DRWATCH_PORT_FILE": str(port)})
    assert [path for path, _ in info.value.errors] == ["DRWATCH_PORT"]


def test_pg_bin_names_the_postgresql_client_directory() -> None:
    """DRWATCH_PG_BIN is a directory path; unset, drills look for the programs themselves."""
    assert load_settings({}).pg_bin is None
    settings = load_settings({"DRWATCH_PG_BIN": "/usr/lib/postgresql/16/bin"})
    assert settings.pg_bin == Path("/usr/lib/postgresql/16/bin")


def test_variable_names_are_matched_without_regard_to_case() -> None:
    """drwatch_port works like DRWATCH_PORT, as pydantic-settings reads the environment."""
    assert load_settings({"drwatch_port": "9003"}).port == 9003
