"""Numbers that are no finite number, and numbers with blanks, in a shell diagnostic's
output; and what a guarded action's verify does with such a run.

JSON's ``1e999`` is a number to its grammar and ``inf`` to Python, and no event or
evidence file can hold an infinity. Each case runs a real program through the service
and checks what was recorded (the incident's log, read back) and the evidence file on
disk read as strict JSON; the action case checks the file the rollback put back.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from numbers_harness import BASE, Harness

from playbook.adapters.base import RunError, Sink
from playbook.adapters.shell import sandbox_linux
from playbook.core.diagnostics import column_numbers, evaluate
from playbook.core.model import Expectation
from playbook.service import Service
from playbook.store import InvalidEvent
from playbook.targets import Target

PRINTF = shutil.which("printf", path="/usr/bin:/bin")
HUGE = '[{"v":1e999,"name":"a"}]'


def printing(text: str, extract: dict[str, Any], expect: list[Any] | None = None):
    return {
        "kind": "shell",
        "title": "prints",
        "target": "local",
        "timeout": "20s",
        "argv": [PRINTF, "%s", text],
        "extract": extract,
        "expect": expect or [],
    }


def strict_rows(payload: dict[str, Any]) -> list[Any]:
    """The evidence file's rows read as JSON proper: NaN or Infinity would raise."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the evidence file")

    text = Path(payload["file"]).read_text()
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def test_a_json_number_past_a_float_is_an_error_naming_the_column(tmp_path: Path) -> None:
    extract = {"json": {"path": "*"}, "fields": {"v": {"as": "number"}}}
    payload = Harness(tmp_path).run(
        printing(HUGE, extract, [{"metric": "v_max", "op": "le", "value": 90}])
    )
    assert payload["verdict"] == "error", payload  # and recorded: Harness reads it back
    assert "'v'" in payload["error"] and "1e999" in payload["error"]
    assert "not a finite number" in payload["error"]
    assert "v_max" not in payload["metrics"]
    assert strict_rows(payload) == [{"line": HUGE}]  # the output it could not read


def test_the_same_number_in_a_text_column_is_kept_as_its_text(tmp_path: Path) -> None:
    extract = {"json": {"path": "*"}}  # no fields: every scalar is a column
    payload = Harness(tmp_path).run(printing(HUGE, extract))
    assert payload["verdict"] == "pass", payload
    assert strict_rows(payload) == [{"v": "1e999", "name": "a"}]
    assert payload["rows"] == [{"v": "1e999", "name": "a"}]


@pytest.mark.parametrize("text", [" 5", "5 ", "5\t"])
def test_a_number_with_blanks_around_it_is_no_number(tmp_path: Path, text: str) -> None:
    """The regex keeps what it matched, blanks included: ASCII digits only are a number."""
    extract = {"regex": r"^n=(?P<n>.*)$", "fields": {"n": {"as": "number"}}}
    payload = Harness(tmp_path).run(printing(f"n={text}\n", extract))
    assert payload["verdict"] == "error", payload
    assert "'n'" in payload["error"]


@pytest.mark.parametrize("text", ['" 5"', '"5\\n"'])
def test_a_json_string_with_blanks_is_no_number(tmp_path: Path, text: str) -> None:
    extract = {"json": {"path": "*"}, "fields": {"n": {"as": "number"}}}
    payload = Harness(tmp_path).run(printing(f'[{{"n":{text}}}]', extract))
    assert payload["verdict"] == "error", payload


# ----------------------------------------------------------------- the core and the sink


def test_a_column_with_a_nan_has_no_extremes_and_says_how_many() -> None:
    rows = [{"v": 5}, {"v": math.nan}, {"v": math.inf}, {"v": 10**400}]
    assert column_numbers(rows, ["v"]) == {"v_non_finite": 2}
    assert column_numbers([{"v": 5}, {"v": 10**400}], ["v"]) == {"v_min": 5, "v_max": 10**400}


@pytest.mark.parametrize("actual", [math.inf, -math.inf, math.nan])
def test_a_metric_that_is_no_finite_number_is_an_error(actual: float) -> None:
    """-inf <= 90 is True: a plug-in's number must not pass on it."""
    verdict = evaluate([Expectation(metric="m", op="le", value=90)], {"m": actual})
    assert verdict.verdict == "error" and "not a finite number" in verdict.message


def test_evidence_writes_an_infinity_as_text_and_a_backup_refuses_it(tmp_path: Path) -> None:
    evidence = Sink(tmp_path / "e.jsonl", redact=True)
    evidence.add({"v": math.inf, "w": [math.nan]})
    evidence.close()
    assert (tmp_path / "e.jsonl").read_text() == '{"v":"inf","w":["nan"]}\n'
    backup = Sink(tmp_path / "b.jsonl")
    with pytest.raises(RunError, match="not finite"):
        backup.add({"v": math.inf})
    backup.close()
    assert (tmp_path / "b.jsonl").read_text() == ""


# ----------------------------------------------------------------- a guarded action's verify


def _action_playbook(tmp_path: Path, data: Path) -> Path:
    doc: dict[str, Any] = {
        **BASE,
        "diagnostics": {
            "check": printing(HUGE, {"json": {"path": "*"}, "fields": {"v": {"as": "number"}}})
            | {"target": "here", "expect": [{"metric": "v_max", "op": "le", "value": 90}]}
        },
        "actions": {
            "overwrite": {
                "kind": "shell",
                "title": "Overwrite the file",
                "target": "here",
                "do": {
                    "operation": "commands",
                    "plan": {"argv": ["cat", str(data)]},
                    "backup": {"argv": ["cat", str(data)]},
                    "apply": {"argv": ["/bin/sh", "-c", 'echo applied > "$0"', str(data)]},
                    "rollback": {
                        "argv": ["/bin/sh", "-c", 'cat "$PLAYBOOK_BACKUP_FILE" > "$0"', str(data)]
                    },
                    "writes": [str(data.parent)],
                },
                "verify": [{"diagnostic": "check"}],
            }
        },
    }
    path = tmp_path / "action.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _apply(service: Service, tmp_path: Path) -> tuple[Any, Any, Path]:
    data = tmp_path / "app" / "f.txt"
    data.parent.mkdir()
    data.write_text("original\n")
    incident = service.open(_action_playbook(tmp_path, data), "t").id
    run = service.start_action(incident, "overwrite", {}, {"here": Target("here", "local:", "t")})
    run.dry_run()
    run.backup()
    run.confirm(run.phrase)
    return run, run.apply(), data


needs_sandbox = pytest.mark.skipif(
    not sandbox_linux.support().complete, reason="a shell action runs only in the sandbox"
)


@needs_sandbox
def test_a_verify_reading_1e999_is_an_error_and_the_rollback_is_offered(
    sqlite_service: Service, tmp_path: Path
) -> None:
    run, outcome, data = _apply(sqlite_service, tmp_path)
    assert data.read_text() == "applied\n"
    assert not outcome.ok and outcome.stage == "verify"
    assert outcome.verify[0]["verdict"] == "error"
    found = sqlite_service.get(run.incident_id).state.actions[run.run_id]
    assert found.stage("verify")["verdict"] == "error"  # recorded, not left "applied"
    run.rollback(run.phrase)
    assert data.read_text() == "original\n"


@needs_sandbox
def test_a_verify_whose_run_cannot_be_recorded_is_still_an_error(
    sqlite_service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever fails while verifying (here the store refuses the run's event), the
    write happened: the action gets an error verdict and its rollback."""
    from playbook.service import action_runs

    def refused(*args: object) -> None:
        raise InvalidEvent("Refused to record a 'diagnostic_run' event: a test says so.")

    monkeypatch.setattr(action_runs, "record_diagnostic", refused)
    run, outcome, data = _apply(sqlite_service, tmp_path)
    assert not outcome.ok and outcome.verify[0]["verdict"] == "error"
    assert "a test says so" in outcome.verify[0]["error"]
    found = sqlite_service.get(run.incident_id).state.actions[run.run_id]
    assert found.stage("verify")["verdict"] == "error"
    run.rollback(run.phrase)
    assert data.read_text() == "original\n"
