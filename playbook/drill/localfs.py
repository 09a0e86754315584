"""A drill's ``local`` service: this machine, with a small file system of its own.

Shell diagnostics and shell actions run here (target ``local:``), so a drill cannot give
them a server; it gives them a folder to look at and to repair instead. The folder is a
tmpfs of :data:`SIZE` bytes, mounted at ``/srv/playbook-drill/<target>``:

* a tmpfs, because ``df`` must see a file system the drill can fill past a threshold
  without touching the machine's own disks (a plain folder would report the host's disk);
* under ``/srv``, because a shell diagnostic's sandbox reads the installed system
  (``/usr``, ``/etc``, ``/var``, ``/srv``…) but never temporary folders, where the rest
  of the sandbox lives;
* at a fixed path, because a drill script is data written before the drill runs and
  names it (``params: {path: /srv/playbook-drill/host}``), as a runbook names
  ``/var/log/app``. One drill per target name at a time: a second is refused.

Mounting needs root (or CAP_SYS_ADMIN); without it the service cannot start and the
drill ends with exit 12, saying so. What it costs: a drill killed with ``kill -9`` leaves
the mount behind (the guardian removes folders, not mounts); the next start says how to
remove it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path("/srv/playbook-drill")
SIZE = 8 * 1024 * 1024
"""The tmpfs's size: small, so a few megabytes of logs fill it."""


class LocalFolder:
    """A tmpfs mounted for one target; :meth:`stop` unmounts and removes it."""

    uri = "local:"

    def __init__(self, name: str) -> None:
        """Mount it; a RuntimeError (title, advice) says why it could not be."""
        self.path = ROOT / name
        if self.path.exists():
            raise RuntimeError(
                f"{self.path} is in use: another drill holds it, or a killed one left it.",
                f"If no drill is running: umount {self.path} && rmdir {self.path}",
            )
        ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.path.mkdir(mode=0o755)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0755", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            with contextlib.suppress(OSError):
                self.path.rmdir()
            raise RuntimeError(
                f"Could not mount a tmpfs at {self.path} for the drill's local service.",
                (done.stderr.strip() or "mount failed")
                + " (a local service needs root or CAP_SYS_ADMIN to mount it).",
            )

    def stop(self) -> None:
        subprocess.run(["umount", str(self.path)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            self.path.rmdir()


def files_items(folder: Path, patterns: list[str]) -> dict[str, str]:
    """Each file matching a glob pattern under ``folder``: its SHA-256, by relative path."""
    out: dict[str, str] = {}
    for pattern in patterns:
        if pattern.startswith("/") or ".." in Path(pattern).parts:
            raise ValueError(f"Fingerprint pattern {pattern!r} leads out of the folder.")
        for path in sorted(folder.glob(pattern)):
            if path.is_file() and not path.is_symlink():
                out[f"file {path.relative_to(folder)}"] = hashlib.sha256(
                    path.read_bytes()
                ).hexdigest()
    return out


def rotated_logs(
    folder: Any,
    name: str = "app.log",
    current_kib: int = 256,
    recent: int = 1,
    old: int = 6,
    old_kib: int = 1200,
    old_days: int = 10,
) -> str:
    """An application's log folder: ``name`` (the live log), ``recent`` rotated logs a day
    old, and ``old`` rotated logs of ``old_kib`` KiB each, ``old_days`` days old, which
    is what fills the disk. Contents are fixed by their names, so a fingerprint is
    the same on every run."""
    if not isinstance(folder, Path):
        raise TypeError("rotated-logs is for a local service")
    if "/" in name or name in ("", ".", ".."):
        raise ValueError("name is a file name")

    def write(path: Path, kib: int, age_days: float) -> None:
        line = f"{path.name} 2026-11-01T00:00:00Z INFO request served\n".encode()
        path.write_bytes((line * (kib * 1024 // len(line) + 1))[: kib * 1024])
        stamp = time.time() - age_days * 86400
        os.utime(path, (stamp, stamp))

    write(folder / name, current_kib, 0)
    for n in range(1, recent + 1):
        write(folder / f"{name}.{n}", 64, 1)
    for n in range(recent + 1, recent + old + 1):
        write(folder / f"{name}.{n}", old_kib, old_days + n)
    total = current_kib + 64 * recent + old_kib * old
    return f"{name}, {recent} recent and {old} old rotated logs ({total:,} KiB)"
