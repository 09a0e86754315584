"""Typed parameter values that need no database driver to exist."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectIdValue:
    """A MongoDB ObjectId, kept as hex so the core needs no driver."""

    hex: str
