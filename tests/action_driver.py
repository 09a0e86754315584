"""Runs one guarded action in its own process and stops dead at a chosen point.

``python action_driver.py DATA_DIR INCIDENT ACTION TARGET=URI STOP_AT`` prints every
stage as ``stage outcome`` (and ``progress`` while applying), flushed, and when it
reaches ``STOP_AT`` (``"lock done"``, ``"apply progress"``, …) prints ``stopped`` and
waits forever, so a test can kill it exactly there, synchronised on its output rather
than on a sleep. ``STOP_AT`` ``end`` runs to the end.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import redis

from playbook.service import Service
from playbook.store.sqlite import SQLiteStore
from playbook.targets import Target

KILL_POINTS = [
    # (where the driver stops, the run's status after a kill there, data repaired?)
    ("dry_run done", "dry run done", False),
    ("backup done", "backup done", False),
    ("confirm done", "confirm done", False),
    ("lock done", "lock done", False),
    ("apply started", "interrupted during apply", False),
    ("apply progress", "interrupted during apply", False),
    ("apply done", "applied", True),
    ("verify done", "applied and verified", True),
]
"""The points a kill test stops a guarded run at, shared by every writer's kill test."""


def main(argv: list[str]) -> int:
    data_dir, incident, action, target, stop_at = argv
    name, _, uri = target.partition("=")
    hold = threading.Event()

    def say(line: str) -> None:
        print(line, flush=True)
        if line == stop_at:
            print("stopped", flush=True)
            hold.wait()

    stage = {"now": "", "round_trips": 0}
    execute = redis.client.Pipeline.execute

    def counted(self: redis.client.Pipeline, *args: object, **kwargs: object) -> object:
        # Mid-apply: once two pipelines of the apply have gone out (some writes made),
        # the third waits here if the test stops at "apply progress".
        if stage["now"] == "apply":
            stage["round_trips"] += 1
            if stage["round_trips"] == 3:
                say("apply progress")
        return execute(self, *args, **kwargs)

    redis.client.Pipeline.execute = counted  # type: ignore[method-assign]

    def hook(name: str, outcome: str) -> None:
        stage["now"] = name if outcome == "started" else ""
        say(f"{name} {outcome}")

    service = Service(SQLiteStore(Path(data_dir)), actor="driver")
    run = service.start_action(
        incident, action, {}, {name: Target(name, uri, "driver")}, None, hook
    )
    run.dry_run()
    run.backup()
    run.confirm(run.phrase)
    outcome = run.apply()
    say("ok" if outcome.ok else f"failed {outcome.error}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
