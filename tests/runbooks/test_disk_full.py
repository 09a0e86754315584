"""The disk-full playbook end to end: a tmpfs filled past 90 % by old rotated logs, the
fault seen by df and Prometheus, the guarded shell action removing only those logs, and
the live logs as they were (issue 15 §7)."""

from __future__ import annotations

from pathlib import Path

from shipped_support import drill, headless, play, schema_errors, verdicts

from playbook.adapters.plugins import load_playbook as load
from playbook.drill.localfs import ROOT
from playbook.resources import builtin_runbooks

FOLDER = ROOT / "host"


def test_it_validates_and_passes_the_schema_in_a_standard_validator(tmp_path: Path) -> None:
    loaded = load(builtin_runbooks()["disk-full"])
    levels = [level.id for level in loaded.playbook.severity.levels]
    assert levels == ["SEV-1", "SEV-2", "SEV-3"]
    assert {r.id for r in loaded.playbook.roles} == {
        "commander", "deputy", "scribe", "subject-expert", "liaison"
    }  # fmt: skip
    assert schema_errors("disk-full", tmp_path) == []


def test_the_headless_drill_exits_0_with_a_passing_verdict(tmp_path: Path) -> None:
    code, report, err = headless("disk-full", tmp_path)
    assert code == 0, err
    assert report["ok"] is True
    assert report["restored"] is True
    found = {d["id"]: d["verdict"] for d in report["scorecard"]["diagnostics"]}
    assert found["free-space-ratio"] == "fail"  # the Prometheus stand-in's 4 % free
    assert not FOLDER.exists(), "the drill's tmpfs is unmounted and removed"


def test_the_fault_is_seen_and_the_repair_lands_on_the_disk(tmp_path: Path) -> None:
    with drill("disk-full", tmp_path) as (service, run, incident, script):
        assert FOLDER.is_mount()
        old = sorted(p.name for p in FOLDER.glob("app.log.*") if p.name != "app.log.1")
        assert len(old) == 6
        live = {n: (FOLDER / n).read_bytes() for n in ("app.log", "app.log.1")}
        play(service, run, incident, script)

        runs = verdicts(service, incident)
        assert ("disk-usage", "fail") in runs and ("free-space-ratio", "fail") in runs
        first = next(r for r in service.get(incident).state.runs if r.diagnostic == "disk-usage")
        assert first.payload["metrics"]["use_percent"] > 90  # a number, not a PASS

        assert sorted(p.name for p in FOLDER.iterdir()) == ["app.log", "app.log.1"]
        assert {n: (FOLDER / n).read_bytes() for n in live} == live
        actions = service.get(incident).state.actions
        assert [a.status for a in actions.values()] == ["applied and verified"]
        made = next(iter(actions.values())).backup
        assert made is not None
        backup = Path(made["file"])
        assert backup.is_file() and backup.stat().st_size > 0  # the tar of what went
        checks = service.get(incident).state.drill_checks
        assert checks[-1].restored
