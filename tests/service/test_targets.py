"""Which targets an incident may reach, decided in one place for the CLI and the app: a
real incident its configured targets, a drill only its own running sandbox. Each refusal
is checked where it would land: a listener the test owns receives nothing."""

from __future__ import annotations

import pytest
from drill_support import drill_payload
from security_support import Listener

from playbook.errors import UsageError
from playbook.service import Service
from playbook.targets import SANDBOX, Target, Targets, load_targets

REDIS_DIAGNOSTIC = "redis-index-drop"
"""A redis diagnostic of the data-integrity runbook, on target ``cache``."""


class FakeSandbox:
    """A drill's sandbox as the service sees it: something with targets."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @property
    def targets(self) -> Targets:
        return Targets({"cache": Target("cache", self.uri, SANDBOX)})


@pytest.fixture
def listener() -> Listener:
    with Listener() as it:
        yield it


def test_a_real_incident_reaches_its_configured_targets_with_overrides(
    service: Service, loaded
) -> None:
    state = service.open(loaded, "real")
    known = service.targets_for(state, ["cache=redis://127.0.0.1:7/0"])
    assert known["cache"].uri == "redis://127.0.0.1:7/0"
    assert known["cache"].source == "--target"


def test_a_drill_without_its_sandbox_reaches_no_configured_target(
    service: Service, loaded, listener: Listener
) -> None:
    drill = service.open(loaded, "a drill", drill=drill_payload())
    configured = [f"cache=redis://127.0.0.1:{listener.port}/0"]
    with pytest.raises(UsageError, match="is a drill") as refused:
        service.targets_for(drill, configured)
    assert "not its sandbox" in (refused.value.message or "")
    # A caller that loads the targets itself is refused at the target, too.
    with pytest.raises(UsageError, match="not its sandbox's"):
        service.run_diagnostic(drill.id, REDIS_DIAGNOSTIC, {}, load_targets(None, configured))
    assert listener.close() == (0, b"")
    assert service.get(drill.id).state.runs == []


def test_a_sandbox_serves_only_the_drill_it_was_made_for(
    service: Service, loaded, listener: Listener
) -> None:
    sandbox = FakeSandbox(f"redis://127.0.0.1:{listener.port}/0")
    drill = service.open(loaded, "the drill", drill=drill_payload())
    other = service.open(loaded, "another drill", drill=drill_payload())
    real = service.open(loaded, "a real incident")

    mine = service.targets_for(drill, (), sandbox, serves=drill.id)
    assert mine["cache"].source == SANDBOX
    assert service.targets_for(None, (), sandbox, serves=drill.id)["cache"].source == SANDBOX
    with pytest.raises(UsageError, match="is a drill"):
        service.targets_for(other, (), sandbox, serves=drill.id)
    with pytest.raises(UsageError, match=f"serves {drill.id} only"):
        service.targets_for(real, ["cache=redis://127.0.0.1:7/0"], sandbox, serves=drill.id)
    assert listener.close() == (0, b"")
