"""Work that Ctrl-C (or SIGTERM) can cancel: `diag run` and each stage of a guarded action."""

from __future__ import annotations

import threading
from typing import Any


def cancellable(work: Any, name: str, cancel: Any) -> Any:
    """``work()`` in a thread; on Ctrl-C or SIGTERM, ``cancel()`` and wait for it to end.

    Returns its result or raises its error, in this (the main) thread. A second signal
    while it winds down propagates: the command then leaves without recording anything
    more. It waits on an Event, never on ``Thread.join``: in Python before 3.13 a join
    interrupted by a signal marks the thread finished while it still runs, so the next
    join returned at once and ``diag run`` recorded an empty result.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed back to the main thread below
            outcome["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=run, name=name, daemon=True)
    try:
        # Started inside the ``try``: a Ctrl-C that lands just after the start still
        # cancels the work instead of leaving it running while the command exits.
        worker.start()
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        if not worker.is_alive() and not done.is_set():
            raise  # interrupted before the work began: nothing to cancel or wait for
        cancel()
        while not done.wait(0.2):
            pass
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
