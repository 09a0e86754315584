"""The CLI's documentation says what the CLI does: every argument is explained in its
command's help, the README names every command, and the exit codes in `playbook --help`,
in each command's help and in the README are those of the one table
(:class:`playbook.errors.ExitCode`). (That every command and option has help at all is
checked by tests/cli/test_cli.py.)
"""

from __future__ import annotations

import re

import click
import pytest
from helpers import ROOT, run_playbook

from playbook.cli import main
from playbook.cli.diag import EXIT_BY_VERDICT
from playbook.errors import ExitCode

README = (ROOT / "README.md").read_text()


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix}{name} ")
    return found


COMMANDS = _commands(main)


def _exit_statements(text: str) -> list[str]:
    """The sentences of prose ``text`` that say which exit status means what."""
    prose = re.sub(r"```.*?```", "", text, flags=re.S)  # code: a shell diagnostic's exit_codes
    found = []
    for paragraph in re.split(r"\n\s*\n", prose):
        flat = " ".join(paragraph.split())
        for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z`(])", flat):
            if re.search(r"\b(exits?|exit status)\b", sentence, re.I) and (
                "non-zero exit" not in sentence
            ):
                found.append(sentence)
    return found


def _codes_in(sentence: str) -> list[int]:
    """The exit codes a sentence names: "0 pass, 10 warn", "1 if not", "(exit 1)"."""
    named = re.findall(r"\b(\d{1,3})\b(?= [a-z(])", sentence)
    named += re.findall(r"\bexit (\d+)\b", sentence)
    return [int(n) for n in named]


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[name for name, _ in COMMANDS])
def test_every_argument_is_named_in_its_commands_help(name: str, command: click.Command) -> None:
    """Usage shows `playbook check INCIDENT STEP_OR_ITEM...`; the help says what each is."""
    for param in command.params:
        if isinstance(param, click.Argument):
            shown = (param.metavar or param.name or "").upper().rstrip(".")
            assert shown in (command.help or ""), f"`playbook {name} --help` never says {shown}"


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[name for name, _ in COMMANDS])
def test_the_readme_names_every_command(name: str, command: click.Command) -> None:
    # `playbook diag run …`, or the README's shorthand `playbook incidents · show ID · …`
    said = rf"(playbook|·) {re.escape(name)}\b"
    assert re.search(said, README), f"the README never shows `playbook {name}`"


def test_playbook_help_ends_with_the_exit_code_table() -> None:
    shown = run_playbook("--help")
    assert shown.returncode == ExitCode.OK
    lines = shown.stdout.rstrip("\n").splitlines()
    table = lines[-len(ExitCode) :]
    assert [line.split(None, 1) for line in table] == [
        [str(code.value), code.description] for code in ExitCode
    ]


def test_the_readmes_exit_code_table_is_the_table() -> None:
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", README, flags=re.M)
    assert rows == [(str(code.value), code.description) for code in ExitCode]


def test_every_exit_status_the_readme_and_the_help_name_is_in_the_table() -> None:
    statements = _exit_statements(README)
    for _name, command in COMMANDS:
        statements += _exit_statements((command.help or "").replace("\b", ""))
    named = [(code, sentence) for sentence in statements for code in _codes_in(sentence)]
    assert len(named) > 20  # the README's and the commands' statements were found
    table = {code.value for code in ExitCode}
    assert [(code, s) for code, s in named if code not in table] == []


def test_the_readme_gives_diag_runs_exit_status_per_verdict_as_the_cli_sets_it() -> None:
    per_verdict = ", ".join(f"{code.value} {verdict}" for verdict, code in EXIT_BY_VERDICT.items())
    assert f"`diag run` exits {per_verdict}." in " ".join(README.split())
    assert f"Exit status: {per_verdict} (" in (main.commands["diag"].commands["run"].help or "")
