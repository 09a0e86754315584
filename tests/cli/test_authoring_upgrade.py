"""`playbook upgrade`: an open incident moves to its edited playbook, recorded in the
log with both digests and the difference, and never at the cost of what was ticked."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers import ROOT

from playbook.core.state import fold
from playbook.service.upgrade import file_changed
from playbook.store.sqlite import SQLiteStore

ITEM = "assessment.scope.which-users-and-features-are-affected"


@pytest.fixture
def opened(cli, tmp_path: Path) -> tuple[str, Path]:
    assert cli("new", "disk-full", "--dir", str(tmp_path / "books")).exit_code == 0
    path = tmp_path / "books" / "disk-full.yaml"
    result = cli("open", str(path), "--title", "Disk full on db-1", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["id"], path


def _events(cli, incident: str) -> list:
    store = SQLiteStore(cli.home)
    try:
        return list(store.read(incident))
    finally:
        store.close()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_upgrade_records_the_difference_and_folds_against_the_new_playbook(cli, opened) -> None:
    incident, path = opened
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    assert cli("check", incident, ITEM).exit_code == 0
    _edit(
        path,
        "        - When did it start?\n",
        "        - When did it start?\n        - Is a backup running?\n",
    )
    after = hashlib.sha256(path.read_bytes()).hexdigest()
    assert "playbook file changed" in (file_changed(fold(_events(cli, incident))) or "")

    result = cli("upgrade", incident, "--yes")
    assert result.exit_code == 0, result.output
    assert "items added: assessment.scope.is-a-backup-running" in result.output

    events = _events(cli, incident)
    upgraded = events[-1]
    assert upgraded.type == "playbook_upgraded"
    assert upgraded.payload["from_sha256"] == before and upgraded.payload["to_sha256"] == after
    assert upgraded.payload["diff"]["items"] == {"added": ["assessment.scope.is-a-backup-running"]}
    state = fold(events)
    assert state.playbook_sha256 == after and file_changed(state) is None
    assert ITEM in state.done  # what was ticked stays ticked
    # The new item is part of the incident now: it can be ticked.
    assert cli("check", incident, "assessment.scope.is-a-backup-running").exit_code == 0
    assert "Playbook upgraded:" in cli("timeline", incident).output


def test_upgrade_refuses_to_orphan_a_ticked_item(cli, opened) -> None:
    incident, path = opened
    assert cli("check", incident, ITEM).exit_code == 0
    _edit(
        path,
        "        - Which users and features are affected?\n",
        "        - Which users are affected?\n",
    )
    count = len(_events(cli, incident))

    result = cli("upgrade", incident, "--yes")
    assert result.exit_code == 4
    assert f"ticked item {ITEM} (Which users and features are affected?)" in result.output
    assert len(_events(cli, incident)) == count  # nothing recorded

    # Unticked, the same edit goes through.
    assert cli("uncheck", incident, ITEM).exit_code == 0
    assert cli("upgrade", incident, "--yes").exit_code == 0
    assert fold(_events(cli, incident)).checklist.get(ITEM) is None


def test_upgrade_refuses_to_drop_the_phase_the_incident_is_in(cli, opened) -> None:
    incident, path = opened
    _edit(path, "  - id: response\n", "  - id: respond\n")
    _edit(path, "      phase: response\n", "      phase: respond\n")
    result = cli("upgrade", incident, "--yes")
    assert result.exit_code == 4
    assert "phase response, the phase the incident is in" in result.output


def test_upgrade_needs_a_confirmation(cli, opened) -> None:
    incident, path = opened
    _edit(path, "title: Disk full\n", "title: Disk full (edited)\n")
    count = len(_events(cli, incident))
    result = cli("upgrade", incident)  # no terminal, no --yes
    assert result.exit_code == 2
    assert "--yes" in result.output
    assert len(_events(cli, incident)) == count


def test_upgrade_when_nothing_changed_records_nothing(cli, opened) -> None:
    incident, _path = opened
    count = len(_events(cli, incident))
    result = cli("upgrade", incident, "--yes")
    assert result.exit_code == 0 and "already follows" in result.output
    assert len(_events(cli, incident)) == count


def test_upgrade_refuses_another_playbook(cli, opened) -> None:
    incident, _path = opened
    result = cli(
        "upgrade", incident, "--playbook", str(ROOT / "runbooks" / "stale-backup.yaml"), "--yes"
    )
    assert result.exit_code == 4
    assert "follows 'disk-full'" in result.output


async def test_the_app_says_when_the_playbook_file_changed(tmp_path: Path, clock) -> None:
    """Opened in the app, an incident whose playbook file was edited since says so once;
    after the upgrade it does not."""
    from tui_support import SIZE, make_app, on_incident

    from playbook.adapters.plugins import load_playbook
    from playbook.service import Service
    from playbook.service import upgrade as upgrading
    from playbook.service.authoring import new_playbook
    from playbook.store.memory import MemoryStore

    path = new_playbook("disk-full", tmp_path)[0]
    service = Service(MemoryStore(), clock=clock, actor="alice")
    incident = service.open(load_playbook(path), "Disk full").id
    _edit(path, "title: Disk full\n", "title: Disk full (edited)\n")

    app = make_app(service, load_playbook(path), resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        assert any("playbook file changed" in said for said in app.said)
        assert any(f"playbook upgrade {incident}" in said for said in app.said)

    upgrading.upgrade(service.context, upgrading.plan(service.context, incident))
    app = make_app(service, load_playbook(path), resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        assert not any("playbook file changed" in said for said in app.said)
