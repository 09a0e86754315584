"""What comes from the terminal: arguments and standard input that are not UTF-8, and
whether there is a terminal at all for the app.

Bytes that are not UTF-8 cannot be stored in the incident log, exported or shown
faithfully; they used to surface as an internal error halfway through a command. They
are refused before the command runs, as usage errors (exit 2) naming where they were.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import select
import signal
import sys
import threading
from collections.abc import Sequence

import click

from playbook.core.text import inline
from playbook.errors import UsageError


def _undecodable(value: str) -> bool:
    """True when ``value`` came from bytes that are not UTF-8 (Python keeps such bytes
    as lone surrogates; the UTF-8 codec is the judge of what it cannot encode)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _shown_bytes(value: str) -> str:
    """An argument as its original bytes, the invalid ones shown as ``\\xff``."""
    return inline(os.fsencode(value).decode("utf-8", "backslashreplace"))


def refuse_undecodable(ctx: click.Context, args: Sequence[str]) -> None:
    """Refuse a command line holding bytes that are not UTF-8, naming the argument.

    Such text cannot be stored in the incident log, exported or shown faithfully, and
    used to surface as an internal error halfway through a command.
    """
    for position, arg in enumerate(args, start=1):
        if not _undecodable(arg):
            continue
        before = args[position - 2] if position > 1 else ""
        option, value = "", arg
        if arg.startswith("--") and "=" in arg:
            option, value = arg.split("=", 1)
        elif before.startswith("-") and not _undecodable(before):
            option = before
        of = f" (the value of {option})" if option else ""
        raise click.UsageError(
            f"Argument {position}{of} is not valid UTF-8 text: {_shown_bytes(value)}. "
            "Type it again in UTF-8 (check the terminal's and the locale's encoding).",
            ctx,
        )


def _stdin_not_utf8(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler for standard input: bytes that are not UTF-8 are a usage error."""
    bad = ""
    if isinstance(error, UnicodeDecodeError):
        bad = f" (byte 0x{error.object[error.start]:02x})"
    raise UsageError(
        f"Standard input is not UTF-8 text{bad}.",
        "Convert it first, e.g. `iconv -f latin1 -t utf-8`, or save it as a file and "
        "give its path in a note.",
    )


codecs.register_error("playbook.stdin", _stdin_not_utf8)


def strict_stdin() -> None:
    """Decode standard input strictly, so `note ID -` fails clearly on non-UTF-8 bytes
    (Python's default under a C locale turns them into surrogates that fail later)."""
    stream = sys.stdin
    reconfigure = getattr(stream, "reconfigure", None)
    if stream is None or reconfigure is None:
        return
    with contextlib.suppress(ValueError, OSError, io.UnsupportedOperation):
        reconfigure(errors="playbook.stdin")


def safe_output() -> None:
    """Write what cannot be encoded (a lone surrogate that reached a print unescaped) as
    a ``\\ud800`` escape instead of dying with UnicodeEncodeError halfway through a
    command. Every value from outside is escaped before it is printed
    (:mod:`playbook.core.text`); this is the net under that rule, not the rule."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if stream is None or reconfigure is None:
            continue
        with contextlib.suppress(ValueError, OSError, io.UnsupportedOperation):
            reconfigure(errors="backslashreplace")


def require_terminal(command: str, instead: str) -> None:
    """Refuse to start the app without a terminal to draw on and read keys from.

    The app reads keys from standard input and draws on standard error (Textual's
    choice; standard output may be redirected). Without a terminal it wrote escape
    codes into a file and waited for keys that never came.
    """
    missing = [
        name
        for name, stream in (("standard input", sys.stdin), ("standard error", sys.stderr))
        if stream is None or not stream.isatty()
    ]
    if missing:
        raise UsageError(
            f"{command} needs a terminal, and {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not one.",
            instead,
        )


def ask(question: str) -> str:
    """What the responder typed at a prompt on the terminal (``""`` for just Enter).

    A signal stays a signal: Ctrl-C, SIGTERM or SIGHUP at a prompt ends the command with
    130, 143 or 129, as anywhere else, with what was recorded (click's prompt turned all
    three into one ``Abort`` that exited 1). The end of input (Ctrl-D) is an empty
    answer: every prompt of ours takes only the phrase it shows, so nothing goes ahead.
    """
    try:
        # The question is shown inside the guard: a signal that lands once it is on the
        # screen but before the wait begins (a busy machine) still ends its line.
        click.echo(f"{question}: ", nl=False, err=True)
        line = _read_line()
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            click.echo("", err=True)  # what follows starts on a line of its own
        raise
    if line is None:
        click.echo("", err=True)  # the prompt's line was left open
        return ""
    return line


def confirm(question: str) -> bool:
    """A yes/no question on the terminal, "no" unless the responder types y or yes
    (Enter and the end of input are "no"); a signal ends the command as :func:`ask`
    says."""
    while True:
        answer = ask(f"{question} [y/N]").strip().lower()
        if answer in ("", "n", "no"):
            return False
        if answer in ("y", "yes"):
            return True
        click.echo("Please answer y or n.", err=True)


def _read_line() -> str | None:
    """One line from standard input without its line break; None at the end of input.

    A blocking ``read`` is not woken by a signal that arrives just before it starts: the
    signal's Python handler would run only after the responder pressed Enter, so a
    SIGTERM at the prompt was lost and the command waited forever (a race seen on a busy
    machine). The wait is a ``select`` on the terminal and on the interpreter's signal
    wake-up descriptor, which holds a byte for every signal since it was set, so none
    can slip between the check and the wait."""
    if sys.stdin is None:  # started with standard input closed: nothing will be typed
        return None
    try:
        fd = sys.stdin.fileno()
    except (ValueError, io.UnsupportedOperation):
        fd = -1  # not a file (a test's input): nothing to wait for
    if fd < 0 or threading.current_thread() is not threading.main_thread():
        found = sys.stdin.readline()  # only the main thread is told of signals
        return found.removesuffix("\n").removesuffix("\r") if found else None
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    previous = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    data = b""
    try:
        while b"\n" not in data:
            ready, _, _ = select.select([fd, wake_r], [], [])
            if wake_r in ready:
                os.read(wake_r, 512)  # the signal's handler runs now, between two lines
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    finally:
        signal.set_wakeup_fd(previous)
        os.close(wake_r)
        os.close(wake_w)
    if not data:
        return None
    return data.split(b"\n", 1)[0].removesuffix(b"\r").decode("utf-8", "playbook.stdin")
