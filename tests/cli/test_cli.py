"""The headless CLI: a whole incident from the command line, help everywhere, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from helpers import append_raw, run_playbook

from playbook.cli import main
from playbook.core.state import fold
from playbook.render.export import from_json
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix}{name} ")
    return found


@pytest.mark.parametrize(
    ("name", "command"), _commands(main), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_command_has_help(cli, name: str, command: click.Command) -> None:
    assert (command.help or "").strip(), f"`playbook {name}` has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"option {param.opts} of `playbook {name}` has no help"
    result = cli(*name.split(), "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_a_whole_incident_headless(cli, tmp_path: Path) -> None:
    opened = cli(
        "open",
        "data-integrity",
        "--title",
        "Orders missing",
        "--trigger",
        "backup-verification-failures",
        "--json",
    )
    assert opened.exit_code == 0, opened.output
    incident = json.loads(opened.output)["id"]
    assert cli("ack", incident).exit_code == 0
    steps = [
        "assessment.verify",
        "immediate-response.containment",
        "investigation.detailed-data-analysis",
        "recovery-planning.develop-recovery-strategy",
        "recovery-execution.verify-recovery",
        "service-restoration.final-verification",
    ]
    for step in steps:
        result = cli("check", incident, step)
        assert result.exit_code == 0, result.output
    assert (
        cli("uncheck", incident, "final-verification.document-final-state-of-the-system").exit_code
        == 0
    )
    assert cli("severity", incident, "P1", "--reason", "user accounts affected").exit_code == 0
    initial = cli("status", incident, "initial", "--set", "specific_issues=missing orders")
    progress = cli("status", incident, "progress", "--set", "estimated_time=2 hours")
    resolution = cli(
        "status",
        incident,
        "resolution",
        "--set",
        "brief_cause=a migration",
        "--set",
        "brief_resolution=a restore",
        "--set",
        "data_loss=none",
    )
    for result in (initial, progress, resolution):
        assert result.exit_code == 0, result.output
    assert "[RESOLVED] Chatbot Fluxa Data Consistency Issue" in resolution.output
    assert cli("note", incident, "all clear").exit_code == 0
    assert cli("resolve", incident, "--summary", "restored").exit_code == 0
    assert cli("close", incident).exit_code == 0

    md_path, json_path = tmp_path / "review.md", tmp_path / "review.json"
    assert cli("export", incident, "--format", "markdown", "-o", str(md_path)).exit_code == 0
    assert cli("export", incident, "--format", "json", "-o", str(json_path)).exit_code == 0
    events = from_json(json_path.read_text())
    state = fold(events)
    shown = json.loads(cli("show", incident, "--json").output)
    assert shown["status"] == "closed" and shown["severity"] == "P1"
    assert sorted(state.done) == shown["done"]
    assert [m.template for m in state.messages] == ["initial", "progress", "resolution"]
    assert {s.split(".")[0] for s in state.done} >= {s.split(".")[0] for s in steps}
    assert "immediate-response.containment.preserve-evidence-of-the-issue" in state.done
    assert (
        "service-restoration.final-verification.document-final-state-of-the-system"
        not in state.done
    )
    md = md_path.read_text()
    for event in events:
        assert f"\n| {event.seq} | {event.at:%Y-%m-%d %H:%M:%S}Z |" in md
    for message in state.messages:
        assert message.text.rstrip("\n") in md
    assert "- [ ] Document final state of the system" in md
    assert "| P1 |" in md and "user accounts affected" in md


def test_unknown_incident_and_bad_usage_exit_non_zero_without_traceback() -> None:
    missing = run_playbook("show", "nope")
    assert missing.returncode == 3 and "No incident 'nope'" in missing.stderr
    usage = run_playbook("open")
    assert usage.returncode == 2 and "--title" in usage.stderr
    bad_set = run_playbook("open", "--title", "x", "--severity", "P9")
    assert bad_set.returncode == 2 and "Unknown severity 'P9'" in bad_set.stderr
    for result in (missing, usage, bad_set):
        assert "Traceback" not in result.stderr


def test_missing_template_variable_is_named_and_nothing_recorded(cli) -> None:
    incident = json.loads(cli("open", "--title", "x", "--json").output)["id"]
    result = cli("status", incident, "progress")
    assert result.exit_code == 6
    assert "missing: estimated_time" in result.output
    timeline = json.loads(cli("timeline", incident, "--json").output)
    assert [e["type"] for e in timeline] == ["opened"]


def test_typed_control_characters_are_refused_with_where_they_are(cli) -> None:
    opened = cli("open", "--title", "t\x1b]0;pwned\x07itle")
    assert opened.exit_code == 2
    assert "The title contains a control character: \\x1b at character 2." in opened.output
    assert json.loads(cli("incidents", "--json").output) == []  # nothing was opened
    incident = json.loads(cli("open", "--title", "plain", "--json").output)["id"]
    for args, what in (
        (("note", incident, "\x1b[2J[bold]wipe[/]"), "note"),
        (("rename", incident, "a\u202eb"), "title"),
        (("rename", incident, "two\nlines"), "title"),
        (("severity", incident, "P1", "--reason", "x\x9bq"), "reason"),
        (("escalate", incident, "--reason", "bell\x07"), "reason"),
        (("resolve", incident, "--summary", "ok\x1b[0m"), "summary"),
        (("--actor", "eve\x1b[8m", "ack", incident), "actor name"),
    ):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert f"The {what} " in result.output and "control character" in result.output
        assert "Traceback" not in result.output
    # A diagnostic is refused before it runs, not after (its result could not be recorded).
    ran = cli(
        "--actor", "eve\x1b[8m", "diag", "run", incident, "redis-index-drop",
        "--target", "cache=redis://127.0.0.1:9",
    )  # fmt: skip
    assert ran.exit_code == 2 and "The actor name" in ran.output
    assert "Running" not in ran.output and not (cli.home / "evidence").exists()
    assert [e["type"] for e in json.loads(cli("timeline", incident, "--json").output)] == ["opened"]
    # Newlines and tabs are text in a note; a Windows line ending becomes a newline.
    assert cli("note", incident, "line one\r\nline\ttwo").exit_code == 0
    last = json.loads(cli("timeline", incident, "--json").output)[-1]
    assert last["payload"]["text"] == "line one\nline\ttwo"


def test_text_recorded_before_the_policy_is_shown_literally(cli) -> None:
    incident = json.loads(cli("open", "--title", "plain", "--json").output)["id"]
    store = SQLiteStore(cli.home)
    try:
        service = Service(store)
        append_raw(service, incident, "renamed", {"from": "plain", "to": "t\x1b]0;pwned\x07itle"})
        append_raw(service, incident, "note_added", {"text": "\x1b[2J[bold]wipe[/]\u202eevil"})
    finally:
        store.close()
    for args in (("timeline", incident), ("show", incident), ("incidents",)):
        output = cli(*args).output
        assert "\x1b" not in output and "\u202e" not in output and "\x07" not in output
    assert "\\x1b[2J[bold]wipe[/]\\u202eevil" in cli("timeline", incident).output
    as_json = cli("timeline", incident, "--json").output  # the same value, escaped
    assert "\u202e" not in as_json and "\x1b" not in as_json
    assert json.loads(as_json)[-1]["payload"]["text"] == "\x1b[2J[bold]wipe[/]\u202eevil"
    # The title that used to block every status message: a template that does not use
    # it renders, and a rename puts it right.
    assert cli("status", incident, "initial", "--set", "specific_issues=orders").exit_code == 0
    assert cli("rename", incident, "Orders missing").exit_code == 0
    assert json.loads(cli("show", incident, "--json").output)["title"] == "Orders missing"


def test_arguments_and_stdin_that_are_not_utf8_are_usage_errors(tmp_path: Path) -> None:
    home = tmp_path / "argv-home"
    env = {"PLAYBOOK_HOME": str(home)}
    bad = os.fsdecode(b"\xff\xfe bad")  # what Python makes of such bytes in argv
    for args, named in (
        (("open", "--title", bad), "Argument 3 (the value of --title)"),
        (("open", f"--title={bad}"), "Argument 2 (the value of --title)"),
        (("--actor", bad, "incidents"), "Argument 2 (the value of --actor)"),
        (("note", bad, "text"), "Argument 2"),
    ):
        result = run_playbook(*args, env=env)
        assert result.returncode == 2, result.stderr
        assert f"{named} is not valid UTF-8 text: \\xff\\xfe bad" in result.stderr
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert json.loads(run_playbook("incidents", "--json", env=env).stdout) == []

    opened = run_playbook("open", "--title", "ok", "--json", env=env)
    incident = json.loads(opened.stdout)["id"]
    piped = subprocess.run(
        [sys.executable, "-m", "playbook", "note", incident, "-"],
        input=b"caf\xe9 latin-1\n",
        capture_output=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert piped.returncode == 2
    assert b"Standard input is not UTF-8 text (byte 0xe9)" in piped.stderr
    assert b"Traceback" not in piped.stderr
    timeline = json.loads(run_playbook("timeline", incident, "--json", env=env).stdout)
    assert [e["type"] for e in timeline] == ["opened"]  # nothing half-recorded
    good = subprocess.run(
        [sys.executable, "-m", "playbook", "note", incident, "-"],
        input="café, in UTF-8\n".encode(),
        capture_output=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert good.returncode == 0, good.stderr
    timeline = json.loads(run_playbook("timeline", incident, "--json", env=env).stdout)
    assert timeline[-1]["payload"]["text"] == "café, in UTF-8\n"


def test_the_app_refuses_to_start_without_a_terminal(tmp_path: Path) -> None:
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    env = {**os.environ, "PLAYBOOK_HOME": str(tmp_path / "home")}
    for command in (["run"], ["drill"]):
        with out.open("wb") as stdout, err.open("wb") as stderr:
            # A hang here (the old behaviour) ends the test with TimeoutExpired.
            code = subprocess.run(
                [sys.executable, "-m", "playbook", *command],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=env,
                timeout=60,
            ).returncode
        assert code == 2
        written = out.read_bytes() + err.read_bytes()
        assert b"\x1b" not in written  # no escape codes in the files
        assert f"playbook {command[0]} needs a terminal".encode() in written
        assert b"standard input and standard error are not one" in written


def test_a_note_too_long_says_what_to_do_instead(cli) -> None:
    from playbook.service import MAX_NOTE

    incident = json.loads(cli("open", "--title", "long", "--json").output)["id"]
    result = cli("note", incident, "-", input="x" * (MAX_NOTE + 1))
    assert result.exit_code == 2
    assert f"limited to {MAX_NOTE:,} characters; this one has {MAX_NOTE + 1:,}" in result.output
    assert "Save the text as a file" in result.output and "note its path" in result.output
    assert "attach" not in result.output  # there is no attach feature to point at
    assert [e["type"] for e in json.loads(cli("timeline", incident, "--json").output)] == ["opened"]


def test_python_dash_m_and_the_version() -> None:
    result = run_playbook("--version")
    assert result.returncode == 0 and result.stdout.startswith("playbook ")


def test_incidents_are_found_by_suffix_and_listed(cli) -> None:
    incident = json.loads(cli("open", "--title", "find me", "--json").output)["id"]
    assert cli("ack", incident[-4:]).exit_code == 0
    listing = cli("incidents").output
    assert incident in listing and "acknowledged" in listing and "find me" in listing


def test_diag_list_shows_what_would_run(cli) -> None:
    import json as _json

    rows = _json.loads(cli("diag", "list", "--json").output)
    by_id = {r["id"]: r for r in rows}
    assert by_id["reindex"]["writes"] is True
    assert by_id["orphaned-references"]["target"] == "app-db"
    assert "investigation.detailed-data-analysis" in by_id["orphaned-references"]["used_by"]
    text = cli("diag", "list", "--details").output
    assert "reindex (writes)" in text and "never run as a diagnostic" in text
    assert "--set collection=" in text
