"""Errors a person can act on: a title, a message, and the exit code the CLI uses.

Every failure the CLI reports derives from :class:`PlaybookError`; the CLI maps them to
exit codes in one place and never shows a traceback for them.
"""

from __future__ import annotations


class PlaybookError(Exception):
    """A failure with a short title and a message that says what to do."""

    exit_code = 1

    def __init__(self, title: str, message: str = "") -> None:
        from playbook.redaction import scrub

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

    exit_code = 2


class NotFound(PlaybookError):
    """An incident, playbook or item that does not exist."""

    exit_code = 3


class Conflict(PlaybookError):
    """The request contradicts the incident's state (e.g. acknowledging twice)."""

    exit_code = 4


class StoreError(PlaybookError):
    """The incident log could not be read or written (disk full, no permission, …)."""

    exit_code = 5


class TemplateError(PlaybookError):
    """A status message could not be rendered (missing variable, bad template)."""

    exit_code = 6
