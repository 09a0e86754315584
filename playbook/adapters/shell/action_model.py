"""What a playbook may say of a shell guarded action: its commands and where they write.

The writer is :mod:`playbook.adapters.shell.action`; this module is read whenever a
playbook is (through :attr:`ShellAdapter.action_model`), so it imports no sandbox.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from playbook.adapters.shell.models import EnvName
from playbook.core.model import ActionBase, Model, ParamRef


class ShellCommand(Model):
    """One program run from an argument list (never a shell string) in the kernel's
    sandbox, as a shell diagnostic is, without network."""

    argv: list[str | ParamRef] = Field(min_length=1)
    """The program and its arguments; ``{$param: name}`` is one argument, and a value
    starting with ``-`` is refused (an action's parameters are never options)."""
    env: dict[EnvName, str | ParamRef] = Field(default_factory=dict)
    exit_codes: list[Annotated[int, Field(ge=0, le=255)]] = Field([0], min_length=1)
    """Exit statuses that mean the command did what it should; any other fails the stage."""


def absolute_path(path: str) -> str:
    if not os.path.isabs(path) or os.path.normpath(path) != path.rstrip("/") or "\x00" in path:
        raise ValueError("write an absolute, normalised path (/var/log/app)")
    if path.rstrip("/") == "":
        raise ValueError("the whole file system is not a place an action may write")
    return path.rstrip("/")


WritePath = Annotated[str, AfterValidator(absolute_path)]


class ShellCommands(Model):
    """The stages as commands: ``plan`` shows what would change (it writes nothing: the
    kernel gives it no write access outside its private folder), ``backup`` prints what
    ``rollback`` needs to put things back (or is ``none``), ``apply`` makes the change,
    and only ``apply`` and ``rollback`` may write, only under ``writes``."""

    operation: Literal["commands"]
    plan: ShellCommand
    """The dry run: its output is shown to the responder and recorded."""
    backup: ShellCommand | Literal["none"]
    """Prints the backup (UTF-8 text, kept line by line as the backup file; pipe a
    binary archive through ``base64``); ``none`` says there is none: the confirmation
    phrase then ends in ``no backup`` and no rollback is ever offered."""
    apply: ShellCommand
    rollback: ShellCommand | None = None
    """Puts things back from the backup, whose copy it finds at ``$PLAYBOOK_BACKUP_FILE``.
    Required with a backup; not allowed with ``backup: none``."""
    writes: list[WritePath | ParamRef] = Field(min_length=1)
    """The folders or files ``apply`` and ``rollback`` may change (the kernel refuses a
    write anywhere else); ``plan`` and ``backup`` may read them. ``{$param: name}`` is
    a path the responder gives (a drill's folder, another host's log folder); it is held
    to the same rule when the run starts."""

    @model_validator(mode="after")
    def _rollback_needs_backup(self) -> ShellCommands:
        if self.backup == "none" and self.rollback is not None:
            raise ValueError("a rollback needs a backup to read; with backup: none, omit it")
        if self.backup != "none" and self.rollback is None:
            raise ValueError("a backup is for a rollback: declare the rollback command")
        return self


class ShellAction(ActionBase):
    """A guarded change made by commands on the responder's machine, in the sandbox."""

    kind: Literal["shell"]
    do: ShellCommands
