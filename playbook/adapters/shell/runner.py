"""Running a shell diagnostic: its private folder, the sandbox's policy, the supervisor.

:class:`~playbook.adapters.shell.adapter.ShellAdapter` decides whether a run may start;
this module carries it out. The program is started by a supervisor process
(:mod:`playbook.adapters.shell.supervisor`, run as ``python -I -m``) that confines
itself with the policy built here (:mod:`playbook.adapters.shell.sandbox_linux`) before
it starts the program, and ends the whole process tree at the deadline, on cancel, and
when the program exits. Output is read in chunks and capped in bytes.
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

import platformdirs

from playbook.adapters.base import RunContext, RunError, Sink
from playbook.adapters.shell import sandbox_linux as sandbox
from playbook.adapters.shell.supervisor import remove_tree

MAX_LINE = 4_000
"""Bytes kept of one output line; the rest of the line is read and dropped."""
MAX_OUTPUT = 4 * 1024 * 1024
"""Bytes read from the program (stdout and stderr together) before it is stopped."""
STDERR_KEPT = 8_000
"""Bytes kept of the end of stderr, for the error message."""
_FALLBACK_PATH = "/usr/local/bin:/usr/bin:/bin"


# --------------------------------------------------------------------------- the sandbox


FOLDER_PREFIX = "playbook-shell-"


@contextlib.contextmanager
def private_folder() -> Iterator[Path]:
    """The run's own folder (its cwd, HOME and TMPDIR), removed when the run ends.

    Removed three ways: here when the run ends; by the supervisor once the program's
    tree is dead, so also when playbook was killed outright (SIGKILL, a closed
    terminal); and, when both were killed at once, by the next shell run's sweep
    (:func:`sweep_stale_folders`). Its name carries this process's pid and start time so
    that the sweep can tell a folder whose playbook is gone from one in use.
    """
    sweep_stale_folders()
    tag = process_tag(os.getpid())
    prefix = f"{FOLDER_PREFIX}{tag}-" if tag else FOLDER_PREFIX
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        with contextlib.suppress(OSError):
            remove_tree(str(folder))


def process_tag(pid: int) -> str | None:
    """``PID.STARTTIME`` of a live process (start time in clock ticks since boot, field 22
    of /proc/PID/stat), or None: a pid alone could be reused by another process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()  # the name (field 2) may hold spaces
    return f"{pid}.{int(fields[19])}" if len(fields) > 19 else None


def sweep_stale_folders(root: str | None = None) -> list[str]:
    """Remove the private folders of runs whose playbook process is gone (both it and its
    supervisor were killed, e.g. with SIGKILL, so neither could clean up); their paths.

    Only folders named by :func:`private_folder`, owned by this user, and real folders
    (not links) are touched, and only when no process has the pid *and* start time in the
    name: a folder in use by another playbook, even one started since, is left alone.
    """
    root = root or tempfile.gettempdir()
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        tag = entry.name.removeprefix(FOLDER_PREFIX).partition("-")[0]
        pid, dot, start = tag.partition(".")
        if not (entry.name.startswith(FOLDER_PREFIX) and dot and pid.isdigit() and start.isdigit()):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not entry.is_dir(follow_symlinks=False) or info.st_uid != os.getuid():
            continue
        if process_tag(int(pid)) == tag:
            continue  # its playbook still runs
        with contextlib.suppress(OSError):
            remove_tree(entry.path)
            removed.append(entry.path)
    return removed


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
    readable_files: Collection[str] = (),
) -> sandbox.Policy:
    """The run's policy: read the system roots (minus :func:`unreadable_paths`), write
    ``folder``, use the harmless devices, connect to ``allowed_ports``; also read each
    of ``readable_files`` (an ssh target's key and known hosts), those files only."""
    rules = sandbox.readable_rules(roots, unreadable_paths(unreadable))
    rules += [sandbox.Rule(os.path.realpath(f), sandbox.FS_READ_FILE) for f in readable_files]
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
    max_line: int = MAX_LINE,
) -> Outcome:
    """Start the supervisor, stream the program's stdout into ``sink`` (at most
    ``limit`` rows, each line cut at ``max_line`` bytes), and return once every process
    of the run is gone."""
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
        _read_output(
            out, err, outcome, ctx, sink, stop, lambda: proc.poll() is not None, limit, max_line
        )
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
    max_line: int = MAX_LINE,
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
                        if len(pending) > max_line:
                            if not dropping:
                                emit(pending[:max_line])
                                outcome.lines_cut += 1
                                dropping = True
                            pending.clear()
                        break
                    line = pending[:newline]
                    del pending[: newline + 1]
                    if dropping:
                        dropping = False
                        continue
                    if len(line) > max_line:
                        outcome.lines_cut += 1
                    emit(line[:max_line])
    if pending and not dropping:
        emit(pending)
    outcome.stderr = bytes(err_tail).decode("utf-8", "replace")


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")
