"""The real app in a real terminal: tmux starts it, send-keys drives it, capture-pane reads it.

Waits poll the screen for the expected text (bounded by a deadline), never a fixed delay.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ROOT

PLAYBOOK = [sys.executable, "-m", "playbook"]


class Tmux:
    """One tmux server on a private socket, so nothing touches the user's sessions."""

    def __init__(self, home: Path) -> None:
        self.socket = f"playbook-test-{uuid.uuid4().hex[:8]}"
        self.home = home

    def tmux(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30
        )
        return out.stdout

    def start(self, *args: str, width: int = 80, height: int = 24) -> None:
        env = f"PLAYBOOK_HOME={self.home} PYTHONPATH={ROOT} TERM=xterm-256color"
        command = " ".join([env, *PLAYBOOK, *args, "; echo EXITED=$?; sleep 300"])
        self.tmux("new-session", "-d", "-s", "app", "-x", str(width), "-y", str(height), command)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "app")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "app", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "app", "-l", text)

    def wait_for(self, text: str, deadline: float = 30.0) -> str:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.05)  # poll interval of the condition wait, not a synchronisation delay
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{self.screen()}")

    def kill(self) -> None:
        self.tmux("kill-server")
        # The server exits after it answers: a session started at once on the same socket
        # could land in the dying server and vanish with it (an empty screen, now and
        # then). The next start gets a server of its own.
        self.socket = f"playbook-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def term(tmp_path: Path) -> Iterator[Tmux]:
    assert shutil.which("tmux"), "tmux is needed for the terminal test"
    session = Tmux(tmp_path / "home")
    yield session
    session.kill()


def cli(home: Path, *args: str) -> str:
    env = {**os.environ, "PLAYBOOK_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*PLAYBOOK, *args], capture_output=True, text=True, env=env, check=True
    ).stdout


def app_pid(home: Path) -> int:
    """The app's own process: the one started with this test's PLAYBOOK_HOME."""
    pids = subprocess.run(["pgrep", "-f", "playbook run"], capture_output=True, text=True).stdout
    for pid in map(int, pids.split()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        # The tmux server's command line mentions `playbook run` too: match the app itself.
        if (
            argv[1:4] == [b"-m", b"playbook", b"run"]
            and f"PLAYBOOK_HOME={home}".encode() in environ
        ):
            return pid
    raise AssertionError("the app's process was not found")


def test_a_responder_in_a_real_terminal(term: Tmux) -> None:
    # The too-small notice is tested with Pilot (tests/tui/test_app.py): a detached tmux
    # pane resized from a pytest-launched server did not reach the app here, although the
    # same steps from a shell do (see the issue note), so this test does not resize.
    term.start("run")
    term.wait_for("New incident on Data Integrity Playbook")
    term.keys("Enter")
    term.wait_for("Title: what is wrong")
    term.type("Orders missing since 02:10")
    term.keys("C-s")
    shown = term.wait_for("Assemble Response Team")
    assert " P2 " in shown and "Respond" in shown and "Resolve" in shown
    [incident] = [s["id"] for s in json.loads(cli(term.home, "incidents", "--json"))]
    term.keys("Tab")
    term.keys("Space")
    term.wait_for("[x] Notify on-call engineer")
    term.keys("a")
    term.wait_for("Respond met")
    term.keys("n")
    term.wait_for("Note for the timeline")
    term.type("[bold]not markup[/] [@click=app.quit]x[/]")
    term.keys("C-s")
    term.wait_for("Note saved")

    state = json.loads(cli(term.home, "show", incident, "--json"))
    assert state["status"] == "acknowledged"
    assert "immediate-response.assemble-response-team.notify-on-call-engineer" in state["done"]

    # Kill the terminal's program outright; everything shown as done must come back.
    pid = app_pid(term.home)
    os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < end:
        time.sleep(0.05)  # poll interval of the condition wait
    assert not Path(f"/proc/{pid}").exists(), "the killed app is still there"
    term.kill()
    term.start("run", "--resume", incident)
    shown = term.wait_for("[x] Notify on-call engineer")
    assert "Respond met" in shown
    term.keys("t")
    shown = term.wait_for("Timeline of")
    assert "[bold]not markup[/]" in shown

    term.keys("Escape")
    term.wait_for("Assemble Response Team")
    term.keys("Escape")
    term.wait_for("New incident on Data Integrity Playbook")
    term.keys("q")
    assert "EXITED=0" in term.wait_for("EXITED=")
