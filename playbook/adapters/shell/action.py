"""Guarded shell actions: "remove these log files", as commands in the kernel's sandbox.

Every command runs exactly as a shell diagnostic's program does
(:mod:`playbook.adapters.shell.runner`: argument list, private folder, supervisor,
Landlock, seccomp, no capabilities, none of the responder's environment), with no
network, and with one difference the kernel enforces: ``apply`` and ``rollback`` may
also write under the action's declared ``writes:`` paths (and nowhere else); ``plan``
and ``backup`` may read there. The stages:

* **plan** (the dry run): the declared ``plan`` command; its output is the plan's lines.
* **backup**: the ``backup`` command's output (UTF-8 text, line by line) is the backup
  file, after a first row that records a fingerprint of each ``writes`` path as it is
  before the run. ``backup: none`` writes only that row; the engine then asks for a
  phrase ending in ``no backup`` and never offers a rollback (:meth:`has_backup`).
* **lock**: a lock file of this machine (``flock``), named by the action's lock name;
  it goes with the process that holds it.
* **apply**: the ``apply`` command, only if every ``writes`` path is still as the backup
  saw it (else nothing runs: a rollback would put a stale backup over newer files, the
  seed-002 lesson; so ``writes`` should name what the action changes, not a folder an
  application keeps writing to). Before it starts, each ``writes`` path is recorded
  as written with a fingerprint no tree has (so a process killed during apply leaves a
  file that says "the run may have changed this, and cannot tell how": a rollback then
  needs ``force``); once the command has ended, each path's fingerprint as it is now.
* **rollback**: each ``writes`` path is compared with what the run left. A command
  cannot put back part of what it wrote, so if any path changed since the apply the
  rollback command is not run at all, and the changed paths are kept and named;
  ``force`` runs it anyway. The command finds a copy of the backup at
  ``$PLAYBOOK_BACKUP_FILE``, in its private folder.

A path's fingerprint is the SHA-256 of its tree: every entry's relative name, kind,
size and content (a symbolic link's target, never followed). Costs: reading every file
under ``writes`` three times a run (before, after apply, before rollback); a big log
folder takes as long to hash as to read. The comparison and the rollback command are
not one atomic step: a write in the moment between them is not seen (SECURITY.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from playbook.adapters.base import DeadlineExceeded, Refused, RunContext, RunError, Sink
from playbook.adapters.writers import (
    ITEMS_SHOWN,
    Lock,
    LockHeld,
    NothingWritten,
    Plan,
    Undo,
    Writer,
    WriteRequest,
    Written,
)

BACKUP_FORMAT = "playbook-shell-backup/1"
BACKUP_RULE = (
    "The first row: before, the fingerprint (SHA-256 of the tree) of each writes path "
    "before the run (null: absent); none: true when the action keeps no backup. Every "
    "other row: line, one line of the backup command's output, as UTF-8 text; the "
    "rollback command reads them joined by newlines."
)
PENDING = "pending: the apply was under way; what it left is not known"
BACKUP_ENV = "PLAYBOOK_BACKUP_FILE"
MAX_BACKUP_LINES = 10_000_000
"""Rows a backup may hold (its bytes are capped by the runner at 4 MB anyway)."""


class ShellRefused(Refused, RunError):
    """The action cannot run as declared here; nothing was run."""


# --------------------------------------------------------------------------- fingerprints


def tree_print(path: str) -> str | None:
    """The SHA-256 of ``path``'s tree (None: absent): each entry's relative name, kind,
    size and content, links as their target, in name order; never follows a link."""
    path = os.path.realpath(path)  # a declared path that is a link: what the rule grants
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    digest = hashlib.sha256()

    def entry(rel: str, full: str, info: os.stat_result) -> None:
        digest.update(json.dumps([rel, stat.S_IFMT(info.st_mode), info.st_size]).encode())
        if stat.S_ISLNK(info.st_mode):
            digest.update(os.fsencode(os.readlink(full)))
        elif stat.S_ISREG(info.st_mode):
            with open(full, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        digest.update(b"\0")

    entry(".", path, info)
    if stat.S_ISDIR(info.st_mode):
        for root, dirs, files in os.walk(path, followlinks=False):
            dirs.sort()
            for name in sorted([*dirs, *files]):
                full = os.path.join(root, name)
                with contextlib.suppress(FileNotFoundError):  # gone while walking
                    entry(os.path.relpath(full, path), full, os.lstat(full))
    return digest.hexdigest()


# --------------------------------------------------------------------------- running one


def _command(request: WriteRequest, stage: str) -> dict[str, Any]:
    return dict(request.do[stage])


def _check(request: WriteRequest) -> Any:
    """Refuse before anything runs: no full sandbox, a parameter that would be an
    option, a ``writes`` path that does not exist or overlaps playbook's own folders.

    Returns:
        The sandbox support.
    """
    from urllib.parse import urlsplit

    from playbook.adapters.shell import sandbox_linux
    from playbook.adapters.shell.adapter import refuse_option_values
    from playbook.adapters.shell.runner import unreadable_paths
    from playbook.targets import is_local

    try:
        scheme = urlsplit(request.uri).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme == "local" and not is_local(request.uri):
        raise ShellRefused(
            "Refused: a shell action's local target is exactly local: (no host, user or "
            "path); it runs on this machine only. Nothing was run.",
            "Define the target as local: in your playbook.toml.",
        )
    if scheme != "local":  # the scheme only: the rest of a URI may hold a password
        raise ShellRefused(
            f"Refused: a shell action runs on this machine only, and its target is a "
            f"{scheme or 'scheme-less'} one; nothing runs anywhere else instead.",
            "Point the action's target at local: (an ssh:// target is for diagnostics).",
        )
    support = sandbox_linux.support()
    if not support.complete:
        raise ShellRefused(
            "Refused: a shell action runs only inside the kernel's sandbox, and "
            + "; ".join(support.reasons)
            + ". Nothing was run.",
            "Its promise that apply writes only under `writes:` is the kernel's to keep; "
            "without Landlock nobody keeps it, so there is no opt-in for actions.",
        )
    for stage in ("plan", "backup", "apply", "rollback"):
        declared = request.declared.get(stage)
        if isinstance(declared, dict):
            try:
                refuse_option_values(declared.get("argv") or [], request.params, ())
            except Refused as exc:
                raise ShellRefused(exc.title, exc.message) from None
    home = str(Path.home())
    own = [p for p in unreadable_paths(request.options.get("unreadable", ())) if p != home]
    from playbook.adapters.shell.action_model import absolute_path

    for path in request.do["writes"]:
        try:  # a {$param} path is checked here, once it has a value
            absolute_path(str(path))
        except ValueError as why:
            raise ShellRefused(f"Refused: the action writes under {path!r}: {why}.") from None
        if not os.path.lexists(path):
            raise ShellRefused(f"Refused: the action writes under {path}, which does not exist.")
        real = os.path.realpath(path)
        for folder in [*own, home]:
            inside = real == folder or real.startswith(folder.rstrip("/") + "/")
            contains = folder.startswith(real.rstrip("/") + "/")
            if contains or (inside and folder != home):
                raise ShellRefused(
                    f"Refused: {path} holds or lies in {folder}, where playbook keeps its "
                    "own files (incidents, backups, configuration) or your home.",
                    "An action writes only where its change is. Nothing was run.",
                )
    return support


def _run(
    request: WriteRequest,
    stage: str,
    ctx: RunContext,
    sink: Sink,
    *,
    write: bool,
    limit: int = MAX_BACKUP_LINES,
    files: dict[str, str] | None = None,
) -> Any:
    """Run the ``stage`` command in the sandbox; the runner's outcome.

    ``write``: the ``writes`` paths are writable (apply, rollback), else readable only.
    ``files``: name -> text put in the private folder first; ``$PLAYBOOK_<NAME>`` is
    then set to its path.

    Raises:
        RunError: it could not start, was stopped, or exited with a status it does not
            list; the last line of its stderr is said.
    """
    from playbook.adapters.shell import sandbox_linux as sandbox
    from playbook.adapters.shell.runner import (
        MAX_OUTPUT,
        build_policy,
        child_env,
        private_folder,
        resolve_program,
        supervise,
    )

    support = _check(request)
    command = _command(request, stage)
    argv = [str(a) for a in command["argv"]]
    declared = {str(k): str(v) for k, v in (command.get("env") or {}).items()}
    codes = list(command.get("exit_codes") or [0])
    rights = (
        sandbox.PRIVATE_RIGHTS
        if write
        else (sandbox.FS_READ_FILE | sandbox.FS_READ_DIR)  # read, never run from there
    )
    with private_folder() as folder:
        policy = build_policy(folder, (), support, request.options.get("unreadable", ()))
        granted = tuple(sandbox.Rule(os.path.realpath(p), rights) for p in request.do["writes"])
        policy = sandbox.Policy(
            rules=policy.rules + granted,
            ports=(),
            udp=False,
            landlock=policy.landlock,
            seccomp=policy.seccomp,
        )
        env = child_env(declared, folder, policy)
        for name, text in (files or {}).items():
            where = folder / name
            where.write_text(text, encoding="utf-8")
            env[f"PLAYBOOK_{name.upper().replace('.', '_')}"] = str(where)
        program = resolve_program(argv[0], env["PATH"], policy)
        outcome = supervise(program, argv, env, folder, policy, ctx, sink, limit)
    if outcome.error:
        raise RunError(f"The {stage} command {argv[0]} could not be started: {outcome.error}")
    if ctx.stopped:
        raise ctx.stop_error()
    if outcome.capped:
        raise RunError(f"The {stage} command printed more than {MAX_OUTPUT:,} bytes; stopped.")
    if outcome.why == "deadline":
        raise DeadlineExceeded(f"The {stage} command passed its deadline of {ctx.timeout:g} s.")
    if outcome.signal is not None:
        raise RunError(f"The {stage} command {argv[0]} was killed by signal {outcome.signal}.")
    last = outcome.stderr.strip().splitlines()[-1][:300] if outcome.stderr.strip() else ""
    if outcome.exit not in codes:
        raise RunError(
            f"The {stage} command {argv[0]} exited with status {outcome.exit}; the action "
            f"expects {', '.join(map(str, codes))}.",
            last,
        )
    return outcome


# --------------------------------------------------------------------------- the lock


class FileLock(Lock):
    """An ``flock`` on a file of this machine's: it goes with the process holding it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(self.fd)


def lock_file(name: str) -> Path:
    """Where the lock ``name`` lives: a folder of this user's in the temporary folder."""
    folder = Path(tempfile.gettempdir()) / f"playbook-locks-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        # someone else made it first (a shared /tmp): their folder is not our lock's place
        raise ShellRefused(
            f"Refused: {folder} is not a private folder of yours; the lock cannot live there.",
            "Remove it (it holds only lock files) and run again.",
        )
    return folder / (hashlib.sha256(name.encode("utf-8")).hexdigest()[:32] + ".lock")


# --------------------------------------------------------------------------- the writer


class ShellWriter(Writer):
    """Carries out a shell action's commands, stage by stage, in the sandbox."""

    kind: ClassVar[str] = "shell"
    schemes: ClassVar[frozenset[str]] = frozenset({"local"})
    """Target schemes it honours (the engine checks them where it knows this attribute;
    :func:`_check` refuses any other itself)."""
    operations: ClassVar[tuple[str, ...]] = ("commands",)
    records_writes: ClassVar[bool] = True

    def has_backup(self, request: WriteRequest) -> bool:
        return request.do.get("backup") != "none"

    def plan(self, request: WriteRequest, ctx: RunContext) -> Plan:
        out = Sink(None, keep=ITEMS_SHOWN)
        outcome = _run(request, "plan", ctx, out, write=False)
        writes = list(request.do["writes"])
        warnings = [f"Apply may write under: {', '.join(writes)} (and nowhere else)."]
        if not self.has_backup(request):
            warnings.append(
                "This action keeps no backup (backup: none): once applied, it cannot be "
                "rolled back."
            )
        return Plan(
            counts={"lines": outcome.lines, "paths": len(writes)},
            items=[str(r.get("line", "")) for r in out.rows],
            touches=len(writes),
            warnings=warnings,
        )

    def backup(self, request: WriteRequest, plan: Plan, ctx: RunContext, out: Sink) -> int:
        before = {p: tree_print(p) for p in request.do["writes"]}
        head: dict[str, Any] = {"format": BACKUP_FORMAT, "rule": BACKUP_RULE, "before": before}
        plan.private["before"] = before
        if not self.has_backup(request):
            out.add({**head, "none": True})
            return 0
        out.add(head)
        outcome = _run(request, "backup", ctx, out, write=False)
        if outcome.lines_cut:
            raise RunError(
                f"The backup command printed {outcome.lines_cut} line(s) longer than the "
                "4,000 bytes a line may hold; the backup would not be whole.",
                "Print shorter lines (base64 -w 76). No backup, no apply.",
            )
        if any("\ufffd" in str(r.get("line", "")) for r in out.rows[1:]):
            raise RunError(
                "The backup command printed bytes that are not UTF-8 text; the backup would "
                "not be what it printed.",
                "Pipe binary output through base64. No backup, no apply.",
            )
        return int(outcome.lines)

    def lock(self, request: WriteRequest, ctx: RunContext) -> Lock:
        path = lock_file(request.lock_name or f"playbook:action:{request.action_id}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = os.pread(fd, 300, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            raise LockHeld(
                f"The lock {request.lock_name} is held by {held or 'another run'}.",
                "Another run of this action is in progress on this machine; wait for it.",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, request.holder.encode("utf-8"), 0)
        return FileLock(fd)

    def apply(
        self, request: WriteRequest, plan: Plan, ctx: RunContext, written: Written | None = None
    ) -> dict[str, int]:
        written = written if written is not None else Written(None)
        writes = [str(p) for p in request.do["writes"]]
        before = plan.private.get("before") or {}
        for path in writes:  # the seed-002 lesson: never act on a stale view
            if path in before and tree_print(path) != before[path]:
                raise NothingWritten(
                    f"{path} changed after the backup; the apply command was not run.",
                    "Start again from the dry run, so the backup holds what apply replaces "
                    "(name in writes: only what the action changes, not a live folder).",
                )
        for path in writes:  # before it starts: a killed apply leaves these rows
            written.record(os.fsencode(path), PENDING)
        written.commit()
        out = Sink(None, keep=0)
        try:
            outcome = _run(request, "apply", ctx, out, write=True)
        finally:
            # The command's tree is gone (ended, or killed by its supervisor): what it
            # left is final, and is what a rollback compares with.
            for path in writes:
                written.record(os.fsencode(path), tree_print(path))
            written.commit()
        return {"exit_code": int(outcome.exit or 0), "lines": int(outcome.lines)}

    def rollback(
        self,
        request: WriteRequest,
        backup: Iterator[dict[str, Any]],
        ctx: RunContext,
        undo: Undo | None = None,
    ) -> dict[str, int]:
        undo = undo if undo is not None else Undo(None, force=True)
        rows = list(backup)
        head = rows[0] if rows and "format" in rows[0] else {}
        if head.get("none"):
            raise ShellRefused("Refused: this run kept no backup; there is nothing to restore.")
        before: dict[str, Any] = head.get("before") or {}
        decided = []
        for path in request.do["writes"]:
            verdict = undo.decide(os.fsencode(path), tree_print(path), before.get(path, ...))
            decided.append((path, verdict))
        verdicts = {v for _, v in decided}
        done = {"restored": 0, "already": 0, "untouched": 0, "held_back": 0}
        if "keep" in verdicts:  # one command restores all or none: keep them all
            for path, verdict in decided:
                if verdict == "keep":
                    undo.settle(path, verdict)
                else:
                    done["held_back"] += 1
            return done
        if verdicts & {"restore", "force"}:
            text = "\n".join(str(r.get("line", "")) for r in rows if "line" in r) + "\n"
            out = Sink(None, keep=0)
            _run(request, "rollback", ctx, out, write=True, files={"backup_file": text})
        for path, verdict in decided:
            if verdict in ("restore", "force"):
                done["restored"] += 1
            else:
                done[verdict] += 1
            undo.settle(path, verdict)
        return done
