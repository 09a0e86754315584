"""Status messages: no blanks, no evaluation of values, no escape from the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbook.errors import TemplateError
from playbook.render.templates import MAX_OUTPUT, render


@pytest.fixture
def tdir(tmp_path: Path) -> Path:
    (tmp_path / "ok.j2").write_text("Issue: {{ issue }} at {{ time }}\n")
    (tmp_path / "dunder.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    (tmp_path / "bomb.j2").write_text("{{ 'a' * 100000000 }}\n")
    (tmp_path / "long.j2").write_text("{% for i in range(10000) %}{{ issue }}{% endfor %}\n")
    (tmp_path / "mutate.j2").write_text("{% set xs = [] %}{{ xs.append(1) }}\n")
    return tmp_path


def test_values_with_template_syntax_are_printed_not_evaluated(tdir: Path) -> None:
    text = render(tdir, "ok.j2", {"issue": "{{ 7 * 7 }} {% raw %}", "time": "03:00"})
    assert text == "Issue: {{ 7 * 7 }} {% raw %} at 03:00\n"


def test_missing_and_empty_variables_are_named_all_at_once(tdir: Path) -> None:
    with pytest.raises(TemplateError) as caught:
        render(tdir, "ok.j2", {"issue": "  "})
    assert "missing: time" in caught.value.title and "empty: issue" in caught.value.title
    assert "--set NAME=VALUE" in caught.value.message


@pytest.mark.parametrize("name", ["dunder.j2", "bomb.j2", "mutate.j2"])
def test_malicious_templates_are_stopped_by_the_sandbox(tdir: Path, name: str) -> None:
    with pytest.raises(TemplateError, match="unsafe"):
        render(tdir, name, {})


def test_output_is_capped(tdir: Path) -> None:
    with pytest.raises(TemplateError, match=f"limit is {MAX_OUTPUT:,}"):
        render(tdir, "long.j2", {"issue": "x" * 100})


def test_control_characters_in_values_are_refused(tdir: Path) -> None:
    with pytest.raises(TemplateError, match="control characters"):
        render(tdir, "ok.j2", {"issue": "\x1b]52;c;cm0gLXJmIH4=\x07", "time": "now"})


def test_only_the_variables_a_template_uses_are_checked(tdir: Path) -> None:
    # An incident variable the template never prints (a title recorded with a control
    # character by an older version) does not block the message...
    values = {"issue": "orders", "time": "03:00", "title": "t\x1b]0;x\x07", "n": 3}
    assert render(tdir, "ok.j2", values) == "Issue: orders at 03:00\n"  # type: ignore[arg-type]
    # ...and a value it does print is still refused.
    with pytest.raises(TemplateError, match="'issue' contains control characters"):
        render(tdir, "ok.j2", {**values, "issue": "\x1b[2J"})  # type: ignore[arg-type]


def test_the_seed_messages_render_from_the_incident(service) -> None:
    incident = service.open(None, "x").id
    with pytest.raises(TemplateError, match="missing: brief_cause, brief_resolution, data_loss"):
        service.status(incident, "resolution", {})
    assert len(service.get(incident).events) == 1  # nothing recorded
    _state, text = service.status(incident, "initial", {"specific_issues": "missing orders"})
    assert text.startswith("[SERVICE ISSUE] Chatbot Fluxa Data Consistency Issue\n")
    assert "Some users may experience missing orders." in text
    assert "Time: 2026-03-14 02:00 UTC" in text
    event = service.get(incident).events[-1]
    assert event.type == "status_rendered" and event.payload["text"] == text
    assert event.payload["status"] == "investigating"
