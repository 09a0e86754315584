"""An export pauses Python's cycle collector while it runs (a third of a large export's
time went to it). The pause must end with the export, whatever happens, or the app that
exported would never collect a cycle again."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from playbook.core.events import Event
from playbook.errors import UsageError
from playbook.render.export import to_json, to_markdown
from playbook.render.postmortem import to_postmortem

NOW = datetime(2026, 3, 15, 9, 30, tzinfo=UTC)
EXPORTS = [to_markdown, to_json, to_postmortem]
EVENTS = Path(__file__).parent / "golden" / "long.events.json"


@pytest.fixture
def collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


@pytest.mark.parametrize("export", EXPORTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("program_had_it_on", [True, False], ids=["on", "off"])
def test_the_collector_is_as_the_program_left_it_after_an_export(
    export, program_had_it_on: bool, collector_on: None
) -> None:
    events = [Event.from_dict(d) for d in json.loads(EVENTS.read_text())]
    if not program_had_it_on:
        gc.disable()
    assert export(events, NOW).strip()
    assert gc.isenabled() is program_had_it_on


@pytest.mark.parametrize("export", [to_markdown, to_postmortem], ids=lambda f: f.__name__)
def test_the_collector_runs_again_after_an_export_that_failed(export, collector_on: None) -> None:
    with pytest.raises(UsageError):
        export([], NOW)  # no events: refused
    assert gc.isenabled()
