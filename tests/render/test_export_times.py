"""The exports' times: a long incident's timeline rows convert each UTC minute to the reader's
zone once and reuse it. Every row must still say exactly what converting that one moment
says, across daylight-saving changes, half-hour and 45-minute zones, and the old local
mean times whose offsets have seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from playbook.core.events import format_utc
from playbook.render.stamps import MinuteTimes, UtcStamps, times

CASES = [
    # (zone, a UTC moment a few minutes before a change of its offset)
    ("Europe/Berlin", datetime(2026, 3, 29, 0, 57, tzinfo=UTC)),  # summer time begins
    ("Europe/Berlin", datetime(2026, 10, 25, 0, 57, tzinfo=UTC)),  # and ends: 02:xx twice
    ("Australia/Lord_Howe", datetime(2026, 4, 4, 14, 57, tzinfo=UTC)),  # a 30-minute change
    ("Asia/Kathmandu", datetime(2026, 3, 14, 2, 0, tzinfo=UTC)),  # +05:45
    ("America/St_Johns", datetime(2026, 11, 1, 4, 27, tzinfo=UTC)),  # -02:30 -> -03:30
    ("Europe/Amsterdam", datetime(1937, 6, 30, 22, 33, tzinfo=UTC)),  # +01:19:32 -> +01:20
    ("UTC", datetime(2026, 3, 14, 2, 0, tzinfo=UTC)),
]


def _zone(name: str) -> tzinfo:
    return UTC if name == "UTC" else ZoneInfo(name)


@pytest.mark.parametrize(("zone", "start"), CASES, ids=[f"{z}-{s:%Y}" for z, s in CASES])
def test_each_row_shows_what_converting_its_own_moment_shows(zone: str, start: datetime) -> None:
    tz = _zone(zone)
    writer = MinuteTimes(tz)
    moments = [start + timedelta(seconds=7 * k, microseconds=k) for k in range(120)]
    shown = [writer(m) for m in moments]
    assert shown == [times(m, tz) for m in moments]
    backwards = MinuteTimes(tz)  # a log's times may step back (clocks differ)
    assert [backwards(m) for m in reversed(moments)] == [times(m, tz) for m in reversed(moments)]
    # the offset did change in the window where the zone has changes: the case is real
    offsets = {m.astimezone(tz).utcoffset() for m in moments}
    assert len(offsets) == (1 if zone in ("UTC", "Asia/Kathmandu") else 2), offsets


def test_the_system_zone_is_used_when_none_is_given() -> None:
    moment = datetime(2026, 7, 1, 12, 0, 5, tzinfo=UTC)
    assert MinuteTimes(None)(moment) == times(moment, None)


def test_a_moment_given_in_another_zone_is_shown_in_utc_first() -> None:
    paris = datetime(2026, 7, 1, 14, 0, 5, tzinfo=ZoneInfo("Europe/Paris"))
    assert MinuteTimes(UTC)(paris) == ("2026-07-01 12:00:05Z", "2026-07-01 12:00:05 UTC")


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/Los_Angeles"])
def test_the_first_and_last_years_are_shown_as_before(zone: str) -> None:
    tz = _zone(zone)
    writer = MinuteTimes(tz)
    for moment in (
        datetime(999, 12, 31, 23, 59, 30, tzinfo=UTC),
        datetime(1000, 1, 1, 0, 0, 30, tzinfo=UTC),
        datetime(9999, 12, 31, 20, 59, 30, tzinfo=UTC),
    ):
        assert writer(moment) == times(moment, tz)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_the_json_stamps_are_what_format_utc_writes(zone: str) -> None:
    start = datetime(2026, 10, 25, 0, 58, 59, 999_999, tzinfo=UTC)
    moments = [start + timedelta(seconds=3 * k, microseconds=7 * k) for k in range(90)]
    moments += [m.astimezone(_zone(zone)) for m in moments[::7]]  # another zone's moment
    moments += [datetime(999, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)]
    stamps = UtcStamps()
    assert [stamps(m) for m in moments] == [format_utc(m) for m in moments]
    stamps = UtcStamps()
    assert [stamps(m) for m in reversed(moments)] == [format_utc(m) for m in reversed(moments)]
