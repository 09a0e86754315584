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
