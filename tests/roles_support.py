"""A copy of the shipped data-integrity playbook that enforces roles (team mode), for the
tests of the commander's authority, the binding handover and the scribe's mark."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import RUNBOOK

from playbook.adapters.plugins import load_playbook
from playbook.core.loader import LoadedPlaybook


def enforced_playbook(folder: Path) -> LoadedPlaybook:
    """The shipped playbook with ``enforce_roles: true`` (its templates and drill script beside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = RUNBOOK.read_text(encoding="utf-8")
    assert "\nroles:\n" in text
    path = folder / "enforced.yaml"
    path.write_text(text.replace("\nroles:\n", "\nenforce_roles: true\nroles:\n", 1), "utf-8")
    for beside in ("templates", "drills"):
        if not (folder / beside).exists():
            shutil.copytree(RUNBOOK.parent / beside, folder / beside)
    return load_playbook(path)
