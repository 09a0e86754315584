"""Every shipped runbook's drill, played headless in-process.

For each built-in runbook with a ``drill:`` block (found by loading them all, so a new
drill is picked up without touching this file): the sandbox starts, the fault is
injected, the runbook's own drill script detects and repairs it step by step, the data
comes back to its fingerprint, and stopping the drill leaves no folder, process, port or
stand-in behind. Then, for the drills of seeds 002 and 004, that the fault really is
there before any repair; and that ``playbook validate`` names a drill step that does not
fit its service, and an unknown generator, by file, line and key.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from drill_support import sandbox_processes

from playbook.adapters.mongo import standin
from playbook.adapters.plugins import load_playbook as load
from playbook.core.loader import LoadedPlaybook, PlaybookInvalid
from playbook.drill.run import DrillRun
from playbook.drill.script import load_script, run_script
from playbook.resources import builtin_runbooks
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore


def _drilled() -> list[str]:
    return sorted(
        name for name, path in builtin_runbooks().items() if load(path).playbook.drill is not None
    )


DRILLED = _drilled()
OUTRID3R = 974994910581256293


def _loaded(name: str) -> LoadedPlaybook:
    return load(builtin_runbooks()[name])


def _script(loaded: LoadedPlaybook) -> Any:
    spec = loaded.playbook.drill
    assert spec is not None and spec.script is not None, "a shipped drill names its script"
    return load_script((loaded.path.parent / spec.script).resolve())


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_the_drills_are_discovered() -> None:
    assert {"redis-index-loss", "stale-backup", "mongo-schema"} <= set(DRILLED)


@pytest.mark.parametrize("name", DRILLED)
def test_the_drill_detects_and_repairs_its_fault_and_leaves_nothing_behind(
    name: str, tmp_path: Path
) -> None:
    loaded = _loaded(name)
    script = _script(loaded)
    assert script.steps[-1].check is None or script.steps[-1].check == "restored"
    store = SQLiteStore(tmp_path / "drills")
    service = Service(store, actor="drill-test")
    run = DrillRun.start(loaded)
    try:
        folder = run.sandbox.folder
        kinds = dict(run.sandbox.kinds)
        uris = {t: target.uri for t, target in run.targets.items()}
        running = sandbox_processes(str(folder))  # the servers and the guardian
        state = run.open(service, script.speed)
        assert state.drill is not None
        results = run_script(service, run, state.id, script)
        said = "\n".join(f"{r.number}. {r.step}: {r.said}" for r in results if not r.ok)
        assert all(r.ok for r in results), said
        assert len(results) == len(script.steps)
        assert [r.step for r in results].count("check") >= 1
        checks = service.get(state.id).state.drill_checks
        assert checks and checks[-1].restored, "the last check must find the data restored"
    finally:
        run.stop()
        store.close()

    assert not folder.exists()
    assert running, "the guardian at least names the sandbox's folder"
    assert not sandbox_processes(str(folder))
    assert not any(Path(f"/proc/{pid}").exists() for pid in running)
    for target, kind in kinds.items():
        if kind == "http":
            port = int(uris[target].rsplit(":", 1)[1])
            assert _refused(port), f"the HTTP stub of {target!r} still answers"
        elif kind == "mongo":
            fresh = standin.client(uris[target])  # made anew: the drill's data is gone
            try:
                assert fresh.get_default_database().list_collection_names() == []
            finally:
                standin.forget(uris[target])


# --------------------------------------------------------------------------- the faults


@pytest.fixture
def drill_service(tmp_path: Path) -> Iterator[Service]:
    store = SQLiteStore(tmp_path / "drills")
    yield Service(store, actor="drill-test")
    store.close()


def _before_repair(
    name: str, service: Service, diagnostics: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, str]]:
    """A drill started and checked before anything is repaired: the comparison with the
    fingerprint, and the verdict of each of ``diagnostics`` (name -> params), in order."""
    run = DrillRun.start(_loaded(name))
    try:
        state = run.open(service)
        _state, result = run.check(service, state.id)
        verdicts = {}
        for diagnostic, params in diagnostics.items():
            _s, payload = service.run_diagnostic(state.id, diagnostic, params, run.targets)
            verdicts[diagnostic] = payload["verdict"]
    finally:
        run.stop()
    return result, verdicts


def test_stale_backup_drill_loses_outrid3r_before_repair(drill_service: Service) -> None:
    result, verdicts = _before_repair(
        "stale-backup",
        drill_service,
        {
            "newest-write": {},
            "backup-freshness": {},  # newest_write defaults from newest-write
            "lost-records": {},
            "staff-present": {"staff_id": OUTRID3R},
        },
    )
    assert not result["restored"]
    db = result["targets"]["db"]
    assert (db["missing"], db["changed"], db["extra"]) == (1, 0, 0)
    assert str(OUTRID3R) in db["examples"][0] and "RDwD35HRMt" in db["examples"][0]
    assert verdicts == {
        "newest-write": "pass",
        "backup-freshness": "fail",
        "lost-records": "fail",
        "staff-present": "fail",
    }


def test_mongo_schema_drill_shows_every_injected_fault_before_repair(
    drill_service: Service,
) -> None:
    diagnostics = _loaded("mongo-schema").playbook.diagnostics  # all take defaults
    result, verdicts = _before_repair("mongo-schema", drill_service, {d: {} for d in diagnostics})
    assert not result["restored"]
    mongo = result["targets"]["mongo"]
    # two unique indexes dropped; one post's guildId turned into a number; three copies
    assert (mongo["missing"], mongo["changed"], mongo["extra"]) == (2, 1, 3)
    assert sorted(e for e in mongo["examples"] if e.startswith("missing")) == [
        "missing discordinteractionlogs index interactionId_1",
        "missing discordtaskposts index messageId_1",
    ]
    assert verdicts == {
        "indexes-task-posts": "fail",
        "indexes-allowlists": "pass",
        "indexes-server-mappings": "pass",
        "indexes-account-links": "pass",
        "indexes-interaction-logs": "fail",
        "duplicate-values": "fail",
        "missing-unique-field": "pass",
        "orphaned-task-posts": "fail",
        "wrong-type": "fail",
    }


# --------------------------------------------------------------------------- validation


def test_validate_names_a_step_that_does_not_fit_its_service_and_an_unknown_generator(
    cli: Cli, tmp_path: Path
) -> None:
    text = (builtin_runbooks()["redis-index-loss"]).read_text()
    text = text.replace(
        "      generate: discord-messages\n",
        "      generate: discord-mesages\n"
        "    - target: cache\n"
        "      title: SQL sent to a Redis\n"
        "      sql: DELETE FROM staff_invite_configs\n",
    )
    (tmp_path / "drills").mkdir()
    (tmp_path / "drills" / "redis-index-loss.yaml").write_text("steps:\n  - check: restored\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    lines = text.splitlines()
    generator_line = lines.index("      generate: discord-mesages") + 1
    sql_line = lines.index("      sql: DELETE FROM staff_invite_configs") + 1

    result = cli("validate", str(bad))
    assert result.exit_code == 1, result.output
    assert (
        f"{bad}:{generator_line}:17: drill.load[0].generate: no data generator named "
        "'discord-mesages' (did you mean 'discord-messages'?)"
    ) in result.output
    assert (
        f"{bad}:{sql_line}:12: drill.load[1].sql: 'sql' does not fit target 'cache', "
        "a redis service"
    ) in result.output
    assert "Traceback" not in result.output

    with pytest.raises(PlaybookInvalid) as caught:
        load(bad)
    assert {(p.line, p.path) for p in caught.value.problems} == {
        (generator_line, "drill.load[0].generate"),
        (sql_line, "drill.load[1].sql"),
    }
