"""What happens when processes die, race, or run out of disk: no acknowledged event is lost."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import ROOT, run_playbook

from playbook.service import Service
from playbook.store.sqlite import SQLiteStore

WRITER = textwrap.dedent(
    """
    import sys
    from playbook.service import Service
    from playbook.store.sqlite import SQLiteStore

    data_dir, incident, tag, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    service = Service(SQLiteStore(data_dir), actor=tag)
    for k in range(count):
        service.note(incident, f"{tag}:{k}")
        print(f"ack {tag}:{k}", flush=True)  # printed only after the append returned
    """
)


def _writer(data_dir: Path, incident: str, tag: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(data_dir), incident, tag, str(count)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _notes(data_dir: Path, incident: str) -> list[str]:
    store = SQLiteStore(data_dir)
    try:
        events = store.read(incident)
    finally:
        store.close()
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "sequence has a hole"
    return [e.payload["text"] for e in events if e.type == "note_added"]


def test_sigkill_at_random_moments_loses_no_acknowledged_event(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    opener = SQLiteStore(data_dir)
    incident = Service(opener).open(None, "killed writer").id
    opener.close()
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    acknowledged: list[str] = []
    for round_ in range(30):
        proc = _writer(data_dir, incident, f"r{round_}", 10_000)
        assert proc.stdout is not None
        for _ in range(rng.randint(1, 25)):
            line = proc.stdout.readline()
            assert line.startswith("ack "), f"writer died early (seed {seed})"
            acknowledged.append(line.split()[1])
        proc.send_signal(signal.SIGKILL)  # mid-append, most likely
        rest, _ = proc.communicate()
        acknowledged += [line.split()[1] for line in rest.splitlines() if line.startswith("ack ")]
        stored = _notes(data_dir, incident)
        missing = [a for a in acknowledged if a not in stored]
        assert not missing, f"lost {missing[:5]} after kill {round_} (seed {seed})"
        assert [s for s in stored if s in set(acknowledged)] == acknowledged, "reordered"
    conn = sqlite3.connect(data_dir / "incidents.sqlite3")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def test_concurrent_writers_neither_lose_nor_reorder(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    opener = SQLiteStore(data_dir)
    incident = Service(opener).open(None, "four responders").id
    opener.close()
    writers = [_writer(data_dir, incident, f"w{n}", 60) for n in range(4)]
    for proc in writers:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        assert out.count("ack ") == 60
    stored = _notes(data_dir, incident)
    assert len(stored) == 240
    for n in range(4):
        mine = [s for s in stored if s.startswith(f"w{n}:")]
        assert mine == [f"w{n}:{k}" for k in range(60)]


FULL_DISK = textwrap.dedent(
    """
    import json, subprocess, sys
    from playbook.errors import StoreError
    from playbook.service import Service
    from playbook.store.sqlite import SQLiteStore

    data_dir = sys.argv[1]
    service = Service(SQLiteStore(data_dir))
    incident = service.open(None, "disk fills").id
    acked, error = [], None
    for k in range(10_000):
        try:
            service.note(incident, f"{k}:" + "x" * 2000)
        except StoreError as exc:
            error = str(exc)
            break
        acked.append(k)
    cli = subprocess.run(
        [sys.executable, "-m", "playbook", "--data-dir", data_dir, "note", incident, "y" * 4000],
        capture_output=True, text=True,
    )
    service.store.close()
    reread = Service(SQLiteStore(data_dir)).get(incident)
    stored = [int(e.payload["text"].split(":")[0]) for e in reread.events if e.type == "note_added"]
    print(json.dumps({"acked": acked, "stored": stored, "error": error,
                      "cli_rc": cli.returncode, "cli_err": cli.stderr}))
    """
)


def test_a_full_disk_is_reported_and_loses_nothing_recorded(tmp_path: Path) -> None:
    """A real ENOSPC: a 256 KiB tmpfs in a private mount namespace (no root needed)."""
    assert shutil.which("unshare"), "util-linux unshare is needed for the full-disk test"
    mount = tmp_path / "tiny"
    mount.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(FULL_DISK)
    shell = f'mount -t tmpfs -o size=256k tmpfs "{mount}" && exec "{sys.executable}" "{script}" "{mount}/data"'
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", shell],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["error"] and "NOT recorded" in result["error"]
    assert "full" in result["error"] or "disk" in result["error"]
    assert result["acked"], "nothing was written before the disk filled"
    assert result["stored"][: len(result["acked"])] == result["acked"]
    assert result["cli_rc"] == 5
    assert "NOT recorded" in result["cli_err"] and "Traceback" not in result["cli_err"]


def test_unusable_data_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_playbook("--data-dir", str(blocker / "data"), "open", "--title", "x")
    assert result.returncode == 5
    assert "Cannot create the data directory" in result.stderr
    assert "Traceback" not in result.stderr
