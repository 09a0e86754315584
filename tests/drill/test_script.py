"""A headless drill's verdict is the drill's own decision: whether every step found what
it expected and the data ended as the script said, with the data compared at the end and
that comparison recorded in the drill's incident (read back from the store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from drill_support import small_runbook

from playbook.adapters.plugins import load_playbook as load
from playbook.drill.run import DrillRun
from playbook.drill.script import Verdict, load_script, play
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore


@pytest.fixture
def drills(tmp_path: Path) -> Iterator[Service]:
    store = SQLiteStore(tmp_path / "drills")
    yield Service(store, actor="drill-test")
    store.close()


def _play(folder: Path, service: Service, script: str) -> tuple[Verdict, list[bool]]:
    """Play ``script`` on the small redis-index-loss drill: the verdict, and each data
    check the incident recorded (restored or not), as the store has them."""
    runbook = small_runbook(folder, script=script)
    loaded = load(runbook)
    run = DrillRun.start(loaded)
    try:
        incident = run.open(service).id
        parsed = load_script(runbook.parent / "drills" / "redis-index-loss.yaml")
        verdict = play(service, run, incident, parsed)
    finally:
        run.stop()
    return verdict, [c.restored for c in service.get(incident).state.drill_checks]


def test_a_script_that_expects_the_data_not_restored_passes_when_it_is_not(
    drills: Service, tmp_path: Path
) -> None:
    script = "steps:\n  - diagnostic: index-drop\n    expect: fail\n  - check: not-restored\n"
    verdict, checks = _play(tmp_path / "runbooks", drills, script)
    assert verdict.passed and not verdict.restored
    assert [s.ok for s in verdict.steps] == [True, True]
    assert checks == [False]  # the script's own check ended it: no second comparison


def test_a_script_that_stops_early_fails_and_the_data_is_still_compared(
    drills: Service, tmp_path: Path
) -> None:
    script = "steps:\n  - diagnostic: index-drop\n    expect: pass\n  - check: restored\n"
    verdict, checks = _play(tmp_path / "runbooks", drills, script)
    assert not verdict.passed and not verdict.restored
    assert [s.ok for s in verdict.steps] == [False]
    assert checks == [False]  # compared by the verdict, since the script never got there


def test_a_script_that_ends_without_a_check_is_judged_on_the_data_as_it_ends(
    drills: Service, tmp_path: Path
) -> None:
    script = "steps:\n  - diagnostic: index-drop\n    expect: fail\n"
    verdict, checks = _play(tmp_path / "runbooks", drills, script)
    assert not verdict.passed and not verdict.restored
    assert [s.ok for s in verdict.steps] == [True]
    assert checks == [False]
