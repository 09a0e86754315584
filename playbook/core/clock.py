"""Clocks: the only place the core learns what time it is.

Timers and services take a clock, so tests use :class:`FakeClock` and never sleep.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that says what time it is, as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time, as the operating system tells it."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SteadyClock:
    """Wall time read once, then advanced by the monotonic clock.

    A long-running process (the app) uses this so that an NTP step or a manual
    clock change mid-incident cannot make elapsed time jump backwards.
    """

    def __init__(self) -> None:
        self._wall = datetime.now(UTC)
        self._mono = time.monotonic()

    def now(self) -> datetime:
        return self._wall + timedelta(seconds=time.monotonic() - self._mono)


class FakeClock:
    """A clock that moves only when told to; for tests and replays."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, 3, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment
