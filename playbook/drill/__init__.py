"""Drills: a runbook's incident rehearsed on a sandbox made for it.

The room's pieces, from the bottom: :mod:`~playbook.drill.servers` (real Redis and
PostgreSQL on free ports, and the guardian that stops them), :mod:`~playbook.drill.stubs`
(a local HTTP stub) with :mod:`~playbook.drill.routes` (its answers read from the sandbox
at each request), :mod:`~playbook.drill.sandbox` (one service per target the drill
names), :mod:`~playbook.drill.steps` (a drill's load and fault steps) with
:mod:`~playbook.drill.data` (its data generators), :mod:`~playbook.drill.fingerprint`
(what recovery must bring back), :mod:`~playbook.drill.run` (a drill's sandbox, data,
fingerprint and incident) and :mod:`~playbook.drill.script` (a drill script played
headless, and its verdict).

Nothing is imported here: ``python -m playbook.drill.servers guard`` (the guardian) and
``playbook --drills …`` load this package, and neither needs the rest of the room.
"""

from __future__ import annotations

from pathlib import Path


def drills_dir(data_dir: Path) -> Path:
    """Where drills are kept: beside real incidents, never among them."""
    return data_dir / "drills"
