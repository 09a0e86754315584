"""A drill: its sandbox started, its data loaded and fingerprinted, its fault injected,
and its incident opened, marked as a drill, in the drills' own store.

:meth:`DrillRun.check` compares the data with the fingerprint again and records the
answer in the incident. The sandbox goes with :meth:`DrillRun.stop`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from playbook.core.loader import LoadedPlaybook
from playbook.core.model import Drill, DrillStep
from playbook.core.state import IncidentState
from playbook.core.text import inline
from playbook.drill.fingerprint import compare, items_of, summarise
from playbook.drill.sandbox import DrillError, DrillSandbox, Say
from playbook.drill.steps import apply_step, needs_superuser, trusted_functions
from playbook.errors import PlaybookError, UsageError
from playbook.targets import Targets, responder_settings


@dataclass
class DrillRun:
    """A drill's sandbox, its data's fingerprint and its figures; see :meth:`start`."""

    loaded: LoadedPlaybook
    sandbox: DrillSandbox
    baseline: dict[str, dict[str, str]] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def spec(self) -> Drill:
        assert self.loaded.playbook.drill is not None
        return self.loaded.playbook.drill

    @property
    def targets(self) -> Targets:
        """The sandbox's targets, with the responder's own machine-wide settings
        (``[shell]``): the drill's playbook and script give neither."""
        return Targets(
            self.sandbox.targets,
            allow_unsandboxed_shell=responder_settings().allow_unsandboxed_shell,
        )

    @classmethod
    def start(cls, loaded: LoadedPlaybook, say: Say | None = None) -> DrillRun:
        """Start the sandbox, load the data, take its fingerprint, inject the fault."""
        spec = loaded.playbook.drill
        if spec is None:
            raise UsageError(
                f"Playbook {loaded.playbook.id!r} has no drill.",
                "Add a drill: block (services, load, fault, fingerprint); "
                "`playbook drill --list` shows the playbooks that have one.",
            )
        tell: Say = say or (lambda _line: None)
        box = DrillSandbox(spec.services, tell)
        run = cls(loaded, box)
        try:
            run.figures["sandbox_seconds"] = round(box.seconds, 3)
            tell(f"sandbox ready in {box.seconds:.1f} s")
            run.figures["load_seconds"] = run._steps(spec.load, "load", tell)
            started = time.monotonic()
            run.baseline = run.fingerprint()
            run.figures["fingerprint_seconds"] = round(time.monotonic() - started, 3)
            counts = ", ".join(f"{t}: {len(i):,} items" for t, i in run.baseline.items())
            tell(f"fingerprint taken ({counts})")
            run.figures["fault_seconds"] = run._steps(spec.fault, "fault", tell)
        except BaseException:
            run.stop()
            raise
        return run

    def _steps(self, steps: list[DrillStep], part: str, say: Say) -> float:
        started = time.monotonic()
        for i, step in enumerate(steps):
            label = step.title or f"{part} step {i + 1}"
            try:
                with self.sandbox.handle(step.target, needs_superuser(step)) as handle:
                    done = apply_step(step, handle, self.sandbox)
                self.sandbox.trust(step.target, trusted_functions(step))
            except PlaybookError:
                raise
            except Exception as exc:
                raise DrillError(
                    f"The drill's {part} step {i + 1} ({inline(label)}) failed on "
                    f"{step.target!r}: {type(exc).__name__}: {inline(str(exc))[:300]}",
                    f"Check drill.{part}[{i}] in {self.loaded.path}.",
                ) from None
            say(f"{part}: {inline(label)} ({inline(done)})")
        return round(time.monotonic() - started, 3)

    def fingerprint(self) -> dict[str, dict[str, str]]:
        """Every fingerprinted target's items and their digests, read now."""
        out: dict[str, dict[str, str]] = {}
        for fp in self.spec.fingerprint:
            out.setdefault(fp.target, {}).update(items_of(self.sandbox, fp))
        return out

    def payload(self, speed: float) -> dict[str, Any]:
        """The ``drill`` block of the incident's ``opened`` event."""
        return {
            "title": self.spec.title,
            "runbook": self.loaded.playbook.id,
            "source": self.spec.source,
            "briefing": self.spec.briefing,
            "speed": speed,
            "services": dict(self.sandbox.labels),
            "fingerprint": {t: summarise(i) for t, i in self.baseline.items()},
            "setup": dict(self.figures),
        }

    def open(self, service: Any, speed: float = 1.0, severity: str | None = None) -> IncidentState:
        """Open the drill's incident in ``service`` (whose store must be the drills')."""
        return service.open(
            self.loaded,
            f"Drill: {self.spec.title}",
            severity=severity,
            drill=self.payload(speed),
        )

    def check(self, service: Any, incident_id: str) -> tuple[IncidentState, dict[str, Any]]:
        """Compare the data with the fingerprint now, and record the answer."""
        started = time.monotonic()
        result = compare(self.baseline, self.fingerprint())
        result["seconds"] = round(time.monotonic() - started, 3)
        return service.record_drill_check(incident_id, result), result

    def stop(self) -> None:
        self.sandbox.stop()
