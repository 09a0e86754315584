"""Small drills for the tests: the redis-index-loss runbook with a few thousand messages.

The shipped drill loads seed 001's full 234,485 messages (seconds of set-up); tests of
the drill machinery need the same shape, not the same size.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from helpers import ROOT

MESSAGES = 3_000
"""Enough for every one of the 6,049 index ids to be used (the largest family has 2,040)."""


def small_runbook(folder: Path, services: str = "", script: str | None = None) -> Path:
    """A copy of redis-index-loss whose drill loads MESSAGES messages; ``services`` adds
    lines under ``services:`` (e.g. ``"    db: postgres\\n"``); ``script`` replaces the
    drill script's text."""
    text = (ROOT / "runbooks" / "redis-index-loss.yaml").read_text()
    text = text.replace(
        "      generate: discord-messages\n",
        f"      generate: discord-messages\n      with: {{messages: {MESSAGES}}}\n",
    )
    if services:
        text = text.replace(
            "  services:\n    cache: redis\n", "  services:\n    cache: redis\n" + services
        )
    drills = folder / "drills"
    drills.mkdir(parents=True, exist_ok=True)
    shipped = (ROOT / "runbooks" / "drills" / "redis-index-loss.yaml").read_text()
    (drills / "redis-index-loss.yaml").write_text(script if script is not None else shipped)
    path = folder / "small-drill.yaml"
    path.write_text(text)
    return path


def sandbox_processes(folder_prefix: str) -> dict[int, str]:
    """Live processes working in, or naming, a folder under ``folder_prefix``: the
    servers (redis-server rewrites its command line but works in its --dir; PostgreSQL
    in its data folder) and the guardian (which names the folder)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if state != "Z" and (folder_prefix in cmdline or cwd.startswith(folder_prefix)):
            found[int(entry.name)] = cmdline
    return found


def gone(pid: int, within: float = 20.0) -> bool:
    """Whether ``pid`` has exited, waiting for it at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the poll interval of waiting for another process to exit
    return not Path(f"/proc/{pid}").exists()


def drill_folders(tmp: Path) -> list[Path]:
    return sorted(p for p in tmp.glob("playbook-drill-*") if p.is_dir())


INCIDENT_ID = re.compile(r"incident (drill-\d{8}-[a-z0-9]{4}) opened")


REDIS_LABEL = "redis-server 7.2.4 (sandbox, 127.0.0.1:40001)"
MONGO_LABEL = "mongomock: a MongoDB stand-in in this process, not a real server"
"""playbook.adapters.mongo.standin.LABEL, as a drill with a Mongo target records it."""


def drill_payload(speed: float = 10, services: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``drill`` block as DrillRun.payload() writes it, without a sandbox."""
    return {
        "title": "The rebuild script deleted every index",
        "runbook": "redis-index-loss",
        "source": "Seeds 000 and 001",
        "briefing": "The analytics dashboards show empty projects.",
        "speed": speed,
        "services": services or {"cache": REDIS_LABEL},
        "fingerprint": {"cache": {"items": 6049, "sha256": "ab" * 32}},
        "setup": {
            "sandbox_seconds": 0.31,
            "load_seconds": 9.84,
            "fingerprint_seconds": 1.12,
            "fault_seconds": 0.29,
        },
    }
