"""Shell diagnostics: a program run from an argument list, inside the kernel's sandbox.

The argument list comes from the playbook with typed parameters in place of
``{$param: name}``, so a value is one argument whatever it contains: no quoting, no
globbing, no second command. A value that starts with ``-`` is refused unless the
parameter is declared an ``option`` (:func:`refuse_option_values`).

What the program may do is the kernel's decision, not a list of programs we trust
(:mod:`playbook.adapters.shell.sandbox_linux`): it reads the installed system but not homes
or temporary folders, writes only a private folder made for the run (and removed
after), reaches only the TCP ports the diagnostic declares, signals only its own
processes, and gets ``PATH``, ``LANG``, ``TZ`` and what the diagnostic declares, never
the responder's environment. A supervisor process
(:mod:`playbook.adapters.shell.supervisor`) ends the whole process tree at the
deadline, on cancel, and when the program exits. Output is read in chunks and capped in
bytes. An exit status the diagnostic did not list in ``exit_codes`` is an error.

Where the kernel cannot sandbox (no Landlock, or too old an ABI) shell diagnostics are
refused, unless the responder opted in with ``[shell] allow_unsandboxed = true`` in
their own configuration, which arrives here as the run option
``allow_unsandboxed_shell``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import platformdirs

from playbook.adapters.base import (
    Adapter,
    DeadlineExceeded,
    Refused,
    RunContext,
    RunError,
    RunRequest,
    Sink,
)
from playbook.adapters.shell import sandbox_linux as sandbox

MAX_LINE = 4_000
"""Bytes kept of one output line; the rest of the line is read and dropped."""
MAX_OUTPUT = 4 * 1024 * 1024
"""Bytes read from the program (stdout and stderr together) before it is stopped."""
STDERR_KEPT = 8_000
"""Bytes kept of the end of stderr, for the error message."""
RESERVED_ENV = frozenset({"PATH", "HOME", "TMPDIR"})
"""Set by playbook for every run; a diagnostic cannot declare them."""
_FALLBACK_PATH = "/usr/local/bin:/usr/bin:/bin"


class ShellAdapter(Adapter):
    """Runs a program from its argv in the sandbox; stdout lines are the rows."""

    kind = "shell"
    description = "A program run from an argument list (no shell), in a kernel sandbox"

    def check(self, request: RunRequest) -> None:
        q = request.query
        argv = q.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise Refused("Refused: a shell diagnostic needs an argument list of strings.")
        env = q.get("env") or {}
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise Refused("Refused: a shell diagnostic's env maps names to text.")
        if "\x00" in "".join([*argv, *env, *env.values()]):
            raise Refused("Refused: an argument or environment value contains a NUL character.")
        reserved = sorted(RESERVED_ENV & set(env))
        if reserved:
            raise Refused(f"Refused: {reserved[0]} is set by playbook; a diagnostic cannot set it.")
        ports(q.get("network") or [])  # raises Refused on a malformed entry
        codes = q.get("exit_codes", [0])
        if not isinstance(codes, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in codes
        ):
            raise Refused("Refused: exit_codes lists whole numbers from 0 to 255.")
        _sandbox_or_opt_in(request)

    def run(self, request: RunRequest, ctx: RunContext, sink: Sink) -> dict[str, Any]:
        support = _sandbox_or_opt_in(request)
        argv = [str(a) for a in request.query["argv"]]
        declared = dict(request.query.get("env") or {})
        allowed_ports = ports(request.query.get("network") or [])
        codes = list(request.query.get("exit_codes", [0]))
        with private_folder() as folder:
            policy = build_policy(
                folder, allowed_ports, support, unreadable=request.options.get("unreadable", ())
            )
            env = child_env(declared, folder, policy)
            program = resolve_program(argv[0], env["PATH"], policy)
            outcome = supervise(program, argv, env, folder, policy, ctx, sink, request.limit)
        if outcome.escaped:
            raise RunError(
                f"{argv[0]} killed its supervisor: processes it started may still be running.",
                "This can happen only without the sandbox; look for them with `ps`.",
            )
        if outcome.error:
            raise RunError(f"{argv[0]} could not be started: {outcome.error}")
        if ctx.stopped:
            raise ctx.stop_error()
        if outcome.capped:
            raise RunError(
                f"{argv[0]} was stopped after {MAX_OUTPUT:,} bytes of output; the result "
                "is partial.",
                "Narrow what it prints (a filter, `tail -n`, a limit).",
            )
        if outcome.why == "deadline":
            raise DeadlineExceeded(f"The run passed its deadline of {ctx.timeout:g} s.")
        if outcome.signal is not None:
            raise RunError(f"{argv[0]} was killed by signal {outcome.signal}.")
        code = outcome.exit
        if code is None:  # the supervisor was stopped by someone else than this run
            raise RunError(f"{argv[0]} was stopped before it finished; the result is partial.")
        last_err = outcome.stderr.strip().splitlines()[-1][:300] if outcome.stderr.strip() else ""
        if code not in codes:
            expected = ", ".join(map(str, codes))
            raise RunError(
                f"{argv[0]} exited with status {code}; the diagnostic expects {expected}.",
                last_err,
            )
        metrics: dict[str, Any] = {
            "exit_code": code,
            "count": outcome.lines,
            "lines": outcome.lines,
            "rows": min(outcome.lines, request.limit),
            "bytes": outcome.bytes,
            "sandboxed": policy.landlock,
        }
        if outcome.lines_cut:
            metrics["lines_cut"] = outcome.lines_cut
        if outcome.killed:
            metrics["background_killed"] = outcome.killed
        if code != 0 and last_err:
            metrics["stderr"] = last_err
        return metrics


# --------------------------------------------------------------------------- checks


def refuse_option_values(
    argv: list[Any], values: Mapping[str, object], options: Collection[str]
) -> None:
    """Refuse a parameter placed in ``argv`` whose value starts with ``-``, unless the
    parameter is declared an option: ``find DIR {$param: name}`` with ``-delete`` would
    otherwise turn data into an instruction. ``argv`` is the diagnostic's own list, with
    ``{"$param": name}`` where a parameter goes.

    Raises:
        Refused: naming the parameter; nothing was run.
    """
    for item in argv:
        if not isinstance(item, dict):
            continue
        name = item.get("$param")
        value = values.get(name) if isinstance(name, str) else None
        if value is not None and str(value).startswith("-") and name not in options:
            raise Refused(
                f"Refused: parameter {name!r} starts with '-', so the program would read "
                "it as an option.",
                "Give a value that does not start with '-'; a playbook that means it to "
                "be an option declares the parameter with `option: true`.",
            )


def ports(network: list[Any]) -> tuple[int, ...]:
    """The TCP ports of ``host:port`` entries (the kernel can enforce ports, not hosts).

    Raises:
        Refused: an entry is not ``host:port``.
    """
    from playbook.core.model import parse_endpoint

    found: list[int] = []
    for entry in network:
        try:
            _host, port = parse_endpoint(entry)
        except (TypeError, ValueError) as exc:
            raise Refused(f"Refused: network entry {entry!r}: {exc}.") from None
        found.append(port)
    return tuple(sorted(set(found)))


def _sandbox_or_opt_in(request: RunRequest) -> sandbox.Support:
    support = sandbox.support()
    if support.complete or request.options.get("allow_unsandboxed_shell", False):
        return support
    raise Refused(
        "Refused: shell diagnostics run only inside the kernel's sandbox, and "
        + "; ".join(support.reasons)
        + ". Nothing was run.",
        "Without the sandbox the program could write files, reach the network and signal "
        "your processes. To run shell diagnostics anyway, set `allow_unsandboxed = true` "
        "under `[shell]` in your own playbook.toml (your config directory, not a "
        "playbook's folder).",
    )


# --------------------------------------------------------------------------- the sandbox


@contextlib.contextmanager
def private_folder() -> Iterator[Path]:
    """The run's own folder (its cwd, HOME and TMPDIR), removed when the run ends."""
    folder = Path(tempfile.mkdtemp(prefix="playbook-shell-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def unreadable_paths(extra: Collection[str] = ()) -> list[str]:
    """What must stay unreadable even where it lies under a readable system root: the
    responder's home, playbook's config and data folders (incidents, evidence, backups),
    and ``extra`` (the service's data folder)."""
    found = [str(Path.home()), *extra]
    for name in ("user_config_dir", "user_data_dir", "user_state_dir", "user_cache_dir"):
        found.append(getattr(platformdirs, name)("playbook", appauthor=False))
    if os.environ.get("PLAYBOOK_HOME"):
        found.append(os.environ["PLAYBOOK_HOME"])
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        if os.environ.get(var):
            found.append(os.environ[var])
    found += sandbox.UNREADABLE_UNDER_ROOTS
    return [os.path.abspath(os.path.expanduser(p)) for p in found]


def build_policy(
    folder: Path,
    allowed_ports: tuple[int, ...],
    support: sandbox.Support,
    unreadable: Collection[str] = (),
    roots: tuple[str, ...] = sandbox.SYSTEM_ROOTS,
) -> sandbox.Policy:
    """The run's policy: read the system roots (minus :func:`unreadable_paths`), write
    ``folder``, use the harmless devices, connect to ``allowed_ports``."""
    rules = sandbox.readable_rules(roots, unreadable_paths(unreadable))
    rules.append(sandbox.Rule(str(folder.resolve()), sandbox.PRIVATE_RIGHTS))
    rules += [sandbox.Rule(d, sandbox.DEVICE_RIGHTS) for d in sandbox.DEVICES if os.path.exists(d)]
    return sandbox.Policy(
        rules=tuple(rules),
        ports=allowed_ports,
        udp=bool(allowed_ports),
        landlock=support.landlock,
        seccomp=support.seccomp_arch,
    )


def child_env(declared: Mapping[str, str], folder: Path, policy: sandbox.Policy) -> dict[str, str]:
    """``PATH`` (the responder's folders the sandbox can run programs from), ``LANG``
    and ``TZ`` if set, ``HOME`` and ``TMPDIR`` pointing at the private folder (so a
    program that writes there succeeds), then what the diagnostic declares. Nothing
    else of the responder's environment: it holds tokens and passwords."""
    path = os.environ.get("PATH", _FALLBACK_PATH)
    if policy.landlock:
        runnable = [r.path for r in policy.rules if r.rights & sandbox.FS_EXECUTE]
        kept = [d for d in path.split(os.pathsep) if d and _beneath(os.path.realpath(d), runnable)]
        path = os.pathsep.join(dict.fromkeys(kept)) or _FALLBACK_PATH
    env = {"PATH": path, "HOME": str(folder), "TMPDIR": str(folder)}
    for name in ("LANG", "TZ"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    env.update(declared)
    return env


def resolve_program(name: str, path: str, policy: sandbox.Policy) -> str:
    """The program's full path, found on the child's ``PATH``.

    Raises:
        RunError: not found, or (sandboxed) outside the folders programs may run from.
    """
    found = shutil.which(name, path=path)
    if found is None:
        raise RunError(f"The program {name!r} is not on PATH ({path}).")
    if policy.landlock:
        runnable = [r.path for r in policy.rules if r.rights & sandbox.FS_EXECUTE]
        if not _beneath(os.path.realpath(found), runnable):
            raise RunError(
                f"{name} is at {found}, outside the folders a sandboxed diagnostic may run "
                "programs from (the installed system: /usr, /bin, /opt, …)."
            )
    return found


def _beneath(path: str, parents: list[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in parents)


# --------------------------------------------------------------------------- running it


class Outcome:
    """What the supervisor and the output reader saw."""

    def __init__(self) -> None:
        self.exit: int | None = None
        self.signal: int | None = None
        self.why = ""
        self.error = ""
        self.killed = 0
        self.lines = 0
        self.lines_cut = 0
        self.bytes = 0
        self.capped = False
        self.escaped = False
        self.stderr = ""


def supervise(
    program: str,
    argv: list[str],
    env: dict[str, str],
    folder: Path,
    policy: sandbox.Policy,
    ctx: RunContext,
    sink: Sink,
    limit: int,
) -> Outcome:
    """Start the supervisor, stream the program's stdout into ``sink`` (at most
    ``limit`` rows), and return once every process of the run is gone."""
    import json

    status_r, status_w = os.pipe()
    orders = {
        "parent": os.getpid(),
        "program": program,
        "argv": argv,
        "env": env,
        "cwd": str(folder),
        # The supervisor's own deadline is a backstop for a parent that stopped
        # watching; ours fires first and says why.
        "timeout": ctx.remaining() + 1.0,
        "policy": policy.to_json(),
    }
    launcher_env = {k: v for k, v in os.environ.items() if k == "LD_LIBRARY_PATH"}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "playbook.adapters.shell.supervisor", str(status_w)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(status_w,),
            cwd=folder,
            env=launcher_env,
            start_new_session=True,  # the terminal's Ctrl-C reaches playbook, which cancels
        )
    except OSError as exc:
        os.close(status_r)
        os.close(status_w)
        raise RunError(f"The sandbox supervisor could not be started: {exc.strerror}.") from None
    os.close(status_w)
    outcome = Outcome()

    def stop() -> None:
        with contextlib.suppress(ProcessLookupError):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # the supervisor kills the whole tree

    try:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(json.dumps(orders).encode())
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        ctx.on_stop(stop)
        ctx.connected()
        out, err = proc.stdout.fileno(), proc.stderr.fileno()
        _read_output(out, err, outcome, ctx, sink, stop, lambda: proc.poll() is not None, limit)
        # The program may have closed its output and still run: the supervisor ends it
        # at the deadline (ours stops it first), so wait that long, not a fixed time.
        try:
            proc.wait(timeout=ctx.remaining() + 5.0)
        except subprocess.TimeoutExpired:
            proc.kill()  # the supervisor itself is stuck: never expected
            proc.wait()
        report = json.loads(_read_all(status_r) or "{}")
    finally:
        with contextlib.suppress(OSError):
            os.close(status_r)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    outcome.exit = report.get("exit")
    outcome.signal = report.get("signal")
    outcome.why = report.get("why", "")
    outcome.killed = int(report.get("killed", 0))
    outcome.error = report.get("error", "") if report else "the supervisor gave no report"
    return outcome


def _read_output(
    out_fd: int,
    err_fd: int,
    outcome: Outcome,
    ctx: RunContext,
    sink: Sink,
    stop: Callable[[], None],
    gone: Callable[[], bool],
    limit: int,
) -> None:
    """Read both pipes to their end in chunks; the first ``limit`` lines of stdout
    become rows, and every line is counted.

    Never a line-by-line read: a program that prints gigabytes without a newline is
    stopped at :data:`MAX_OUTPUT` bytes, with memory bounded by :data:`MAX_LINE`.
    """
    pending = bytearray()
    dropping = False  # inside a line already cut at MAX_LINE
    err_tail = bytearray()

    def emit(raw: bytes | bytearray) -> None:
        if outcome.lines < limit:  # like a query's row limit: counted, not all kept
            sink.add({"line": bytes(raw).decode("utf-8", "replace")})
        outcome.lines += 1
        ctx.progress(outcome.lines, None, "lines read")

    selector = selectors.DefaultSelector()
    selector.register(out_fd, selectors.EVENT_READ, "out")
    selector.register(err_fd, selectors.EVENT_READ, "err")
    with selector:
        while selector.get_map():
            ready = selector.select(timeout=0.5)
            if not ready and (ctx.stopped or outcome.capped) and gone():
                # Asked to stop, the supervisor has exited, and yet a pipe is still open:
                # a process escaped it (possible only without Landlock, which stops the
                # program from signalling the supervisor). Stop waiting for it.
                outcome.escaped = True
                break
            for key, _ in ready:
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                if outcome.capped:
                    continue  # draining until the tree is gone
                room = MAX_OUTPUT - outcome.bytes
                if len(chunk) > room:
                    chunk = chunk[:room]
                    outcome.capped = True
                    stop()
                outcome.bytes += len(chunk)
                if key.data == "err":
                    err_tail += chunk
                    del err_tail[:-STDERR_KEPT]
                    continue
                pending += chunk
                while True:
                    newline = pending.find(b"\n")
                    if newline < 0:
                        if len(pending) > MAX_LINE:
                            if not dropping:
                                emit(pending[:MAX_LINE])
                                outcome.lines_cut += 1
                                dropping = True
                            pending.clear()
                        break
                    line = pending[:newline]
                    del pending[: newline + 1]
                    if dropping:
                        dropping = False
                        continue
                    if len(line) > MAX_LINE:
                        outcome.lines_cut += 1
                    emit(line[:MAX_LINE])
    if pending and not dropping:
        emit(pending)
    outcome.stderr = bytes(err_tail).decode("utf-8", "replace")


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")
