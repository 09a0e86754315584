"""A drill script: the steps a headless drill takes, and what each must find.

``playbook drill --headless --script FILE`` reads one of these. It lets the authors of a
runbook prove, in CI, that the runbook still detects its incident and repairs it::

    steps:
      - acknowledge: true
      - diagnostic: index-drop
        expect: fail                  # the fault is seen
      - action: rebuild-indexes       # dry run, backup, confirm, lock, apply, verify
      - check: restored               # the data is back to its fingerprint
      - resolve: Indexes rebuilt from the messages.

Each step is one mapping holding exactly one of the step keys below, plus the keys
that go with it (``params``, ``expect``, ``reason``, ``confirm``).
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field, model_validator

from playbook.core.model import LEVEL_ID, Model, Slug

STEP_KEYS = (
    "acknowledge",
    "severity",
    "phase",
    "tick",
    "note",
    "escalate",
    "diagnostic",
    "action",
    "check",
    "resolve",
)
_COMPANIONS: dict[str, tuple[str, ...]] = {
    "severity": ("reason",),
    "escalate": ("reason",),
    "diagnostic": ("params", "expect"),
    "action": ("params", "expect", "confirm"),
}


class ScriptStep(Model):
    """One step of a drill script."""

    acknowledge: Literal[True] | None = None
    """Acknowledge the incident (stops the response timer)."""
    severity: str | None = Field(None, pattern=LEVEL_ID)
    """Change the severity to a level of the playbook (P1, SEV-1), with ``reason``."""
    phase: Slug | None = None
    """Enter a phase."""
    tick: list[str] | None = None
    """Tick checklist items by ``section.step.item`` reference."""
    note: str | None = None
    """Add a note to the timeline."""
    escalate: str | None = None
    """Record an escalation to this person on the path (empty: the next one)."""
    diagnostic: Slug | None = None
    """Run a diagnostic; ``expect`` is the verdict it must give (pass, warn, fail, error)."""
    action: Slug | None = None
    """Run a guarded action through every stage; ``expect`` is how it must end."""
    check: Literal["restored", "not-restored"] | None = None
    """Compare the data with the fingerprint taken before the fault."""
    resolve: str | None = None
    """Resolve the incident with this summary."""

    reason: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    expect: str | None = None
    confirm: str | None = None
    """The confirmation phrase typed for an action (default: the action's own)."""

    @property
    def key(self) -> str:
        return next(k for k in STEP_KEYS if getattr(self, k) is not None)

    @model_validator(mode="after")
    def _one_step(self) -> Self:
        given = [k for k in STEP_KEYS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a step holds exactly one of {', '.join(STEP_KEYS)} (found: {', '.join(given) or 'none'})"
            )
        allowed = _COMPANIONS.get(given[0], ())
        for extra in ("reason", "params", "expect", "confirm"):
            if getattr(self, extra) and extra not in allowed:
                raise ValueError(f"{extra!r} does not go with a {given[0]!r} step")
        if self.diagnostic is not None and self.expect not in (
            None,
            "pass",
            "warn",
            "fail",
            "error",
        ):
            raise ValueError("a diagnostic's expect is one of pass, warn, fail, error")
        if self.action is not None and self.expect not in (None, *ACTION_ENDS):
            raise ValueError(f"an action's expect is one of {', '.join(ACTION_ENDS)}")
        return self


ACTION_ENDS = ("verified", "verify-failed", "apply-failed", "nothing-to-do")
"""How an action step may end: applied and verified (the default), applied but a verify
check failed, stopped during apply, or its dry run found nothing to change."""


class DrillScript(Model):
    """A headless drill: its steps, in order."""

    title: str = ""
    steps: list[ScriptStep] = Field(min_length=1)
    speed: float = Field(1.0, ge=1, le=3600)
    """How fast the incident clock runs (``--speed`` overrides it)."""
