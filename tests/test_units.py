"""Value types of the configuration: names and points in time."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from app.units import NAME_PATTERN, parse_timestamp

MOMENT = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        MOMENT,
        MOMENT.replace(tzinfo=None),
        MOMENT.astimezone(timezone(timedelta(hours=2))),
        "2026-11-21T03:00:00Z",
        "2026-11-21T03:00:00+00:00",
        "2026-11-21T05:00:00+02:00",
        "2026-11-21T03:00:00",
        " 2026-11-21T03:00:00Z ",
        MOMENT.timestamp(),
        int(MOMENT.timestamp()),
    ],
)
def test_parse_timestamp_gives_the_same_utc_moment_for_every_spelling(value: object) -> None:
    """datetimes (naive ones are UTC), ISO-8601 with Z, an offset or none, and unix seconds."""
    parsed = parse_timestamp(value)
    assert parsed == MOMENT
    assert parsed is not None and parsed.tzinfo is UTC


def test_parse_timestamp_takes_a_date_as_its_midnight_utc() -> None:
    """A date column (max(created_on)) counts from the start of its day."""
    assert parse_timestamp(date(2026, 11, 21)) == datetime(2026, 11, 21, tzinfo=UTC)


@pytest.mark.parametrize(
    "value", [None, "", "   ", "yesterday", "2026-13-01", True, False, float("nan"), 1e20, [], {}]
)
def test_parse_timestamp_gives_none_for_what_is_no_time(value: object) -> None:
    """Unreadable values give None, never an exception."""
    assert parse_timestamp(value) is None


@pytest.mark.parametrize(
    ("name", "valid"),
    [("primary-db", True), ("nightly.dumps_2", True), ("-db", False), ("a b", False), ("", False)],
)
def test_names_are_letters_digits_and_a_few_separators(name: str, valid: bool) -> None:
    """Check and drill names start with a letter or digit and hold no spaces."""
    assert bool(re.match(NAME_PATTERN, name)) is valid
