"""Errors a person can act on, and the one table of the exit codes the CLI uses.

Every failure the CLI reports derives from :class:`PlaybookError`, and every error class
names its code from :class:`ExitCode`; the CLI maps them to exit codes in one place
(:mod:`playbook.cli`) and never shows a traceback for them. Each code has one meaning:
scripts (and the responder reading ``$?`` at 3 a.m.) can tell what happened from the
number alone. `playbook --help` and the README list this table; a test checks both.
"""

from __future__ import annotations

from enum import IntEnum

from playbook.redaction import scrub


class ExitCode(IntEnum):
    """The exit codes of `playbook`, each with the one line that says what it means.

    The numbers are a promise to the scripts that read them: never reuse one for another
    meaning. 0–12 are ours; 70 is ``EX_SOFTWARE`` from sysexits.h; 130 and 143 follow the
    shells' 128 + signal number.
    """

    description: str

    def __new__(cls, value: int, description: str) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    OK = 0, "done: a diagnostic passed, an action was applied and verified"
    PLAYBOOK_FAILED = 1, "a playbook failed its check: it does not validate, or its drill failed"
    USAGE = 2, "the command was called wrongly (an option, an argument, not UTF-8)"
    NOT_FOUND = 3, "no such incident, playbook, item, diagnostic, action or run"
    CONFLICT = 4, "the incident's state does not allow it (closed, already done, …)"
    STORE = 5, "the incident log could not be read or written"
    TEMPLATE = 6, "a status message could not be rendered (missing variable, bad template)"
    REFUSED = 7, "refused before anything was sent or written (could write; not confirmed)"
    RUN_FAILED = 8, "a run against a target did not finish (unreachable, deadline, failed)"
    LOCK_HELD = 9, "someone else holds the action's lock"
    WARN = 10, "a diagnostic's verdict is warn"
    UNHEALTHY = 11, "a diagnostic's verdict is fail, or an action's verify failed"
    SANDBOX = 12, "a drill's sandbox could not be set up (a server, its data, its fault)"
    INTERNAL = 70, "a bug in playbook (PLAYBOOK_DEBUG=1 shows the traceback)"
    HANGUP = 129, "stopped by SIGHUP (the terminal closed)"
    INTERRUPTED = 130, "stopped by Ctrl-C"
    TERMINATED = 143, "stopped by SIGTERM"


class PlaybookError(Exception):
    """A failure with a short title and a message that says what to do.

    A subclass names its :class:`ExitCode`. One that does not (a plugin's own error
    class, say) exits ``INTERNAL``: which kind of failure it is was never said, and that
    is a bug to report rather than a code a script could rely on.
    """

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, title: str, message: str = "") -> None:
        # Every message shown anywhere (CLI, app, events) is built here: a secret the
        # process knows never reaches one, whatever the code that raised it forgot.
        title, message = scrub(title), scrub(message)
        super().__init__(title)
        self.title = title
        self.message = message

    def __str__(self) -> str:
        return f"{self.title}\n{self.message}" if self.message else self.title


class UsageError(PlaybookError):
    """The command was called wrongly (exit 2, like click's own usage errors)."""

    exit_code = ExitCode.USAGE


class NotFound(PlaybookError):
    """An incident, playbook or item that does not exist."""

    exit_code = ExitCode.NOT_FOUND


class Conflict(PlaybookError):
    """The request contradicts the incident's state (e.g. acknowledging twice)."""

    exit_code = ExitCode.CONFLICT


class StoreError(PlaybookError):
    """The incident log could not be read or written (disk full, no permission, …)."""

    exit_code = ExitCode.STORE


class TemplateError(PlaybookError):
    """A status message could not be rendered (missing variable, bad template)."""

    exit_code = ExitCode.TEMPLATE
