"""The exit codes a script or a responder reads, where they land: the status of a real
`playbook` process, and what its incident log and the data hold afterwards.

Each code means one thing (playbook/errors.py); these are the cases where a number used
to mean something else: a prompt answered with Ctrl-C, SIGTERM or end of input exited
1 ("Aborted!"), and an app that crashed exited 1, which `drill` also uses for a failed
drill.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from conftest import Cli
from servers import RedisServer, load_seed_000, redis_server

from playbook import errors
from playbook.errors import ExitCode, PlaybookError

RUNBOOK = str(Path(__file__).resolve().parents[2] / "runbooks" / "redis-index-loss.yaml")
LIVE = "discord:messages:[pcu]*"
PROMPT = b"to apply (anything else stops here)"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


@pytest.fixture
def broken(redis: RedisServer) -> None:
    """Seed 000's incident: the index sets deleted, the messages intact."""
    with redis.client() as client:
        client.flushall()
        load_seed_000(client, messages=2_100)
        for key in list(client.scan_iter(match=LIVE, count=10_000)):
            client.delete(key)


def live_keys(redis: RedisServer) -> list[bytes]:
    with redis.client() as client:
        return list(client.scan_iter(match=LIVE, count=10_000))


def read_until(fd: int, wanted: bytes, seen: bytearray, within: float = 60.0) -> bool:
    """Read the terminal until ``wanted`` shows (bounded; a condition, not a sleep)."""
    deadline = time.monotonic() + within
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return False
            if not chunk:
                return False
            seen.extend(chunk)
    return wanted in seen


def at_the_prompt(cli: Cli, redis: RedisServer) -> tuple[str, subprocess.Popen[bytes], int, bytes]:
    """`playbook action run` on a terminal, waiting at its confirmation prompt after the
    dry run and the backup: (incident, process, the terminal's master side, the phrase
    it asks for)."""
    opened = cli("open", RUNBOOK, "--title", "indexes gone", "--json")
    incident = json.loads(opened.output)["id"]
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "playbook", "--data-dir", str(cli.home), "action", "run"),
            *(incident, "rebuild-indexes", "--target", f"cache={redis.uri}"),
        ],
        stdin=slave,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    os.close(slave)
    seen = bytearray()
    assert read_until(master, PROMPT, seen), seen.decode(errors="replace")
    asked = re.search(rb"Type '([^']+)' to apply", bytes(seen))
    assert asked is not None, seen.decode(errors="replace")
    return incident, proc, master, asked.group(1)


def stages(cli: Cli, incident: str) -> list[str]:
    (row,) = json.loads(cli("action", "status", incident, "--json").output)
    return row["stages"]


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGTERM, ExitCode.TERMINATED), (signal.SIGINT, ExitCode.INTERRUPTED)],
)
def test_a_signal_at_the_confirmation_prompt_exits_with_the_signals_code(
    cli: Cli, redis: RedisServer, broken: None, sig: signal.Signals, code: ExitCode
) -> None:
    incident, proc, master, _phrase = at_the_prompt(cli, redis)
    try:
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == code
        said = bytearray()
        read_until(master, b"was recorded.", said, within=10)
    finally:
        os.close(master)
    # What the command says next starts on a line of its own, not after the prompt.
    # (the prompt's own ": " may arrive after the words the test waited for)
    assert re.match(rb"(: )?\r?\n(interrupted|terminated)", bytes(said)), bytes(said)
    assert stages(cli, incident) == ["dry_run done", "backup done"]  # nothing confirmed
    assert live_keys(redis) == []  # nothing applied


def test_end_of_input_at_the_confirmation_prompt_is_not_confirmed(
    cli: Cli, redis: RedisServer, broken: None
) -> None:
    incident, proc, master, _phrase = at_the_prompt(cli, redis)
    try:
        os.write(master, b"\x04")  # Ctrl-D on an empty line: end of input
        assert proc.wait(timeout=60) == ExitCode.REFUSED
    finally:
        os.close(master)
    assert stages(cli, incident)[:2] == ["dry_run done", "backup done"]
    assert "apply" not in " ".join(stages(cli, incident))
    assert live_keys(redis) == []


def test_the_phrase_typed_at_the_prompt_applies(cli: Cli, redis: RedisServer, broken: None) -> None:
    incident, proc, master, phrase = at_the_prompt(cli, redis)
    try:
        os.write(master, phrase + b"\r")  # as a terminal sends Enter
        assert proc.wait(timeout=60) == ExitCode.OK
    finally:
        os.close(master)
    assert "apply done" in stages(cli, incident)
    assert len(live_keys(redis)) > 0  # the index sets are back


def test_an_app_that_crashed_exits_as_a_bug_not_as_a_failed_check(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Textual prints the traceback of a crash and returns 1; `playbook run` then exits
    70 (a bug), since 1 is what `validate` and `drill` say about a playbook."""
    import playbook.cli.run as run_module
    import playbook.tui.app

    monkeypatch.setattr(run_module, "require_terminal", lambda *_: None)
    monkeypatch.setattr(playbook.tui.app, "run_app", lambda *_a, **_k: 1)
    assert cli("run").exit_code == ExitCode.INTERNAL
    monkeypatch.setattr(playbook.tui.app, "run_app", lambda *_a, **_k: 0)
    assert cli("run").exit_code == ExitCode.OK


def _every_error_class() -> list[type[PlaybookError]]:
    import importlib
    import pkgutil

    import playbook

    for module in pkgutil.walk_packages(playbook.__path__, "playbook."):
        if module.name.endswith("__main__"):
            continue
        importlib.import_module(module.name)
    found, todo = [], [PlaybookError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


def test_every_error_class_takes_its_code_from_the_one_table() -> None:
    classes = _every_error_class()
    assert len(classes) > 15  # the walk found the package's errors
    for cls in classes:
        assert type(cls.exit_code) is ExitCode, (cls, cls.exit_code)
        # A class that names no code falls back to the base's INTERNAL (a bug); every
        # class the package raises says what kind of failure it is.
        assert cls.exit_code is not ExitCode.INTERNAL, cls
    assert click.UsageError.exit_code == errors.UsageError.exit_code  # one code for both
