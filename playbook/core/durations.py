"""Durations as people read them. Kept apart from the model so that printing a timer
does not import pydantic (which costs a third of a second at start-up)."""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    """Seconds as a short human duration: ``1h 05m``, ``12m 30s``, ``45s``."""
    sign = "-" if seconds < 0 else ""
    total = int(abs(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours:02d}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"


MINUTE = 60
HOUR = 3600
DAY = 86400

# The longest each kind of duration may be. `validate` refuses a playbook past one (with
# file, line and key); the runtime clamps anyway, because an incident opened by an older
# version carries its playbook's snapshot, and a deadline that overflows
# `threading.Timer` (``99999999999999d``) would silently disable the watchdog.
MAX_DIAGNOSTIC_TIMEOUT = HOUR
"""A diagnostic is a read a responder waits for; one that needs more than an hour is a
query to narrow, not a deadline to raise."""
MAX_CONNECT_TIMEOUT = 10 * MINUTE
"""Reaching a server: beyond minutes it is down, whatever the deadline says."""
MAX_ACTION_TIMEOUT = 6 * HOUR
"""One stage of a guarded action (a backup or an apply of millions of keys in batches)."""
MAX_LOCK_TTL = HOUR
"""How long a killed run can keep others off a target: the lock is renewed while held,
so its TTL only matters once its holder is gone."""
MAX_TARGET = 30 * DAY
"""Severity targets and phase windows: a month is already longer than any incident's
resolution target; past it, the timers would be meaningless (and past year 9999 they
overflow)."""
MAX_RUN_SECONDS = MAX_ACTION_TIMEOUT
"""The longest deadline any run gets at run time, whatever it was asked for."""
MIN_RUN_SECONDS = 0.001


def clamp_seconds(value: float, maximum: float, minimum: float = 0.0) -> float:
    """``value`` within ``[minimum, maximum]``; NaN counts as the minimum (never forever)."""
    if value != value:  # NaN
        return minimum
    return max(minimum, min(value, maximum))
