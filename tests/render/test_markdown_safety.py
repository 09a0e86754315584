"""Hostile text in the Markdown export, rendered by a real CommonMark renderer.

Review documents are pasted into wikis and tickets that render Markdown. Every value that
came from outside (titles, notes, actors, triggers, reasons, diagnostic rows, messages and
checks, template values, action errors, drill examples) must render as the text it is:
no HTML element, link, image or heading of its own. The test renders the same incident
twice, once with hostile values and once with harmless ones of the same shape, and asserts
that the document's block structure is the same and that the hostile one has no HTML, link
or image at all.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from drill_support import drill_payload
from helpers import RUNBOOK, T0
from markdown_it import MarkdownIt
from markdown_it.token import Token

from playbook.adapters.plugins import load_playbook as load
from playbook.core.clock import FakeClock
from playbook.core.events import RETROSPECTIVE_FIELDS
from playbook.render.export import to_json, to_markdown
from playbook.render.markdown import code, fence, lines, text
from playbook.render.postmortem import to_postmortem
from playbook.service import Service, postmortem
from playbook.store.memory import MemoryStore

# Each hostile value tries something else; none holds a control character (typed text
# with those is refused at input, see tests/cli/test_cli.py), except where noted.
HOSTILE = {
    "title": "<script>alert(1)</script> [click](javascript:alert(1)) ![x](http://e.test/x.png) #",
    "note": (
        "fine so far\n"
        "```\n"
        "# Injected heading\n"
        "<img src=x onerror=alert(1)>\n"
        "\n"
        "[ref]: http://evil.test\n"
        "> quoted\n"
        "- listed\n"
        "1. numbered\n"
        "Setext\n"
        "===\n"
        "<!-- comment --> &lt;b&gt; &#x3C;i&#x3E;\n"
        "| a | b |\n"
        "|---|---|\n"
        "<div>block</div>"
    ),
    "actor": "<img src=x onerror=alert(2)>",
    "trigger": "[pager](http://evil.test) <b>bold</b>",
    "reason": "**urgent** <http://auto.test> _x_",
    "escalate_to": "<a href='http://evil.test'>boss</a>",
    "summary": "restored\n# Resolved heading\n<script>x</script>",
    "template_value": "<iframe src=http://evil.test></iframe> ``` ## h",
    "diagnostic_message": "<svg onload=alert(3)> [m](http://m.test)",
    "check_text": "![c](http://c.test/c.png) ~~gone~~",
    "row_value": "``` \n# row heading\n<script>row</script>\x1b[2J",  # from a database
    "number": "<b>12</b>",
    "action_error": "<marquee>[e](http://e.test)</marquee>",
    "drill_example": "missing <img src=y> [k](http://k.test)",
    "drill_title": "Drill <script>t</script>",
    "service_label": "redis <b>[l](http://l.test)</b> *sandbox*",
    # the postmortem's facts (issue 15 §6); typed text, so no control characters
    "impact_key": "<b>users</b> [k](http://k.test)",
    "impact_value": "# 1200 <script>v</script>",
    "followup": "<img src=z> [f](http://f.test) | ticket ~~x~~",
    "retro": "went ok\n```\n# Heading from a note\n<div>x</div>\n[r]: http://r.test",
}


def benign(value: str) -> str:
    """A harmless value of the same shape: same lines, same blank lines, same length."""
    return re.sub(r"\S", "x", value)


def build(values: dict[str, str]) -> tuple[str, str]:
    """An incident (a drill, so the scorecard is in it) carrying ``values`` everywhere
    text from outside goes; its Markdown and JSON exports."""
    events, now = _incident(values)
    return to_markdown(events, now), to_json(events, now)


def _incident(values: dict[str, str]) -> tuple[list[Any], Any]:
    """The events of :func:`build`'s incident, its postmortem facts among them."""
    clock = FakeClock(T0)
    service = Service(MemoryStore(), clock=clock, actor=values["actor"])
    runbook = load(RUNBOOK)  # it has status templates; the drill block is only data
    drill = {
        **drill_payload(services={"cache": values["service_label"]}),
        "title": values["drill_title"],
    }
    incident = service.open(runbook, values["title"], triggers=[values["trigger"]], drill=drill).id
    clock.advance(minutes=3)
    service.acknowledge(incident)
    service.change_severity(incident, "P1", values["reason"])
    service.escalate(incident, values["escalate_to"], values["reason"])
    service.note(incident, values["note"])
    state = service.get(incident).state
    kind = next(iter(state.snapshot["communications"]["templates"]))
    needed = _template_variables(service, state, kind)
    service.status(incident, kind, dict.fromkeys(needed, values["template_value"]))
    service.record_diagnostic(incident, _run(values))
    service.record_action_stage(
        incident,
        {
            "run": "r1",
            "action": "rebuild-indexes",
            "target": "cache",
            "stage": "apply",
            "outcome": "failed",
            "error": values["action_error"],
        },
    )
    service.record_drill_check(
        incident,
        {
            "restored": False,
            "targets": {
                "cache": {
                    "expected": {"items": 10, "sha256": "ab" * 32},
                    "found": {"items": 9, "sha256": "cd" * 32},
                    "missing": 1,
                    "changed": 0,
                    "extra": 0,
                    "examples": [values["drill_example"]],
                    "restored": False,
                }
            },
        },
    )
    ctx = service.context
    postmortem.record_impact(ctx, incident, {values["impact_key"]: values["impact_value"]})
    followup = values["followup"]
    postmortem.add_followup(ctx, incident, followup, followup, "", followup)
    postmortem.pin(ctx, incident, 2)
    notes = [(field, values["retro"]) for field in RETROSPECTIVE_FIELDS]
    postmortem.note_retrospective(ctx, incident, notes)
    clock.advance(minutes=30)
    service.resolve(incident, values["summary"])
    return service.get(incident).events, clock.now()


def _template_variables(service: Service, state: Any, kind: str) -> set[str]:
    from playbook.render.templates import required_variables

    tmpl = state.snapshot["communications"]["templates"][kind]
    known = service.status_variables(state)
    return required_variables(service.template_dir(state), tmpl["file"]) - set(known)


def _run(values: dict[str, str]) -> dict[str, Any]:
    return {
        "diagnostic": "index-drop",
        "title": "Index drop",
        "kind": "redis",
        "target": "cache",
        "params": {"pattern": values["row_value"]},
        "started": "2026-03-14T02:01:00.000000Z",
        "ended": "2026-03-14T02:01:01.000000Z",
        "verdict": "fail",
        "message": values["diagnostic_message"],
        "checks": [{"metric": "drop", "op": "le", "ok": False, "text": values["check_text"]}],
        "metrics": {"drop": values["number"]},
        "rows": [{"key": values["row_value"]}, values["row_value"]],
        "rows_total": 2,
        "partial": False,
        "error": "",
        "file": "/tmp/result.jsonl",
        "sha256": "ef" * 32,
    }


def walk(tokens: list[Token]) -> list[Token]:
    out: list[Token] = []
    for token in tokens:
        out.append(token)
        out += walk(token.children or [])
    return out


def blocks(tokens: list[Token]) -> list[str]:
    """The document's block structure: every block token's type, level and tag."""
    return [f"{t.type}/{t.tag}/{t.level}" for t in tokens if t.type != "inline"]


def headings(tokens: list[Token]) -> list[str]:
    """Each heading's level and the text it shows."""
    return [
        f"{tokens[i].tag} " + "".join(c.content for c in tokens[i + 1].children or [])
        for i, t in enumerate(tokens)
        if t.type == "heading_open"
    ]


@pytest.fixture(scope="module")
def exports() -> dict[str, tuple[str, str]]:
    return {
        "hostile": build(HOSTILE),
        "benign": build({k: benign(v) for k, v in HOSTILE.items()}),
    }


RENDERERS = {
    "commonmark": MarkdownIt("commonmark"),
    "gfm": MarkdownIt("commonmark").enable(["table", "strikethrough"]),
}


@pytest.mark.parametrize("flavour", sorted(RENDERERS))
def test_hostile_values_make_no_html_link_image_or_heading_of_their_own(
    exports: dict[str, tuple[str, str]], flavour: str
) -> None:
    parser = RENDERERS[flavour]
    hostile = parser.parse(exports["hostile"][0])
    harmless = parser.parse(exports["benign"][0])
    every = walk(hostile)
    assert not [t for t in every if t.type in ("html_inline", "html_block")]
    assert not [t for t in every if t.type in ("link_open", "image", "autolink")]
    assert not [t for t in every if t.type == "s_open"]  # ~~ from a value strikes nothing
    # The same headings, lists, tables, fences and paragraphs as with harmless text:
    # nothing in a value opened or closed a block.
    assert blocks(hostile) == blocks(harmless)
    assert len(headings(hostile)) == len(headings(harmless))
    html = parser.render(exports["hostile"][0])
    for tag in ("<script", "<img", "<svg", "<iframe", "<a ", "<div", "<marquee", "<b>", "<h1>x"):
        assert tag not in html.replace("&lt;", "\0"), tag


def test_the_values_still_read_as_written(exports: dict[str, tuple[str, str]]) -> None:
    tokens = walk(RENDERERS["gfm"].parse(exports["hostile"][0]))
    shown = "\n".join(t.content for t in tokens if t.type in ("text", "code_inline", "fence"))
    shown += "\n".join(t.content for t in tokens if t.type == "code_block")
    for key in (
        "title",
        "actor",
        "trigger",
        "escalate_to",
        "check_text",
        "action_error",
        "service_label",
        "drill_example",
    ):
        assert HOSTILE[key] in shown, key
    first = RENDERERS["gfm"].parse(exports["hostile"][0])
    h1 = headings(first)[0]
    assert h1.startswith("h1 DRILL — not a real incident: ") and "<script>t</script>" in h1
    incident = next(h for h in headings(first) if h.startswith("h1 Incident "))
    assert incident.endswith(HOSTILE["title"])
    # Control characters from a database are shown escaped (rows as JSON), never emitted.
    assert "\x1b" not in exports["hostile"][0] and '"key": "``` \\n# row heading' in shown
    assert "\\u001b[2J" in shown


def test_a_note_keeps_its_lines_and_cannot_close_a_fence() -> None:
    parser = RENDERERS["gfm"]
    note = "one\n```\n# two\n\nthree ```` four"
    doc = f"- **note:** {lines(note)}\n\n{fence('status `x` ```` y')}\n"
    tokens = walk(parser.parse(doc))
    assert not [t for t in tokens if t.type == "heading_open"]
    (block,) = [t for t in tokens if t.type == "fence"]
    assert block.content == "status `x` ```` y\n"
    shown = "".join(
        "\n" if t.type == "hardbreak" else "|" if t.type == "paragraph_open" else t.content
        for t in tokens
        if t.type in ("text", "hardbreak", "paragraph_open")
    )
    assert shown == "|note: one\n```\n# two|three ```` four"
    assert sum(1 for t in tokens if t.type == "hardbreak") == 2
    assert sum(1 for t in tokens if t.type == "paragraph_open") == 2  # the blank line kept


@pytest.mark.parametrize(
    "value",
    [
        "# heading",
        "1. item",
        "2) item",
        "- item",
        "+ item",
        "> quote",
        "===",
        "---",
        "***",
        "    indented",
        "<p>x</p>",
        "a | b",
        "[a]: http://x.test",
        "title ##",
        "`code` and ``more``",
        "\\*not emphasis\\*",
        "&amp; &#65;",
    ],
)
def test_text_and_code_render_as_the_value(value: str) -> None:
    parser = RENDERERS["gfm"]
    tokens = walk(parser.parse(f"{text(value)}\n"))
    rendered = "".join(t.content for t in tokens if t.type == "text" or t.type == "softbreak")
    assert rendered == value.strip(), (text(value), tokens)
    cell = walk(parser.parse(f"| {text(value)} | {code(value, True)} |\n|---|---|\n"))
    assert [t.content for t in cell if t.type == "code_inline"] == [value]


def test_a_real_incident_reads_well(service, clock) -> None:
    """The normal export is not littered with escapes: ordinary words stay as they are."""
    incident = service.open(None, "Orders missing since 02:10 (EU)").id
    service.note(incident, "Restored 1,204 orders from the 02:00 backup; see ticket OPS-42.")
    md = to_markdown(service.get(incident).events, clock.now())
    assert f"# Incident {incident}: Orders missing since 02:10 (EU)\n" in md
    assert "Restored 1,204 orders from the 02:00 backup; see ticket OPS-42." in md


def test_the_json_export_escapes_c1_controls_and_direction_overrides(
    exports: dict[str, tuple[str, str]],
) -> None:
    _md, document = build({**HOSTILE, "row_value": "a\x9b2Jb\u202eevil\u2066c"})
    assert "\x9b" not in document and "\u202e" not in document and "\u2066" not in document
    assert "a\\u009b2Jb\\u202eevil\\u2066c" in document
    loaded = json.loads(document)
    run = next(e for e in loaded["events"] if e["type"] == "diagnostic_run")
    assert run["payload"]["rows"][1] == "a\x9b2Jb\u202eevil\u2066c"  # the same value back


def test_with_linkify_a_bare_address_is_the_only_link_and_shows_itself(
    exports: dict[str, tuple[str, str]],
) -> None:
    """Renderers that linkify bare URLs (GFM) may make ``http://…`` in a value clickable;
    such a link's text is its own address, and nothing else becomes a link."""
    parser = MarkdownIt("commonmark", {"linkify": True}).enable(["table", "linkify"])
    tokens = walk(parser.parse(exports["hostile"][0]))
    links = [(i, t) for i, t in enumerate(tokens) if t.type == "link_open"]
    assert links  # the hostile values do hold bare addresses
    for i, link in links:
        shown = tokens[i + 1].content
        assert tokens[i + 1].type == "text" and tokens[i + 2].type == "link_close"
        assert str(link.attrs["href"]).rstrip("/") == shown.rstrip("/"), (link.attrs, shown)
        assert shown.startswith(("http://", "https://")), shown
    assert not [t for t in tokens if t.type in ("html_inline", "html_block", "image")]


@pytest.fixture(scope="module")
def drafts() -> dict[str, str]:
    """The postmortem drafts of the hostile and the harmless incident."""
    made = {}
    for name, values in (
        ("hostile", HOSTILE),
        ("benign", {k: benign(v) for k, v in HOSTILE.items()}),
    ):
        events, now = _incident(values)
        made[name] = to_postmortem(events, now)
    return made


@pytest.mark.parametrize("flavour", sorted(RENDERERS))
def test_the_postmortem_draft_gives_hostile_values_no_markup_of_their_own(
    drafts: dict[str, str], flavour: str
) -> None:
    parser = RENDERERS[flavour]
    hostile, harmless = parser.parse(drafts["hostile"]), parser.parse(drafts["benign"])
    every = walk(hostile)
    assert not [t for t in every if t.type in ("html_inline", "html_block")]
    assert not [t for t in every if t.type in ("link_open", "image", "autolink")]
    assert not [t for t in every if t.type == "s_open"]
    assert blocks(hostile) == blocks(harmless)
    assert len(headings(hostile)) == len(headings(harmless))
    shown = "\n".join(t.content for t in every if t.type in ("text", "fence"))
    for key in ("impact_key", "impact_value", "followup"):
        assert HOSTILE[key] in shown, key
