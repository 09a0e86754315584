"""The `playbook` command: the group, the one place errors become exit codes, and the
registration of every command. The commands live one group to a module beside this one
(:mod:`~playbook.cli.incidents`, :mod:`~playbook.cli.diag`, :mod:`~playbook.cli.action`,
…) and are thin: each builds the service and calls it.

Errors are mapped to exit codes in one place (:class:`_Group`): a
:class:`~playbook.errors.PlaybookError` prints its title and advice and exits with its
code; click's usage errors exit 2; anything unexpected prints one line (set
``PLAYBOOK_DEBUG=1`` for the traceback) and exits 70. Text that came from a playbook,
a note or a database is printed with control characters escaped.

SIGTERM and SIGHUP (the terminal closed) are handled like Ctrl-C, in the same place: they
raise :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread, so a command that
cancels on Ctrl-C cancels on them too, cleans up (a shell diagnostic's private folder)
and appends nothing or complete events (each store append is one transaction, and the
store refuses an incomplete payload). Exit 130 after Ctrl-C, 143 after SIGTERM, 129
after SIGHUP. A SIGHUP that was ignored when playbook started (``nohup``) stays ignored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

import click

# The modules, not their commands: `playbook.cli.run` stays the module (a test or a
# patch that names it finds it), and each command is named once, below.
from playbook.cli import action, authoring, diag, drill, incidents, run, status, store, trust
from playbook.cli import postmortem as postmortem_cli
from playbook.cli import publish as publish_cli
from playbook.cli import roles as roles_cli
from playbook.cli.context import CliApp
from playbook.cli.terminal import refuse_undecodable, safe_output, strict_stdin
from playbook.core.text import inline, printable
from playbook.errors import ExitCode, PlaybookError

EXIT_STATUS = "\b\nExit status, the same for every command:\n" + "\n".join(
    f"{code.value:>4}  {code.description}" for code in ExitCode
)
"""The exit-code table, at the foot of `playbook --help`: where a responder who just saw
a number looks first. Built from :class:`~playbook.errors.ExitCode`, so it cannot drift."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: handled exactly like Ctrl-C, with its own exit code."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = signum

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.HANGUP if self.signum == signal.SIGHUP else ExitCode.TERMINATED


def _terminated(signum: int, frame: object) -> NoReturn:
    raise Terminated(signum)


ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that end a command the way Ctrl-C does (see the module's docstring)."""


def _fail(error: PlaybookError) -> NoReturn:
    click.secho(f"error: {printable(error.title)}", fg="red", err=True)
    if error.message:
        click.echo(printable(error.message), err=True)
    sys.exit(error.exit_code)


class _Group(click.Group):
    """The one place errors become messages and exit codes, and the one place text that
    is not UTF-8 (in the arguments, on standard input) is refused."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        refuse_undecodable(ctx, args)
        strict_stdin()
        safe_output()
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in ENDING_SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup keeps it ignored
                    previous[signum] = signal.signal(signum, _terminated)
        try:
            return super().invoke(ctx)
        except PlaybookError as error:
            _fail(error)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except BrokenPipeError:
            # The reader (head, less) went away: not an error of ours.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(ExitCode.OK)
        except KeyboardInterrupt as exc:
            if isinstance(exc, Terminated):
                name = signal.Signals(exc.signum).name
                with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
                    click.echo(
                        f"terminated ({name}); everything shown as recorded was recorded.",
                        err=True,
                    )
                sys.exit(exc.exit_code)
            click.echo("interrupted; everything shown as recorded was recorded.", err=True)
            sys.exit(ExitCode.INTERRUPTED)
        except Exception as exc:
            if os.environ.get("PLAYBOOK_DEBUG"):
                raise
            from playbook.redaction import scrub  # ~2 ms at start-up; needed only here

            click.secho(
                f"internal error: {type(exc).__name__}: {inline(scrub(str(exc)))}",
                fg="red",
                err=True,
            )
            click.echo("This is a bug in playbook; PLAYBOOK_DEBUG=1 shows the traceback.", err=True)
            sys.exit(ExitCode.INTERNAL)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_STATUS,
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="PLAYBOOK_HOME",
    help="Where incidents are kept (default: the user's data directory; env PLAYBOOK_HOME).",
)
@click.option("--actor", envvar="PLAYBOOK_ACTOR", help="Who is acting (default: $USER).")
@click.option(
    "--drills",
    is_flag=True,
    help="Work on drills instead of real incidents (they are kept apart), "
    "e.g. `playbook --drills export ID`.",
)
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    help="The team's shared incident log, postgresql://… (default: env PLAYBOOK_STORE, "
    "[store] url in your own playbook.toml, else the local SQLite file). ${ENV} is expanded.",
)
@click.version_option(package_name="playbook", message="%(prog)s %(version)s")
@click.pass_context
def main(
    ctx: click.Context,
    data_dir: Path | None,
    actor: str | None,
    drills: bool,
    store_url: str | None = None,
) -> None:
    """Run incident-response playbooks from the terminal.

    Every change to an incident is an event, written to disk before it is shown
    as done. `playbook run` opens the app; the other commands drive an incident
    headless, for scripts and for when the app is not at hand.
    """
    if drills:
        # Inside the branch: the drill package brings pydantic, which start-up must not
        # pay for when --drills is not given (tests/test_architecture.py).
        from playbook.drill import drills_dir
        from playbook.resources import default_data_dir

        data_dir = drills_dir(data_dir or default_data_dir())
    ctx.obj = CliApp(data_dir, actor, store_url, drills=drills)
    ctx.call_on_close(ctx.obj.close)  # "offline: N events not yet shared", on stderr


for command in (
    # driving an incident
    incidents.open_incident,
    incidents.ack,
    incidents.severity,
    incidents.phase,
    incidents.scenario,
    incidents.check,
    incidents.uncheck,
    incidents.note,
    incidents.rename,
    incidents.escalate,
    incidents.resolve,
    incidents.close,
    incidents.incidents,
    incidents.show,
    incidents.timeline,
    incidents.export,
    status.status,
    publish_cli.publish,
    roles_cli.role,
    roles_cli.handover,
    roles_cli.updates,
    roles_cli.timers,
    # the postmortem's facts (export --format postmortem writes the draft)
    postmortem_cli.impact,
    postmortem_cli.followup,
    postmortem_cli.pin,
    postmortem_cli.retro,
    # diagnostics, guarded actions, the app, drills
    diag.diag,
    action.action,
    run.run,
    drill.drill,
    # writing playbooks, trusting a runbooks folder
    authoring.validate,
    authoring.schema,
    authoring.list_playbooks,
    authoring.variables,
    authoring.new,
    authoring.upgrade,
    trust.trust_command,
    # the team's shared store
    store.store,
):
    main.add_command(command)
