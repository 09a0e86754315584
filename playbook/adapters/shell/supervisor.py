"""The supervisor between playbook and a shell diagnostic's program.

``python -I -m playbook.adapters.shell.supervisor`` reads its orders as JSON on stdin,
starts the program confined by :func:`playbook.adapters.shell.sandbox_linux.confine`, and
makes sure that when the run ends (the program exits, the deadline passes, or playbook
sends SIGTERM or dies) **no process the program started survives**:

* It is a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``): a process of the run
  whose parent exits is re-parented here, not to init, so a double fork, ``setsid`` or
  ``nohup … &`` cannot leave the tree. At the end it SIGKILLs every child it has, reaps
  them, and repeats until it has none, looking in ``/proc``, not at process groups (which
  ``setsid`` leaves). The sandboxed program cannot signal the supervisor (Landlock's
  signal scope), so it cannot kill its way out. A PID namespace would do the same, but
  needs user namespaces, which some distributions turn off for unprivileged users.
* ``prctl(PR_SET_PDEATHSIG, SIGTERM)``: if playbook itself is killed, the supervisor
  hears of it and cleans up. (The signal comes when the *thread* that started the
  supervisor ends; the adapter's run keeps that thread until the supervisor is gone.)
  The program gets ``PR_SET_PDEATHSIG, SIGKILL`` in turn, so it dies if the supervisor
  is SIGKILLed; what the program started then survives until it ends by itself (only a
  PID namespace would take those too).
* **It removes the run's private folder** once the tree is dead, before it reports, so
  the folder goes even when playbook was killed outright (SIGKILL, a closed terminal)
  and never ran its own clean-up. Only if both are killed at once does a folder stay;
  the next shell run removes it (:func:`playbook.adapters.shell.sweep_stale_folders`).
  :func:`remove_tree` does it without recursion and without following a link: the
  program may have nested folders thousands deep (``shutil.rmtree`` recurses and gives
  up) or made one it cannot list.

Why a separate process rather than ``preexec_fn``: running Python between ``fork`` and
``exec`` in a process with threads (the app's workers) can deadlock; this process has
one thread. It costs one interpreter start (about 30 ms). ``-I`` keeps ``PYTHON*``
variables and the current folder out of it.

File descriptors: 0 the orders (read to the end, then /dev/null), 1 and 2 the pipes the
program writes to (the supervisor keeps no copy, so they reach end-of-file once the
program's tree is gone), and the one named by the first argument, where the supervisor
writes its report: one JSON object.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import time
from typing import Any

from playbook.adapters.shell import sandbox_linux

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_WATCHED = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
_RESET = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

MAX_FILE_BYTES = 64 * 1024 * 1024
"""Largest file the program may write (in its private folder), so a run cannot fill
the disk with one file before its deadline."""


def main(argv: list[str]) -> int:
    """Run the orders on stdin; the report goes to fd ``argv[0]``. Exit 0 unless the
    report could not be written."""
    report: dict[str, Any]
    status_fd = int(argv[0])
    folder = None
    try:
        os.set_inheritable(status_fd, False)  # the program must not inherit it
        orders = json.loads(sys.stdin.buffer.read())
        folder = str(orders["cwd"])
        report = _supervise(orders)
    except Exception as exc:  # the report must say what went wrong, whatever it was
        report = {"error": f"the supervisor failed: {type(exc).__name__}: {exc}"}
    if folder is not None:  # every process that could write there is gone by now
        with contextlib.suppress(Exception):
            remove_tree(folder)
    try:
        os.write(status_fd, json.dumps(report).encode())
    except OSError:
        return 1
    return 0


def _supervise(orders: dict[str, Any]) -> dict[str, Any]:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != orders["parent"]:
        return {"error": "playbook ended before the program started"}
    signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    policy = sandbox_linux.Policy.from_json(orders["policy"])
    failed_r, failed_w = os.pipe()  # both close-on-exec: EOF here means exec succeeded
    orders["supervisor"] = os.getpid()
    child = os.fork()
    if child == 0:
        _start(orders, policy, devnull, failed_w)
    os.close(failed_w)
    os.dup2(devnull, 1)  # only the program holds the output pipes from now on
    os.dup2(devnull, 2)
    failure = _read_all(failed_r)
    deadline = time.monotonic() + float(orders["timeout"])
    status: int | None = None
    why = "exited"
    while status is None:
        left = deadline - time.monotonic()
        if left <= 0:
            why = "deadline"
            break
        got = signal.sigtimedwait(_WATCHED, left)
        if got is None:
            why = "deadline"
            break
        if got.si_signo != signal.SIGCHLD:
            why = "stopped"
            break
        status = _reap(child)
    killed, late = _kill_everything(child)
    status = status if status is not None else late
    report: dict[str, Any] = {"why": why, "killed": killed}
    if failure:
        report["error"] = failure
    elif status is not None and why == "exited":
        if os.WIFSIGNALED(status):
            report["signal"] = os.WTERMSIG(status)
        else:
            report["exit"] = os.waitstatus_to_exitcode(status)
    return report


def _start(orders: dict[str, Any], policy: sandbox_linux.Policy, devnull: int, failed: int) -> None:
    """In the forked child: confine, then exec the program. Never returns."""
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        for sig in _RESET:  # Python ignores SIGPIPE and SIGXFSZ; programs expect defaults
            signal.signal(sig, signal.SIG_DFL)
        # If the supervisor itself is SIGKILLed, the program dies with it (processes the
        # program started do not: only a PID namespace would take them too).
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != orders["supervisor"]:
            os._exit(127)  # it died before the line above
        os.dup2(devnull, 0)
        os.chdir(orders["cwd"])
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        sandbox_linux.confine(policy)
        os.execve(orders["program"], orders["argv"], orders["env"])
    except BaseException as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if isinstance(exc, OSError) and exc.filename == orders["program"]:
            reason = f"{orders['argv'][0]} could not be run: {exc.strerror}"
        try:
            os.write(failed, reason.encode("utf-8", "replace")[:2000])
        finally:
            os._exit(127)


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def _reap(child: int) -> int | None:
    """Reap every child that has ended; the program's own wait status, once it ended."""
    status = None
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == child:
            status = st


def _kill_everything(child: int) -> tuple[int, int | None]:
    """SIGKILL every process left of the run until none is; how many, and the program's
    wait status if it was reaped here.

    Each round kills the children seen in /proc, then reaps. A process dies only after
    its own children were re-parented here, so the next round sees them; the loop ends
    when the kernel says there is no child left (ECHILD).
    """
    killed: set[int] = set()
    status: int | None = None
    me = os.getpid()
    while True:
        for pid in _children(me):
            killed.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return len(killed - {child}), status
            if pid == 0:
                break
            if pid == child:
                status = st
        signal.sigtimedwait({signal.SIGCHLD}, 0.05)  # woken by the next death


def remove_tree(path: str) -> None:
    """Remove the folder ``path`` and everything in it, as far as its owner can.

    Iterative, by file descriptor: it goes down one folder at a time, keeping only names
    on the way (a program can nest folders deeper than recursion or ``PATH_MAX`` allow),
    reads each folder once (a program can make a hundred thousand side by side), opens
    each with ``O_NOFOLLOW`` (a link is removed, never followed), and gives a folder made
    without read or search permission (``mkdir(name, 0o300)``) back to its owner before
    going in. It expects nothing else to write there meanwhile.
    """
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        return
    way: list[tuple[str, list[str]]] = []  # each folder on the way down, and what is left
    todo = _empty_but_folders(fd)
    try:
        while True:
            if todo:
                name = todo.pop()
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except PermissionError:
                    os.chmod(name, 0o700, dir_fd=fd)  # a folder, not a link: scandir said
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
                way.append((name, todo))
                todo = _empty_but_folders(fd)
                continue
            if not way:
                break
            name, todo = way.pop()
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(path)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _empty_but_folders(fd: int) -> list[str]:
    """Unlink everything in the folder ``fd`` but folders; their names."""
    folders = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.name)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=fd)
    return folders


def _children(parent: int) -> list[int]:
    """Processes whose parent is ``parent``, from /proc/PID/stat (field 4)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after it.
        fields = data[data.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == parent:
            found.append(int(entry))
    return found


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
