"""Shell diagnostics: a program run with an argument list, never through a shell.

The argument list comes from the playbook with typed parameters in place of
``{$param: name}``, so a value is one argument whatever it contains: no quoting, no
globbing, no second command. Output is read line by line into the result; the program
is killed (its whole process group) at the deadline or on cancel.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from typing import Any

from playbook.adapters.base import Adapter, RunContext, RunError, RunRequest, Sink
from playbook.adapters.readonly import Refused

MAX_LINE = 4_000
"""Characters kept of one output line."""


class ShellAdapter(Adapter):
    """Runs a program from its argv; stdout lines are the rows, the exit code a number."""

    kind = "shell"
    description = "A program run from an argument list (no shell); its output lines are rows"

    def check(self, request: RunRequest) -> None:
        argv = request.query.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise Refused("Refused: a shell diagnostic needs an argument list of strings.")
        if "\x00" in "".join(argv):
            raise Refused("Refused: an argument contains a NUL character.")

    def run(self, request: RunRequest, ctx: RunContext, sink: Sink) -> dict[str, Any]:
        argv = [str(a) for a in request.query["argv"]]
        program = shutil.which(argv[0])
        if program is None:
            raise RunError(f"The program {argv[0]!r} is not on PATH.")
        errors = tempfile.TemporaryFile()  # noqa: SIM115 - a file, so stderr cannot fill a pipe
        try:
            proc = subprocess.Popen(
                [program, *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
                start_new_session=True,
            )
        except OSError as exc:
            raise RunError(f"{argv[0]} could not be started: {exc.strerror}.") from None

        def kill() -> None:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)

        ctx.on_stop(kill)
        ctx.connected()
        assert proc.stdout is not None
        lines = 0
        for raw in proc.stdout:
            sink.add({"line": raw.decode("utf-8", "replace").rstrip("\n")[:MAX_LINE]})
            lines += 1
            ctx.progress(lines, None, "lines read")
        code = proc.wait()
        errors.seek(0)
        err = errors.read(8_000).decode("utf-8", "replace")
        errors.close()
        if ctx.stopped:
            raise ctx.stop_error()
        if code < 0:
            raise RunError(f"{argv[0]} was killed by signal {-code}.")
        metrics: dict[str, Any] = {"exit_code": code, "count": lines, "lines": lines}
        if code != 0 and err.strip():
            metrics["stderr"] = err.strip().splitlines()[-1][:300]
        return metrics
