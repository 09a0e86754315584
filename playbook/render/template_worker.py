"""Status templates render in a process of their own, which is killed at a hard deadline.

The budget of :mod:`playbook.render.templates` is checked between operations and before
each call it can see. A single C-level call that its checks did not foresee would still
run to its end, and while it runs it holds the interpreter's lock: no other thread of the
same process (a watchdog, the app's event loop) runs at all, so no thread can stop it or
even report it. Only another process can. So :func:`render_isolated`, which the service
uses for every status message, hands the render to a worker process and waits at most
:data:`HARD_SECONDS`; past that it SIGKILLs the worker and says which template was
stopped. The next render starts a new worker.

What it costs, measured on the shipped data-integrity templates (200 renders each, on
a shared 2-core machine): starting the worker, about 200 ms once per playbook process,
at its first status message; then 1.6 to 2.1 ms a render, against 0.9 to 1.9 ms in the
calling process, so about half a millisecond for the two JSON lines. The app's live
preview renders on each keystroke, so a worker started once and kept, rather than one per
render, is what keeps typing smooth.

The worker is ``python -I -m playbook.render.template_worker PARENT_PID``: no ``PYTHON*``
variables, no environment but the locale, ``PR_SET_PDEATHSIG`` so that it dies with
playbook even in the middle of a call, and an address-space limit of
:data:`MEMORY_LIMIT`, so a call that builds a huge value fails with ``MemoryError``
(reported as a template error) instead of taking the machine's memory. Requests and
answers are one JSON line each.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from playbook.errors import TemplateError
from playbook.render.templates import MAX_SECONDS

HARD_SECONDS = MAX_SECONDS + 1.0
"""Longest a render may hold the worker: the budget, plus time for the budget's own
error to arrive. Past it the worker is killed."""
START_SECONDS = 30.0
"""Longest the worker may take to start (an interpreter and Jinja's import); not part of
any template's budget."""
MEMORY_LIMIT = 1024 * 1024 * 1024
"""The worker's address space (``RLIMIT_AS``): far above what a render within the
budget needs (the interpreter and Jinja take about 60 MB)."""
MAX_ANSWER = 1024 * 1024
"""Bytes of one answer read; a message is at most 8,000 characters."""

_PR_SET_PDEATHSIG = 1
_ENVIRONMENT = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "LD_LIBRARY_PATH", "PATH")


class _Worker:
    """One worker process and its pipes."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if k in _ENVIRONMENT}
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-m", __name__, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd="/",
            start_new_session=True,  # the terminal's Ctrl-C is playbook's to handle
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin.fileno()
        self.stdout = self.proc.stdout.fileno()
        self.pending = b""
        if self._line(START_SECONDS) != b"ready":
            self.kill()
            raise TemplateError(
                "Status messages cannot be rendered: the template renderer did not start."
            )

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The worker's answer to ``request``; None when it took longer than ``timeout``
        or died (the caller then kills it)."""
        data = json.dumps(request).encode() + b"\n"
        try:
            while data:
                data = data[os.write(self.stdin, data) :]
        except OSError:
            return None
        line = self._line(timeout)
        if line is None:
            return None
        try:
            answer = json.loads(line)
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None

    def _line(self, timeout: float) -> bytes | None:
        """One line from the worker, waiting at most ``timeout`` seconds in all."""
        ends = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.stdout, selectors.EVENT_READ)
            while b"\n" not in self.pending:
                left = ends - time.monotonic()
                if left <= 0 or not selector.select(left):
                    return None
                chunk = os.read(self.stdout, 65536)
                if not chunk or len(self.pending) > MAX_ANSWER:
                    return None  # it died, or says more than any answer holds
                self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return line

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(OSError):
            self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()


_lock = threading.Lock()
_worker: _Worker | None = None
_spawns: queue.Queue[queue.Queue[_Worker | BaseException]] = queue.Queue()
_keeper: threading.Thread | None = None


def _keep() -> None:
    """Start workers, and never end: the worker's parent-death signal fires when the
    *thread* that started it ends, not the process, and a render may come from a
    short-lived thread (the app's workers)."""
    while True:
        answer = _spawns.get()
        try:
            answer.put(_Worker())
        except BaseException as exc:  # handed to the caller, raised there
            answer.put(exc)


def _spawn() -> _Worker:
    """A new worker, started by the keeper thread (see :func:`_keep`)."""
    global _keeper
    if _keeper is None:
        _keeper = threading.Thread(target=_keep, name="template-worker-keeper", daemon=True)
        _keeper.start()
    answer: queue.Queue[_Worker | BaseException] = queue.Queue(maxsize=1)
    _spawns.put(answer)
    made = answer.get()
    if isinstance(made, BaseException):
        raise made
    return made


def render_isolated(
    template_dir: Path, name: str, values: Mapping[str, str], label: str | None = None
) -> str:
    """:func:`playbook.render.templates.render`, in the worker, ended at
    :data:`HARD_SECONDS` whatever the template does.

    Raises:
        TemplateError: everything :func:`~playbook.render.templates.render` raises, and a
            render that had to be killed, naming the template.
    """
    global _worker
    folder = str(Path(template_dir).absolute())  # the worker runs in /
    request = {"dir": folder, "name": name, "values": dict(values), "label": label}
    with _lock:
        if _worker is None or _worker.proc.poll() is not None:
            _worker = _spawn()
        answer = _worker.ask(request, HARD_SECONDS)
        if answer is None:
            _worker.kill()
            _worker = None
            raise TemplateError(
                f"Template {name!r} was stopped: one of its operations ran past the "
                f"{MAX_SECONDS:g} s budget, and the renderer was ended at {HARD_SECONDS:g} s.",
                "A status message template should be a few lines with a few loops.",
            )
    if "text" in answer:
        return str(answer["text"])
    raise TemplateError(str(answer.get("title", "")), str(answer.get("message", "")))


@atexit.register
def _stop() -> None:
    global _worker
    with _lock:
        if _worker is not None:
            _worker.kill()
            _worker = None


# --------------------------------------------------------------------------- the worker


def main(argv: list[str]) -> int:
    """Serve render requests on stdin until it closes (or playbook dies)."""
    parent = int(argv[0])
    with contextlib.suppress(Exception):  # Linux only; elsewhere stdin's end stops it
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        return 1  # playbook ended before this started
    with contextlib.suppress(Exception):
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    from playbook.render.templates import render

    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        answer: dict[str, Any]
        name = "?"
        try:
            request = json.loads(line)
            name = str(request["name"])
            text = render(Path(request["dir"]), name, request["values"], request["label"])
            answer = {"text": text}
        except TemplateError as error:
            answer = {"title": error.title, "message": error.message}
        except BaseException as exc:  # MemoryError, RecursionError: say so, keep serving
            answer = {
                "title": f"Template {name!r} failed: {type(exc).__name__}.",
                "message": "The template computes something too large; fix the template.",
            }
        out.write(json.dumps(answer).encode() + b"\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
