"""The comms check reads what a reader sees (attacker round 3, B2 and B6): markup that
renders as nothing (an HTML comment, an empty link, an empty tag), character references
that decode to invisible characters, and a hostile template that splits every character
of the responder's text cannot hide a secret, a credential or a stack trace from the
check. Each end-to-end case looks at what the stand-in received: nothing."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from publish_support import (
    SLACK_PATH,
    SP_KEY,
    publishable_runbook,
    running_standin,
)

from playbook import redaction
from playbook.core.commscheck import check_message
from playbook.errors import ExitCode
from playbook.service import publishing

GOOD = (
    "Some users may experience missing messages. We are restoring the affected records. "
    "Next update by 14:30 UTC."
)
SECRET = "RdS3cretMarker_88b"
HALF, REST = SECRET[:8], SECRET[8:]  # "RdS3cret", "Marker_88b"


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with running_standin(tmp_path, monkeypatch) as state:
        yield state


@pytest.fixture
def known_secret():
    redaction.remember(SECRET)
    yield SECRET
    redaction._forget_all()


def seen_rules(text: str) -> dict[str, bool]:
    """The findings when ``text`` goes out as the publish path sends it: the text itself
    and its markdown-it rendering both read."""
    body = f"{GOOD} Seen: {text}"
    result = check_message(
        body, kind="progress", status="identified", also=[publishing.rendered_text(body)]
    )
    return {f.rule: f.blocks for f in result.findings}


@pytest.mark.parametrize(
    "split",
    [
        f"{HALF}<span>{REST[:6]}</span>{REST[6:]}",
        f"{HALF}<b></b>{REST}",
        f"{HALF}<!-- -->{REST}",
        f"{HALF}[{REST[:6]}](x){REST[6:]}",
        f"{HALF}[]()" + REST,
        *(f"{HALF}{ref}{REST}" for ref in ("&shy;", "&#173;", "&#8203;", "&ZeroWidthSpace;")),
        f"{HALF}\u200b{REST}",  # what a template can hold raw, where --set refuses it
        "[]()".join(SECRET),
        "<!-- -->".join(SECRET),
        # GitHub Flavored Markdown strikes through between one tilde or two: the text
        # stays legible, and CommonMark alone leaves the tildes in place.
        f"{HALF}~{REST}~",
        f"{HALF}~~{REST}~~",
        "~".join(SECRET) + "~",  # paired: every second character struck through
    ],
)
def test_a_secret_split_by_markup_that_renders_as_nothing_blocks(known_secret, split):
    assert seen_rules(split).get("secret") is True


@pytest.mark.parametrize(
    "split",
    [
        "<!-- -->".join("password=Hunter2pw"),
        "[]()".join("password=Hunter2pw"),
        "<!-- -->".join("10.0.0.5"),
        "[]()".join("db.internal"),
        "pass&shy;word=Hunter2pw",
    ],
)
def test_a_credential_address_or_host_split_by_markup_blocks(split):
    assert any(seen_rules(split).values()), split


def test_a_link_s_target_is_still_read() -> None:
    assert seen_rules("[the dashboard](http://10.0.0.5/grafana)").get("private-ip") is True


@pytest.mark.parametrize(
    "prose",
    [
        "See the <b>status</b> page and [our blog](https://status.example.com).",
        "Some users saw pages load in 10.5 s; the fix ships at 15:00 UTC.",
        "The *checkout* and _search_ pages are affected.",
        "Queue depth fell from ~9,000 to ~200; ~~checkout~~ search is the last to recover.",
    ],
)
def test_ordinary_markup_passes(prose: str) -> None:
    assert {r: b for r, b in seen_rules(prose).items() if b} == {}


def _hostile_runbook(folder: Path, joiner: str) -> Path:
    """The data-integrity playbook with an initial template that puts ``joiner`` (markup
    a renderer shows as nothing) between every character of the responder's text."""
    runbook = publishable_runbook(folder)
    template = folder / "templates" / "data-integrity" / "initial.txt.j2"
    template.write_text(
        "We are investigating: {{ specific_issues | list | join('" + joiner + "') }}. "
        "Some users may experience errors; we are working on a fix.\n"
    )
    return runbook


@pytest.mark.parametrize("joiner", ["<!-- -->", "[]()"])
@pytest.mark.parametrize(
    "typed",
    [f"login fails: password authentication failed, password={SP_KEY}", "PGPASSWORD=Hunter2pw"],
)
def test_a_hostile_template_splitting_every_character_sends_nothing(
    cli, standin, tmp_path, joiner, typed
):
    folder = tmp_path / "rb"
    folder.mkdir()
    opened = cli("open", str(_hostile_runbook(folder, joiner)), "--title", "Checkout", "--json")
    assert opened.exit_code == 0, opened.output
    incident = json.loads(opened.output)["id"]
    refused = cli(
        "publish", incident, "initial", "--to", "statuspage,slack,teams,hook",
        "--set", f"specific_issues={typed}", "--yes",
    )  # fmt: skip
    assert refused.exit_code == ExitCode.REFUSED, refused.output
    assert standin.requests == []


def test_the_hostile_template_with_harmless_text_still_publishes(cli, standin, tmp_path):
    """The control: the same template and destination send a message without a leak, so
    the refusals above are the check's and not the template's."""
    folder = tmp_path / "rb"
    folder.mkdir()
    opened = cli("open", str(_hostile_runbook(folder, "<!-- -->")), "--title", "Checkout", "--json")
    incident = json.loads(opened.output)["id"]
    sent = cli(
        "publish", incident, "initial", "--to", "hook",
        "--set", "specific_issues=slow pages", "--yes",
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    assert len(standin.requests) == 1


@pytest.mark.parametrize(
    "typed",
    [
        f"errors: {SP_KEY[:6]}<span>{SP_KEY[6:9]}</span>{SP_KEY[9:]}",
        f"errors: {SP_KEY[:6]}&#8203;{SP_KEY[6:]}",
        f"errors: {SP_KEY[:6]}[{SP_KEY[6:9]}](x){SP_KEY[9:]}",
        # Default_Ignorable_Code_Point beyond categories Cf/Mn/Cc (attacker round G):
        # unassigned but reserved as ignorable, and a Hangul filler; a browser draws none.
        f"errors: {SP_KEY[:6]}\u2065{SP_KEY[6:]}",
        f"errors: {SP_KEY[:6]}&#x2065;{SP_KEY[6:]}",
        f"errors: {SP_KEY[:6]}\U000e0080{SP_KEY[6:]}",
        f"errors: {SP_KEY[:6]}\ufff0{SP_KEY[6:]}",
        f"errors: {SP_KEY[:6]}\u3164{SP_KEY[6:]}",
        "errors on 10\u2065.0.0.5",
        # what NFKC and IDNA's dots fold to ASCII (attacker round K): fullwidth letters,
        # the ideographic full stop a browser resolves as a dot
        "errors: " + "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in SP_KEY),
        "see http://10\u30020\u30020\u30025:8080/",
        # percent-encoded hosts a browser decodes before it resolves (attacker round L)
        "see http://%31%30.0.0.1/admin",
        "see http://db%2Einternal/",
        "see https://\uff44\uff42.\uff49\uff4e\uff54\uff45\uff52\uff4e\uff41\uff4c/",
        "Error: connect ECONNREFUSED\n    at TCPConnectWrap.afterConnect [as oncomplete] "
        "(node:net:1555:16)\n    at process.processTicksAndRejections "
        "(node:internal/process/task_queues:95:5)",
        "java.lang.IllegalStateException: pool exhausted at com.acme.db.Pool.get(Pool.java:88) "
        "at com.acme.api.Orders.list(Orders.java:41)",
    ],
)
def test_typed_text_a_reader_would_see_as_a_leak_sends_nothing(cli, standin, tmp_path, typed):
    _refused_everywhere(cli, standin, tmp_path, typed)


def _refused_everywhere(cli, standin, tmp_path: Path, typed: str) -> None:
    """`publish` with ``typed`` as the issue, to every kind of destination: refused, and
    nothing reached the stand-in."""
    folder = tmp_path / "rb"
    folder.mkdir()
    opened = cli("open", str(publishable_runbook(folder)), "--title", "Checkout", "--json")
    incident = json.loads(opened.output)["id"]
    refused = cli(
        "publish", incident, "initial", "--to", "statuspage,slack,teams,hook",
        "--set", f"specific_issues={typed}", "--yes",
    )  # fmt: skip
    assert refused.exit_code == ExitCode.REFUSED, refused.output
    assert standin.requests == []


# Markup whose content a browser never shows, or a comment HTML5 closes where Python's
# html.parser (3.11) does not (attacker round 3, F break 3): each joins the secret's
# halves on the reader's screen.
HIDING = [
    "<!--->",  # WHATWG: abrupt-closing-of-empty-comment
    "<!-->",
    "<!-- x --!>",  # WHATWG: comment end bang state
    "<!-- -- >zz -->",  # "-- >" does not end an HTML5 comment; html.parser took it as one
    "<style>zz</style>",
    "<script>zz</script>",
    "<template>zz</template>",
    "<span hidden>zz<br>zz</span>",
    '<span style="color: red; DISPLAY : none !important">zz</span>',
    '<div style="visibility:hidden">zz</div>',
]


@pytest.mark.parametrize("joiner", HIDING)
def test_a_secret_split_by_content_no_reader_sees_blocks(known_secret, joiner):
    assert seen_rules(f"{HALF}{joiner}{REST}").get("secret") is True


@pytest.mark.parametrize(
    "prose",
    [
        "<style>p { color: red }</style>The <b>checkout</b> page is affected.",
        '<p hidden>draft</p>Some users see errors. <span style="display: inline">Search'
        "</span> is slow.",
        "Fixed <!-- a note --> at 15:00 UTC; <!----> nothing else changed.",
    ],
)
def test_ordinary_html_with_hidden_parts_passes(prose: str) -> None:
    assert {r: b for r, b in seen_rules(prose).items() if b} == {}


@pytest.mark.parametrize("joiner", HIDING)
def test_typed_text_split_by_hidden_html_sends_nothing(cli, standin, tmp_path, joiner):
    _refused_everywhere(cli, standin, tmp_path, f"errors: {SP_KEY[:6]}{joiner}{SP_KEY[6:]}")


_SLACK_LINK = re.compile(r"<([^<>|]*)\|([^<>]*)>")


def slack_shows(text: str) -> str:
    """What a Slack reader sees of a text Slack parses (the notification, the fallback,
    an mrkdwn block): ``<url|label>`` shown as ``label``, then ``&lt;``, ``&gt;`` and
    ``&amp;`` decoded (Slack's formatting reference, "Escaping text")."""
    return html.unescape(_SLACK_LINK.sub(r"\2", text))


@pytest.mark.parametrize(
    "typed",
    [
        f"errors: {SP_KEY[:6]}<https://status.example.com|{SP_KEY[6:]}>",
        f"errors: {SP_KEY[:6]}<http://a|{SP_KEY[6:9]}>{SP_KEY[9:]}",
    ],
)
def test_a_secret_split_by_a_slack_link_label_never_reads_whole_in_slack(
    cli, standin, tmp_path, typed
):
    """Slack renders ``<url|label>`` as ``label`` in every text it parses, the top-level
    ``text`` (notification and fallback) included. Whatever the check decides, what the
    stand-in received shows no reader the secret whole: the text is escaped, so Slack
    shows it literally, brackets and all."""
    folder = tmp_path / "rb"
    folder.mkdir()
    opened = cli("open", str(publishable_runbook(folder)), "--title", "Checkout", "--json")
    incident = json.loads(opened.output)["id"]
    outcome = cli(
        "publish", incident, "initial", "--to", "slack",
        "--set", f"specific_issues={typed}", "--yes",
    )  # fmt: skip
    if outcome.exit_code == ExitCode.REFUSED:
        assert standin.requests == []
        return
    assert outcome.exit_code == 0, outcome.output
    (posted,) = standin.posts(SLACK_PATH)
    parsed = [posted.body["text"]] + [
        t["text"]
        for block in posted.body["blocks"]
        for t in [block.get("text"), *block.get("elements", [])]
        if t and t.get("type") == "mrkdwn"
    ]
    for text in parsed:
        assert SP_KEY not in slack_shows(text), text
    assert "&lt;http" in posted.body["text"]
    assert typed in slack_shows(posted.body["text"])


def test_slack_text_is_escaped_as_slack_asks(cli, standin, tmp_path) -> None:
    """An ordinary message with &, < and > reaches Slack escaped in the top-level text,
    so a reader sees the characters themselves, and no link or mention is made."""
    folder = tmp_path / "rb"
    folder.mkdir()
    opened = cli("open", str(publishable_runbook(folder)), "--title", "Checkout", "--json")
    incident = json.loads(opened.output)["id"]
    typed = "search & <!channel> results < 5 s"
    sent = cli(
        "publish", incident, "initial", "--to", "slack",
        "--set", f"specific_issues={typed}", "--yes",
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    (posted,) = standin.posts(SLACK_PATH)
    assert "search &amp; &lt;!channel&gt; results &lt; 5 s" in posted.body["text"]
    assert typed in slack_shows(posted.body["text"])
