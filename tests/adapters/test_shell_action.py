"""The shell guarded action (kind ``shell``) through its stages, in the kernel's sandbox.

What lands is files on disk and the incident's recorded stages: the plan's output in the
dry run's event, the backup file beside the incident, the files apply removed and the
rollback put back, and the file a write outside ``writes:`` would have created (the
kernel refuses it: it does not exist).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbook.adapters.shell import sandbox_linux
from playbook.adapters.writers import read_backup
from playbook.service import Service
from playbook.service.actions import ConfirmationMismatch, NothingToRollBack
from playbook.targets import SchemeRefused, Target

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not sandbox_linux.support().complete,
    reason="the kernel's sandbox (Landlock ABI 6, seccomp) is what these tests check",
)

SH = "/bin/sh"


def actions(logs: Path, outside: Path) -> dict[str, Any]:
    listing = {"argv": ["find", str(logs), "-name", "*.log", "-type", "f"]}
    return {
        "clean-logs": {
            "kind": "shell",
            "title": "Remove the old log files",
            "target": "here",
            "do": {
                "operation": "commands",
                "plan": listing,
                # one line per file: its name, a tab, its content in base64
                "backup": {
                    "argv": [
                        SH,
                        "-c",
                        'for f in "$0"/*.log; do printf "%s\\t%s\\n" "${f##*/}" '
                        '"$(base64 -w0 "$f")"; done',
                        str(logs),
                    ]
                },
                "apply": {"argv": [SH, "-c", 'rm -f "$0"/*.log', str(logs)]},
                "rollback": {
                    "argv": [
                        SH,
                        "-c",
                        'while IFS="$(printf "\\t")" read -r n d; do printf %s "$d" | '
                        'base64 -d > "$0/$n"; done < "$PLAYBOOK_BACKUP_FILE"',
                        str(logs),
                    ]
                },
                "writes": [str(logs)],
            },
        },
        "clean-no-backup": {
            "kind": "shell",
            "title": "Remove the old log files, no way back",
            "target": "here",
            "do": {
                "operation": "commands",
                "plan": listing,
                "backup": "none",
                "apply": {"argv": [SH, "-c", 'rm -f "$0"/*.log', str(logs)]},
                "writes": [str(logs)],
            },
        },
        "escape": {
            "kind": "shell",
            "title": "Remove the logs and write beside them",
            "target": "here",
            "do": {
                "operation": "commands",
                "plan": listing,
                "backup": "none",
                "apply": {
                    "argv": [
                        SH,
                        "-c",
                        'rm -f "$0"/*.log; echo pwned > "$1"',
                        str(logs),
                        str(outside),
                    ]
                },
                "writes": [str(logs)],
            },
        },
    }


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.log").write_bytes(b"first\n")
    (folder / "b.log").write_bytes(b"\x00\xffbinary\n")
    (folder / "keep.txt").write_text("not a log")
    return folder


@pytest.fixture
def playbook_file(tmp_path: Path, logs: Path) -> Path:
    text = yaml.safe_load((ROOT / "runbooks" / "stale-backup.yaml").read_text(encoding="utf-8"))
    text.pop("drill", None)
    for phase in [text["assessment"], *text["phases"]]:
        for step in phase.get("steps", []):
            step.pop("actions", None)
    text["actions"] = actions(logs, tmp_path / "outside.txt")
    path = tmp_path / "shell.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False), encoding="utf-8")
    return path


def start(service: Service, playbook_file: Path, action: str) -> Any:
    incident = service.open(playbook_file, "shell action").id
    return service.start_action(incident, action, {}, {"here": Target("here", "local:", "t")})


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def recorded(service: Service, run: Any, stage: str) -> dict[str, Any]:
    found = service.get(run.incident_id).state.actions[run.run_id]
    return found.stage(stage)


def test_plan_backup_apply_and_rollback_give_back_the_same_files(
    sqlite_service: Service, playbook_file: Path, logs: Path
) -> None:
    before = files(logs)
    run = start(sqlite_service, playbook_file, "clean-logs")
    plan = run.dry_run()
    assert files(logs) == before
    assert sorted(plan.items) == [str(logs / "a.log"), str(logs / "b.log")]
    assert sorted(recorded(sqlite_service, run, "dry_run")["items"]) == sorted(plan.items)

    info = run.backup()
    rows = list(read_backup(Path(info["file"]), info["sha256"]))
    assert rows[0]["format"].startswith("playbook-shell-backup/")
    assert [r["line"].split("\t")[0] for r in rows[1:]] == ["a.log", "b.log"]
    assert run.phrase == "here"

    run.confirm("here")
    outcome = run.apply()
    assert outcome.ok, outcome.error
    assert files(logs) == {"keep.txt": b"not a log"}

    numbers = run.rollback("here")
    assert numbers["restored"] == 1 and numbers["kept"] == 0
    assert files(logs) == before  # byte for byte, the binary one too


def test_backup_none_says_so_in_the_phrase_and_offers_no_rollback(
    sqlite_service: Service, playbook_file: Path, logs: Path
) -> None:
    run = start(sqlite_service, playbook_file, "clean-no-backup")
    plan = run.dry_run()
    assert any("no backup" in w for w in plan.warnings)
    info = run.backup()
    assert info["rows"] == 0
    assert run.phrase == "here no backup"
    with pytest.raises(ConfirmationMismatch):
        run.confirm("here")
    run.confirm("here no backup")
    outcome = run.apply()
    assert outcome.ok
    assert files(logs) == {"keep.txt": b"not a log"}
    outcome.ok = False  # even a failed verify would offer nothing
    assert not outcome.rollback_offered
    with pytest.raises(NothingToRollBack):
        run.rollback("here no backup")
    assert files(logs) == {"keep.txt": b"not a log"}


def test_a_write_outside_writes_is_refused_by_the_kernel(
    sqlite_service: Service, playbook_file: Path, logs: Path, tmp_path: Path
) -> None:
    run = start(sqlite_service, playbook_file, "escape")
    run.dry_run()
    run.backup()
    run.confirm(run.phrase)
    outcome = run.apply()
    assert not (tmp_path / "outside.txt").exists()  # the kernel refused to create it
    assert files(logs) == {"keep.txt": b"not a log"}  # inside writes: done
    assert not outcome.ok and "exited with status" in outcome.error


def test_a_path_changed_after_the_apply_is_kept_and_the_rollback_command_not_run(
    sqlite_service: Service, playbook_file: Path, logs: Path
) -> None:
    run = start(sqlite_service, playbook_file, "clean-logs")
    run.dry_run()
    run.backup()
    run.confirm("here")
    assert run.apply().ok
    (logs / "c.log").write_text("someone else's, written since")
    numbers = run.rollback("here")
    assert numbers["restored"] == 0 and numbers["kept"] == 1
    assert run.kept == [f"{logs} changed after the apply"]
    assert files(logs) == {"c.log": b"someone else's, written since", "keep.txt": b"not a log"}


def test_the_plan_cannot_write_even_under_writes(
    sqlite_service: Service, playbook_file: Path, logs: Path, tmp_path: Path
) -> None:
    text = yaml.safe_load(playbook_file.read_text(encoding="utf-8"))
    text["actions"]["clean-logs"]["do"]["plan"] = {
        "argv": [SH, "-c", 'rm -f "$0"/a.log', str(logs)]
    }
    path = tmp_path / "writing-plan.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False), encoding="utf-8")
    run = start(sqlite_service, path, "clean-logs")
    with pytest.raises(Exception, match="exited with status"):
        run.dry_run()
    assert (logs / "a.log").read_bytes() == b"first\n"


@pytest.fixture
def _no_landlock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(sandbox_linux.ABI_CAP_VARIABLE, "0")
    yield


@pytest.mark.usefixtures("_no_landlock")
def test_without_landlock_a_shell_action_is_refused_before_anything_runs(
    sqlite_service: Service, playbook_file: Path, logs: Path
) -> None:
    before = files(logs)
    run = start(sqlite_service, playbook_file, "clean-no-backup")
    with pytest.raises(Exception, match="only inside the kernel's sandbox"):
        run.dry_run()
    assert files(logs) == before


def test_the_cli_asks_for_the_no_backup_phrase_and_offers_no_rollback(
    cli: Any, playbook_file: Path, logs: Path
) -> None:
    import json

    opened = cli("open", str(playbook_file), "--title", "disk full", "--json")
    incident = json.loads(opened.output)["id"]
    listed = {
        a["id"]: a for a in json.loads(cli("action", "list", str(playbook_file), "--json").output)
    }
    assert listed["clean-no-backup"]["confirm"] == "here no backup"  # the phrase the run asks
    target = ("--target", "here=local:")
    refused = cli("action", "run", incident, "clean-no-backup", *target, "--confirm", "here")
    assert refused.exit_code != 0 and "'here no backup'" in refused.output
    assert (logs / "a.log").exists()  # known wrong before anything ran

    done = cli("action", "run", incident, "clean-no-backup", *target, "--confirm", "here no backup")
    assert done.exit_code == 0, done.output
    assert "keeps no backup" in done.output
    assert files(logs) == {"keep.txt": b"not a log"}
    (run,) = json.loads(cli("action", "status", incident, "--json").output)
    again = cli("action", "rollback", incident, run["run"], *target, "--confirm", "here no backup")
    assert again.exit_code == 4 and "keeps no backup" in again.output
    assert files(logs) == {"keep.txt": b"not a log"}


def test_an_apply_cancelled_half_way_records_what_it_left_and_rolls_back(
    sqlite_service: Service, playbook_file: Path, logs: Path
) -> None:
    """Ctrl-C while the apply command runs: the supervisor ends its tree, the paths are
    fingerprinted as the command left them, and the rollback puts the files back."""
    text = yaml.safe_load(playbook_file.read_text(encoding="utf-8"))
    do = text["actions"]["clean-logs"]["do"]
    do["apply"] = {"argv": [SH, "-c", 'rm -f "$0"/a.log; echo removed; exec sleep 60', str(logs)]}
    playbook_file.write_text(yaml.safe_dump(text, sort_keys=False), encoding="utf-8")
    before = files(logs)
    applying: list[bool] = []
    runs: list[Any] = []

    def hook(stage: str, outcome: str) -> None:
        if (stage, outcome) == ("apply", "started"):
            applying.append(True)

    def progress(_: object) -> None:
        if applying:  # the apply command has printed: it removed a.log and now waits
            runs[0].cancel()

    incident = sqlite_service.open(playbook_file, "cancel").id
    run = sqlite_service.start_action(
        incident, "clean-logs", {}, {"here": Target("here", "local:", "t")}, progress, hook
    )
    runs.append(run)
    run.dry_run()
    run.backup()
    run.confirm("here")
    outcome = run.apply()
    assert not outcome.ok and outcome.wrote and outcome.rollback_offered
    assert recorded(sqlite_service, run, "apply")["outcome"] == "cancelled"
    assert "a.log" not in files(logs) and "b.log" in files(logs)
    numbers = run.rollback("here")
    assert numbers["restored"] == 1
    assert files(logs) == before


def test_a_file_changed_between_backup_and_apply_refuses_the_apply(
    sqlite_service: Service, playbook_file: Path, logs: Path
) -> None:
    run = start(sqlite_service, playbook_file, "clean-logs")
    run.dry_run()
    run.backup()
    run.confirm("here")
    (logs / "a.log").write_text("written after the backup")
    outcome = run.apply()
    assert not outcome.ok and not outcome.wrote and not outcome.rollback_offered
    assert "changed after the backup" in outcome.error
    assert (logs / "a.log").read_text() == "written after the backup"  # not removed
    assert (logs / "b.log").exists()
    with pytest.raises(NothingToRollBack):
        run.rollback("here")


def test_a_target_that_is_not_this_machine_is_refused_and_nothing_runs_here(
    sqlite_service: Service, playbook_file: Path, logs: Path
) -> None:
    before = files(logs)
    incident = sqlite_service.open(playbook_file, "elsewhere").id
    target = {"here": Target("here", "ssh://bob@db.internal", "t")}
    # refused when the run is set up: the kind's schemes are checked in one place
    # (targets.check_scheme), before the writer could run anything here
    with pytest.raises(SchemeRefused, match=r"takes the schemes 'local'\. Nothing was run"):
        sqlite_service.start_action(incident, "clean-no-backup", {}, target).dry_run()
    assert files(logs) == before
