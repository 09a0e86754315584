"""The JSON export's fast writer lays out any JSON value exactly as ``json.dumps(indent=2,
ensure_ascii=False)`` does, and its control-character pass changes exactly what
``json_escaped`` changes: the golden files cover two incidents, this covers every shape
and character a payload can hold (hypothesis draws them)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from playbook.core.events import Event
from playbook.core.text import json_escaped, one_line, printable
from playbook.render import markdown as md
from playbook.render.json_layout import _MARKER, dumps_indented, event_json, json_safe

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
KEYS = st.text() | st.integers() | st.booleans() | st.floats(allow_nan=False) | st.none()
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        | st.dictionaries(KEYS, inner, max_size=3)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_the_layout_is_json_dumps_indent_2(value: object) -> None:
    assert dumps_indented(value) == json.dumps(value, indent=2, ensure_ascii=False)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_control_characters_are_escaped_as_json_escaped_does(value: object) -> None:
    document = json.dumps(value, indent=2, ensure_ascii=False)
    assert json_safe(document) == json_escaped(document)


def test_a_bidirectional_control_and_a_c1_control_are_escaped() -> None:
    document = json.dumps({"row": "a\x9bb\u202ec\u2028d é"}, indent=2, ensure_ascii=False)
    assert json_safe(document) == '{\n  "row": "a\\u009bb\\u202ec\\u2028d é"\n}'


def test_a_string_holding_the_writers_marker_is_written_as_it_is() -> None:
    value = {"a": _MARKER, "b": [{"c": 1}, _MARKER, [_MARKER]], "d": {"e": _MARKER}}
    assert dumps_indented(value) == json.dumps(value, indent=2, ensure_ascii=False)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=5), VALUES, max_size=4),
    st.text(),
    st.integers(min_value=0, max_value=2**40),
    st.datetimes(timezones=st.just(UTC), min_value=datetime(1, 1, 2)),
    st.text(max_size=3),
    st.text(max_size=3),
)
def test_an_event_is_written_as_its_to_dict(
    payload: dict, actor: str, seq: int, at: datetime, unreadable: str, device: str
) -> None:
    event = Event("inc-1", seq, at, actor, "note_added", payload, 1, unreadable, "id-1", device)
    expected = json.dumps(event.to_dict(), indent=2, ensure_ascii=False).replace("\n", "\n    ")
    assert event_json(event) == "    " + expected


# The Markdown escaping as it was before the speed-up (issue 13's rules, unchanged): the
# faster functions must give the same text for any value.
_OLD_INLINE = re.compile(r"([\\`*_\[\]<&|~])")


def _old_escape_line(line: str) -> str:
    escaped = _OLD_INLINE.sub(r"\\\1", line)
    escaped = md._TRAILING_HASHES.sub(lambda m: "\\#" * len(m.group(1)) + m.group(2), escaped)
    return md._line_start(escaped)


MARKUP_TEXT = st.text(
    alphabet=st.sampled_from(list("\\`*_[]<&|~#>+=-.)1 a\n\t\r\x1b\u202e\u00a0\u2028é⏎"))
    | st.characters(),
    max_size=40,
)


@settings(max_examples=500, deadline=None)
@given(MARKUP_TEXT)
def test_markdown_escaping_is_what_it_was(value: str) -> None:
    assert md.text(value) == _old_escape_line(one_line(value).lstrip())
    assert md.code(value) == _old_code(value)
    assert md.fence(value) == _old_fence(value)


def _old_code(value: str) -> str:
    body = one_line(value)
    ticks = "`" * (_old_longest(body) + 1)
    if body.startswith(("`", " ")) or body.endswith(("`", " ")) or not body:
        body = f" {body} "
    return f"{ticks}{body}{ticks}"


def _old_fence(value: str) -> str:
    body = printable(value).rstrip("\n")
    ticks = "`" * max(3, _old_longest(body) + 1)
    return f"{ticks}text\n{body}\n{ticks}"


def _old_longest(value: str) -> int:
    longest = run = 0
    for char in value:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest
