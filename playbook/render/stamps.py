"""Times as the exports write them: the timeline's UTC and local columns, and the JSON
export's ISO 8601 stamps.

A long incident has many events a minute, and writing a time (a conversion to the
reader's zone, isoformat) cost more than the rest of a timeline row or a JSON event: the
writers here convert and write each minute once, and a moment in the same minute as the
one before it adds only its seconds. tests/render/test_export_times.py holds them to
converting every moment on its own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from playbook.core.events import format_utc


def times(moment: datetime | None, tz: tzinfo | None) -> tuple[str, str]:
    if moment is None:
        return "—", "—"
    local = moment if moment.tzinfo is tz else moment.astimezone(tz)
    if moment.year < 1000 or local.year < 1000:  # strftime's unpadded year, as before
        return f"{moment:%Y-%m-%d %H:%M:%S}Z", f"{local:%Y-%m-%d %H:%M:%S %Z}".strip()
    # isoformat is C, strftime is not: the timeline writes two of these per event
    utc = moment.isoformat(" ", "seconds")[:19]
    shown = utc if local is moment else local.isoformat(" ", "seconds")[:19]  # tz is moment's
    return utc + "Z", f"{shown} {local.tzname() or ''}".strip()


_MINUTE = timedelta(minutes=1)
_ZERO = timedelta(0)
_SECONDS = tuple(f"{second:02d}" for second in range(60))


class MinuteTimes:
    """:func:`times` for many moments in a row, each UTC minute converted and written
    once: a long incident has many events a minute, and writing a time (the conversion to
    the system's zone, when ``tz`` is None as `playbook export` asks, and isoformat) cost
    more than the rest of a timeline row. A moment in the same minute as the one before
    it only adds its seconds.

    A minute is used so only when its first and last microsecond have the same UTC
    offset, in whole minutes (so a moment's local seconds are its UTC seconds); any other
    moment goes through :func:`times`."""

    def __init__(self, tz: tzinfo | None) -> None:
        self.tz = tz
        self.start = datetime.max.replace(tzinfo=UTC)  # no minute yet
        self.utc = self.local = self.zone = ""

    def __call__(self, moment: datetime) -> tuple[str, str]:
        if moment.tzinfo is not UTC:
            moment = moment.astimezone(UTC)
        since = moment - self.start
        if not _ZERO <= since < _MINUTE:
            if not self._enter(moment):
                return times(moment, self.tz)
            since = moment - self.start
        seconds = _SECONDS[since.seconds]
        return f"{self.utc}{seconds}Z", f"{self.local}{seconds}{self.zone}"

    def _enter(self, moment: datetime) -> bool:
        """Make ``moment``'s minute the current one; False if it cannot be (see above)."""
        start = moment.replace(second=0, microsecond=0)
        first = start.astimezone(self.tz)
        last = (start + (_MINUTE - timedelta(microseconds=1))).astimezone(self.tz)
        offset = first.utcoffset()
        if (
            offset is None
            or offset != last.utcoffset()
            or offset % _MINUTE
            or min(start.year, first.year) < 1000  # strftime's unpadded years: times()
        ):
            return False
        self.start = start
        self.utc = start.isoformat(" ", "minutes")[:16] + ":"
        self.local = first.isoformat(" ", "minutes")[:16] + ":"
        self.zone = f" {first.tzname() or ''}".rstrip()
        return True


class UtcStamps:
    """:func:`~playbook.core.events.format_utc` for many moments in a row (the JSON
    export's ``at``), each UTC minute written once."""

    def __init__(self) -> None:
        self.start = datetime.max.replace(tzinfo=UTC)  # no minute yet
        self.minute = ""

    def __call__(self, moment: datetime) -> str:
        since = moment - self.start
        if moment.tzinfo is not UTC or not _ZERO <= since < _MINUTE:
            if moment.tzinfo is not UTC or moment.year < 1000:
                return format_utc(moment)
            self.start = moment.replace(second=0, microsecond=0)
            self.minute = format_utc(self.start)[:17]  # 2026-03-14T02:10:
            since = moment - self.start
        return f"{self.minute}{_SECONDS[since.seconds]}.{since.microseconds:06d}Z"
