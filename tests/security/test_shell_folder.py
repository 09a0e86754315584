"""A shell diagnostic's private folder is removed however the run ends: SIGHUP (the
terminal closed), SIGKILL of playbook, SIGKILL of playbook and its supervisor together
(then by the next shell run), and a program that made the folder hard to remove.

Each case runs the real `playbook diag run` in its own process, waits for the program to
have written into its folder (a file the test sees appear), signals, and then looks at
the temporary directory itself and at /proc for processes of the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from playbook.adapters.shell.runner import FOLDER_PREFIX, private_folder, process_tag

PLAYBOOK = """\
version: 1
id: folder
title: Folder clean-up
service: a service
severity:
  default: P2
  levels:
    - {id: P2, name: High, response: 1h, resolution: 8h, status_update_every: 1h}
  escalation_path: [on-call]
assessment:
  id: assessment
  title: A
  steps:
    - {id: a, title: A, items: [x]}
phases:
  - id: p1
    title: P1
    stage: investigation
    starts: 0m
    ends: 1h
    steps:
      - {id: s, title: S, items: [y]}
diagnostics:
  slow:
    kind: shell
    title: writes into its folder, then waits
    target: local
    timeout: 10m
    argv:
      - python3
      - -c
      - |
        import pathlib, time
        pathlib.Path('big.bin').write_bytes(bytes(1000000))
        pathlib.Path('marker').write_text('written')
        time.sleep(300)
      - MARKER
  quick:
    kind: shell
    title: prints one line
    target: local
    timeout: 1m
    argv: [echo, hello]
  nested:
    kind: shell
    title: makes its folder hard to remove
    target: local
    timeout: 5m
    argv:
      - /usr/bin/python3
      - -c
      - |
        import os
        os.symlink(OUTSIDE, 'link-out')
        os.mkdir('unlistable', 0o300)
        open('unlistable/hidden', 'w').write('x')
        for i in range(1100):  # deeper than shutil.rmtree can recurse
            os.mkdir('d')
            os.chdir('d')
            open('f', 'w').write('x')
        print('nested')
"""


class Run:
    """A playbook data directory, its own config (targets and the shell opt-in, so the
    case runs with or without Landlock), and `playbook diag run` in a process."""

    def __init__(self, root: Path, marker: str, outside: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"  # the runs' TMPDIR: their private folders land here
        self.tmp.mkdir()
        config = root / "config" / "playbook"
        config.mkdir(parents=True)
        (config / "playbook.toml").write_text(
            '[targets]\nlocal = "local:"\n[shell]\nallow_unsandboxed = true\n'
        )
        self.env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(root / "config"),
            "PLAYBOOK_HOME": str(root / "home"),
            "TMPDIR": str(self.tmp),
            "PYTHONUNBUFFERED": "1",
        }
        book = root / "runbooks" / "folder.yaml"
        book.parent.mkdir()
        book.write_text(PLAYBOOK.replace("MARKER", marker).replace("OUTSIDE", repr(str(outside))))
        opened = self.playbook("open", str(book), "--title", "t", "--json")
        self.incident = json.loads(opened.stdout)["id"]

    def playbook(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "playbook", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=300,
            check=False,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def start(self, diagnostic: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "playbook", "diag", "run", self.incident, diagnostic],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )

    def folders(self) -> list[Path]:
        return sorted(p for p in self.tmp.iterdir() if p.name.startswith(FOLDER_PREFIX))


def wait_for(condition: Callable[[], object], what: str, seconds: float = 60) -> None:
    """Poll a condition on the file system or /proc (bounded), never a fixed sleep."""
    ends = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > ends:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker`` (the run's program)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
    return found


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                data = Path(f"/proc/{entry}/stat").read_bytes()
                if int(data[data.rfind(b")") + 2 :].split()[1]) == pid:
                    found.append(int(entry))
    return found


@pytest.fixture
def marker() -> Iterator[str]:
    value = f"pbfolder{os.getpid()}x{time.monotonic_ns()}"
    yield value
    for pid in processes_with(value):  # whatever a case left running
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "keep.txt").write_text("kept")
    return folder


@pytest.fixture
def run(tmp_path: Path, marker: str, outside: Path) -> Run:
    return Run(tmp_path, marker, outside)


def started(run: Run, marker: str) -> tuple[subprocess.Popen[str], Path]:
    """`diag run slow` once its program has written into its folder; that folder."""
    proc = run.start("slow")

    def written() -> bool:
        return any((f / "marker").exists() for f in run.folders())

    wait_for(written, "the program to write into its private folder")
    (folder,) = [f for f in run.folders() if (f / "marker").exists()]
    return proc, folder


def test_sighup_ends_the_run_and_removes_its_folder(run: Run, marker: str) -> None:
    proc, folder = started(run, marker)
    proc.send_signal(signal.SIGHUP)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 8, err  # cancelled, recorded as an error verdict
    assert "Cancelled" in err + _out
    assert not folder.exists()  # where it lands: the temporary directory
    assert run.folders() == []
    assert processes_with(marker) == []  # and the program is gone


def test_sigkill_of_playbook_the_supervisor_removes_the_folder(run: Run, marker: str) -> None:
    proc, folder = started(run, marker)
    supervisor = children_of(proc.pid)
    assert supervisor, "the supervisor is playbook's child"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    wait_for(lambda: not folder.exists(), "the supervisor to remove the folder")
    wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in supervisor), "it to exit")
    assert run.folders() == []
    assert processes_with(marker) == []


def test_sigkill_of_both_leaves_the_folder_until_the_next_shell_run(run: Run, marker: str) -> None:
    proc, folder = started(run, marker)
    (supervisor,) = children_of(proc.pid)
    (program,) = children_of(supervisor)
    assert processes_with(marker) == [program]
    os.kill(supervisor, signal.SIGKILL)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    wait_for(lambda: not processes_with(marker), "the program to die with its supervisor")
    assert folder.exists()  # nobody was left to remove it: the limit SECURITY.md states
    in_use = run.tmp / f"{FOLDER_PREFIX}{process_tag(os.getpid())}-inuse"
    in_use.mkdir()  # a folder of a playbook that still runs (this process)
    done = run.playbook("diag", "run", run.incident, "quick")
    assert done.returncode == 0, done.stderr
    assert not folder.exists()  # the next run swept it
    assert in_use.exists()  # and left the live one alone
    in_use.rmdir()


def test_a_folder_made_hard_to_remove_is_removed_and_nothing_outside(
    run: Run, outside: Path
) -> None:
    done = run.playbook("diag", "run", run.incident, "nested")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nested" in done.stdout
    assert run.folders() == []  # 1,100 folders deep, one unlistable, a link out: all gone
    assert (outside / "keep.txt").read_text() == "kept"  # the link was not followed


def test_the_folder_is_named_for_its_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    with private_folder() as folder:
        assert folder.name.startswith(f"{FOLDER_PREFIX}{process_tag(os.getpid())}-")
    assert not folder.exists()
