"""The postmortem draft: every section of the templates, in order; what is recorded shows
where the review looks for it; an empty section says what to write and which command
records it; roles and publications from other parts of the house are read when present."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from helpers import append_raw
from markdown_it import MarkdownIt

from playbook.core.state import fold
from playbook.render import postmortem as pm
from playbook.render.postmortem import to_postmortem
from playbook.service import postmortem

SECTIONS = [
    "Summary",
    "Impact",
    "Detection and trigger",
    "Root cause and contributing factors",
    "Resolution",
    "Roles",
    "Action items",
    "Lessons learned",
    "Timeline highlights",
    "External messages",
    "Appendix: the full timeline",
]


def _h2(document: str) -> list[str]:
    tokens = MarkdownIt("commonmark").enable("table").parse(document)
    return [
        tokens[i + 1].content
        for i, t in enumerate(tokens)
        if t.type == "heading_open" and t.tag == "h2"
    ]


@pytest.fixture
def worked(service, clock):
    incident = service.open(None, "Orders missing", triggers=["pager: orders_idx gone"]).id
    clock.advance(minutes=70)  # the response target (1 h) is missed
    service.acknowledge(incident)
    service.status(incident, "initial", {"specific_issues": "missing orders ``` | <b>"})
    clock.advance(minutes=5)
    service.change_severity(incident, "P1", "user accounts affected")
    ctx = service.context
    postmortem.record_impact(ctx, incident, {"users": "1200", "data_lost": "none"})
    postmortem.record_impact(ctx, incident, {"users": "1500"})
    postmortem.add_followup(ctx, incident, "Alert on index count", "bob", "2026-12-05", "OPS-12")
    postmortem.pin(ctx, incident, 3)
    clock.advance(minutes=20)
    service.resolve(incident, "restored from the 02:00 backup")
    postmortem.note_retrospective(
        ctx,
        incident,
        [
            ("root_cause", "The nightly job dropped the index"),
            ("contributing", "No alert on the index count"),
            ("went_well", "Backups were fresh"),
            ("went_badly", "Paging took 20 minutes"),
            ("lucky", "Low traffic"),
            ("detection", "A customer e-mail"),
            ("trigger", "Deploy 4711"),
        ],
    )
    return incident


def test_every_section_in_the_templates_order_with_what_was_recorded(
    service, worked, clock
) -> None:
    events = service.get(worked).events
    draft = to_postmortem(events, clock.now())
    assert draft.startswith(f"# Postmortem: {worked}: Orders missing\n")
    assert _h2(draft) == SECTIONS
    assert "| users | 1500 |" in draft and "| data\\_lost | none |" in draft  # later value wins
    assert "| 3 |" in draft.split("## Appendix")[1] and "Impact: users = 1200" in draft
    assert "| Highest severity | P1 |" in draft
    assert "| 1 | Alert on index count | bob | 2026-12-05 | OPS-12 | open |" in draft
    for text in ("The nightly job dropped the index", "Backups were fresh", "Low traffic"):
        assert f"- {text} (" in draft
    highlights = draft.split("## Timeline highlights")[1].split("## External messages")[0]
    rows = [r for r in highlights.splitlines() if r.startswith("| 2026")]
    whys = [r.rsplit("|", 2)[-2].strip() for r in rows]
    # opening severity, the breached response target, the pinned status message, P1
    assert whys == ["severity", "target breached", "pinned", "severity"]
    assert "Response (P2) target breached" in rows[1]
    # the status message verbatim, in a fence longer than any backtick run inside it
    message = fold(events).messages[0].text
    assert "````text\n" + message.rstrip("\n") + "\n````" in draft
    # the appendix is the export's timeline: one row per event, in order
    appendix = draft.split("## Appendix: the full timeline")[1]
    seqs = [int(n) for n in re.findall(r"^\| (\d+) \| ", appendix, flags=re.M)]
    assert seqs == [e.seq for e in events]
    assert "To fill in" not in draft.split("## Roles")[0]


def test_an_empty_draft_says_what_to_write_and_how(service, clock) -> None:
    incident = service.open(None, "quiet").id
    draft = to_postmortem(service.get(incident).events, clock.now())
    assert _h2(draft) == SECTIONS
    for command in (
        f'playbook impact {incident} --set users=1200 --set data_lost="none"',
        f'playbook retro {incident} --root-cause "…"',
        f'playbook retro {incident} --contributing "…"',
        f'playbook retro {incident} --detection "…"',
        f'playbook retro {incident} --trigger "…"',
        f'playbook retro {incident} --resolution "…"',
        f'playbook retro {incident} --went-well "…"',
        f'playbook retro {incident} --went-badly "…"',
        f'playbook retro {incident} --lucky "…"',
        f"playbook role {incident} commander alice",
        f'playbook followup add {incident} "…" --owner alice --due 2026-12-05 --ticket OPS-12',
        f"playbook pin {incident} SEQ",
    ):
        assert f"`{command}`" in draft, command


def test_roles_and_publications_are_shown_when_the_state_and_log_have_them(
    service, worked, clock, monkeypatch
) -> None:
    """Roles (issue 15 §2) and publish_result events (issue 17) come from other parts of
    this round: read by attribute and by type name, whatever else is there."""
    events = service.get(worked).events
    last = events[-1]
    published = replace(
        last,
        seq=last.seq + 1,
        type="publish_result",
        payload={"publisher": "statuspage", "outcome": "published", "text": "We are <b>back</b>"},
    )
    real_fold = pm.fold

    def with_roles(evs):
        state = real_fold(evs)
        state.roles = {"commander": "alice", "scribe": {"person": "bob <i>"}}
        return state

    monkeypatch.setattr(pm, "fold", with_roles)
    draft = to_postmortem([*events, published], clock.now())
    assert "| commander | alice |" in draft and "| scribe | bob \\<i> |" in draft
    assert "playbook role" not in draft
    external = draft.split("## External messages")[1].split("## Appendix")[0]
    assert "### Publications" in external and "publisher: statuspage" in external
    assert "```text\nWe are <b>back</b>\n```" in external  # verbatim, inside a fence


def test_the_export_command_offers_the_draft(cli) -> None:
    result = cli("export", "--help")
    assert "postmortem" in result.output


def test_a_severity_change_the_fold_skipped_is_no_highlight(service, worked, clock) -> None:
    append_raw(service, worked, "severity_changed", {"from": "P1", "to": "SEV-9", "reason": "x"})
    draft = to_postmortem(service.get(worked).events, clock.now())
    highlights = draft.split("## Timeline highlights")[1].split("## External messages")[0]
    assert "SEV-9" not in highlights
    assert "SEV-9" in draft.split("## Appendix")[1]  # named where every event is
