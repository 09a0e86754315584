"""A drill script played headless, and its verdict.

:func:`run_script` plays each step on the drill's incident, stopping at the first that
does not find what it expects. :func:`play` does that, makes sure the data is compared
with its fingerprint at the end, and decides whether the drill passed: the decision is
the drill's, so the CLI (and any other caller, a CI job's) only reports it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from playbook.core.text import inline
from playbook.drill.run import DrillRun
from playbook.errors import PlaybookError


def load_script(path: Path) -> Any:
    """A drill script read and validated (file, line and key in every problem)."""
    from playbook.core.drillscript import DrillScript
    from playbook.core.loader import parse_model, read_text

    text, _raw = read_text(path)
    return parse_model(text, str(path), DrillScript, "a drill script")


@dataclass
class StepResult:
    number: int
    step: str
    ok: bool
    said: str
    seconds: float


@dataclass(frozen=True)
class Verdict:
    """How a headless drill ended."""

    steps: list[StepResult]
    """The steps played, up to the first that failed."""
    restored: bool
    """Whether the data was back to its fingerprint at the last check."""
    passed: bool
    """Every step found what it expected, and the data ended as the script said it
    would (restored, unless its last step expects ``not-restored``)."""


def play(
    service: Any, run: DrillRun, incident_id: str, script: Any, out: TextIO | None = None
) -> Verdict:
    """Play ``script`` on the drill's incident (see :func:`run_script`), compare the data
    with its fingerprint if the script did not end by doing so (or stopped early: the
    scorecard then reports the data as it ends), and give the verdict."""
    results = run_script(service, run, incident_id, script, out)
    played = all(r.ok for r in results) and len(results) == len(script.steps)
    last = script.steps[-1].check
    if last is None or not played:
        run.check(service, incident_id)
    restored = service.get(incident_id).state.drill_checks[-1].restored
    return Verdict(results, restored, played and (restored or last == "not-restored"))


def run_script(
    service: Any,
    run: DrillRun,
    incident_id: str,
    script: Any,
    out: TextIO | None = None,
) -> list[StepResult]:
    """Play ``script``'s steps on the drill's incident; stop at the first that fails."""
    results: list[StepResult] = []
    for n, step in enumerate(script.steps, start=1):
        started = time.monotonic()
        try:
            ok, said = _play(service, run, incident_id, step)
        except PlaybookError as exc:
            ok, said = False, exc.title + (f" {exc.message}" if exc.message else "")
        result = StepResult(n, step.key, ok, inline(said), time.monotonic() - started)
        results.append(result)
        if out is not None:
            mark = "ok  " if ok else "FAIL"
            out.write(f"{mark} {n:>2}. {result.seconds:6.1f} s  {step.key}: {result.said}\n")
            out.flush()
        if not ok:
            break
    return results


def _play(service: Any, run: DrillRun, incident_id: str, step: Any) -> tuple[bool, str]:
    key = step.key
    if key == "acknowledge":
        service.acknowledge(incident_id)
        return True, "acknowledged"
    if key == "severity":
        service.change_severity(incident_id, step.severity, step.reason or "drill script")
        return True, f"severity {step.severity}"
    if key == "phase":
        service.enter_phase(incident_id, step.phase)
        return True, f"entered {step.phase}"
    if key == "tick":
        for ref in step.tick:
            service.check(incident_id, ref)
        return True, f"ticked {len(step.tick)}"
    if key == "note":
        service.note(incident_id, step.note)
        return True, "noted"
    if key == "escalate":
        state = service.escalate(incident_id, step.escalate or None, step.reason)
        return True, f"escalated to {state.escalations[-1].to}"
    if key == "diagnostic":
        _state, payload = service.run_diagnostic(
            incident_id, step.diagnostic, step.params, run.targets
        )
        verdict = payload["verdict"]
        wanted = step.expect
        failing = [c["text"] for c in payload.get("checks", []) if not c.get("ok")]
        detail = "; ".join(failing[:3]) or payload.get("error", "")
        ok = wanted is None or verdict == wanted
        said = f"{step.diagnostic} -> {verdict}" + (f" (expected {wanted})" if wanted else "")
        return ok, said + (f": {detail}" if detail else "")
    if key == "action":
        return _play_action(service, run, incident_id, step)
    if key == "check":
        _state, result = run.check(service, incident_id)
        restored = result["restored"]
        ok = restored == (step.check == "restored")
        said = (
            "data restored to its fingerprint" if restored else "data differs from its fingerprint"
        )
        if not restored:
            diffs = [
                f"{t}: {', '.join(r['examples'][:3])}"
                for t, r in result["targets"].items()
                if not r["restored"]
            ]
            said += " (" + "; ".join(diffs) + ")"
        return ok, said
    service.resolve(incident_id, step.resolve)
    return True, "resolved"


def _play_action(service: Any, run: DrillRun, incident_id: str, step: Any) -> tuple[bool, str]:
    wanted = step.expect or "verified"
    guarded = service.start_action(incident_id, step.action, step.params, run.targets)
    plan = guarded.dry_run()
    if plan.empty:
        return wanted == "nothing-to-do", f"{step.action}: the dry run found nothing to change"
    guarded.backup()
    guarded.confirm(step.confirm if step.confirm is not None else guarded.phrase)
    outcome = guarded.apply()
    if outcome.ok:
        ended = "verified"
    elif outcome.stage == "verify":
        ended = "verify-failed"
    else:
        ended = "apply-failed"
    counts = ", ".join(f"{k} {v:,}" for k, v in outcome.numbers.items() if isinstance(v, int))
    said = f"{step.action} -> {ended}" + (f" ({counts})" if counts else "")
    if outcome.error:
        said += f": {outcome.error}"
    return ended == wanted, said + ("" if ended == wanted else f" (expected {wanted})")
