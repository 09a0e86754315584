"""JSON laid out as ``json.dumps(value, indent=2, ensure_ascii=False)`` lays it out, byte
for byte, faster: the JSON export of 100,000 events (issue 15 §6).

With ``indent``, ``json.dumps`` runs the pure-Python encoder: a generator per container,
about 11 million resumptions for 100,000 events. The C encoder runs only without
``indent``; but given an item separator of a newline and one depth's indentation, it lays
out the items of one container exactly as ``indent=2`` does. So each container is written
by one call of the C encoder, with every non-empty container inside it stood in for by a
marker that is then replaced by that container written one level deeper; an event is
written from its fields (:func:`event_json`). tests/render/test_export_golden.py holds two
exports made before this module existed; test_export_golden_layout.py compares this with
``json.dumps`` on every shape hypothesis draws.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from playbook.core.events import Event, format_utc
from playbook.core.text import is_unsafe, json_escaped

_INDENT = "  "
_CONTAINERS = (dict, list, tuple)
_MARKER = "\x00playbook-export-nested\x00"
"""Stands in for a nested container. A string in the data could hold the same text, so
the marker's count in the encoded text is checked before it is replaced."""
_ENCODED_MARKER = json.dumps(_MARKER)
_LEAF_ENCODERS: dict[int, Callable[[object], str]] = {}


def _leaf_encoder(depth: int) -> Callable[[object], str]:
    """The C encoder laying out the items of a container at ``depth``, one per line.

    Made once per depth: ``JSONEncoder.encode`` builds a new C encoder on every call,
    which costs more than encoding a small payload. Keys that are not strings are
    converted as ``json.dumps`` converts them (the C encoder has the same rules).
    """
    encode = _LEAF_ENCODERS.get(depth)
    if encode is None:
        separators = (",\n" + _INDENT * depth, ": ")
        c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
        if c_make_encoder is None:  # a Python built without _json: correct, not fast
            encode = json.JSONEncoder(ensure_ascii=False, separators=separators).encode
        else:
            c_encode = c_make_encoder(
                None,  # markers: none kept between calls (an event's payload is JSON: no cycle)
                json.JSONEncoder().default,  # not JSON: json.dumps's own TypeError
                json.encoder.encode_basestring,
                None,
                separators[1],
                separators[0],
                False,  # sort_keys
                False,  # skipkeys
                True,  # allow_nan, as json.dumps
            )

            def encode(value: object, c_encode: Any = c_encode) -> str:
                return "".join(c_encode(value, 0))

        _LEAF_ENCODERS[depth] = encode
    return encode


def dumps_indented(value: object) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)``, faster (see above)."""
    return _written(value, 0)


def _written(value: object, depth: int) -> str:
    parts: list[str] = []
    _write(value, depth, parts.append)
    return "".join(parts)


def _write(value: object, depth: int, add: Callable[[str], None]) -> None:
    original = value
    if isinstance(value, dict) and value:
        nested = [v for v in value.values() if v and isinstance(v, _CONTAINERS)]
        if nested:
            value = {
                k: _MARKER if v and isinstance(v, _CONTAINERS) else v for k, v in value.items()
            }
        opening, closing = "{", "}"
    elif isinstance(value, list | tuple) and value:
        nested = [v for v in value if v and isinstance(v, _CONTAINERS)]
        if nested:
            value = [_MARKER if v and isinstance(v, _CONTAINERS) else v for v in value]
        opening, closing = "[", "]"
    else:
        add(_leaf_encoder(0)(value))
        return
    body = _leaf_encoder(depth + 1)(value)[1:-1]
    if not nested:
        add(f"{opening}\n{_INDENT * (depth + 1)}{body}\n{_INDENT * depth}{closing}")
        return
    pieces = body.split(_ENCODED_MARKER)
    if len(pieces) != len(nested) + 1:
        # A string in the data holds the marker's text: json.dumps's own layout, moved
        # to this depth (a raw newline in it is layout: strings hold theirs escaped).
        text = json.dumps(original, indent=2, ensure_ascii=False)
        add(text.replace("\n", "\n" + _INDENT * depth))
        return
    add(f"{opening}\n{_INDENT * (depth + 1)}{pieces[0]}")
    for child, piece in zip(nested, pieces[1:], strict=True):
        _write(child, depth + 1, add)
        add(piece)
    add(f"\n{_INDENT * depth}{closing}")


_MAYBE_UNSAFE = re.compile(r"[^\n\x20-\x7e]+")
"""Runs of the characters :func:`~playbook.core.text.json_escaped` looks at, less the
layout's newlines (``json.dumps`` writes every other control character escaped)."""


def json_safe(document: str) -> str:
    """:func:`~playbook.core.text.json_escaped`, run only when the document holds a
    character it escapes: it calls back into Python for every newline and non-ASCII
    character (1.5 million of them in a 100,000-event export).

    ``str.isprintable`` is false for every character ``json_escaped`` escapes (see
    :func:`playbook.render.markdown._one_line`), so a document printable but for its
    layout's newlines has none (one C loop). Otherwise Unicode's tables are asked once
    per distinct character that is not printable ASCII.
    """
    if document.replace("\n", "").isprintable():
        return document
    distinct = set("".join(_MAYBE_UNSAFE.findall(document)))
    if any(is_unsafe(char) for char in distinct):
        return json_escaped(document)
    return document


_EVENT_KEYS = ("incident_id", "seq", "at", "actor", "type", "payload", "schema")
"""What :meth:`Event.to_dict` always writes, in its order (then ``unreadable``,
``event_id`` and ``device`` when they are set)."""


def event_json(event: Event, stamp: Callable[[datetime], str] = format_utc) -> str:
    """``event.to_dict()`` as ``json.dumps(indent=2)`` writes it at depth 2 of the export.

    Written from the event's fields with one C call per string, without building the
    dictionary first: 100,000 events are most of a large export. When
    :meth:`Event.to_dict` gains or changes a key, this falls back to it (so a new field is
    never lost); tests/render/test_export_golden_layout.py compares the two. ``stamp``
    writes the time as :func:`~playbook.core.events.format_utc` does (the export passes
    a :class:`~playbook.render.stamps.UtcStamps`).
    """
    data = event.to_dict() if _TO_DICT_CHANGED else None
    if data is not None:
        return "    " + _written(data, 2)
    string = _encode_string  # (the time is digits and punctuation: nothing to escape)
    payload = event.payload
    if type(payload) is dict and payload:
        for value in payload.values():
            if value and isinstance(value, _CONTAINERS):
                laid_out = _written(payload, 3)
                break
        else:  # nothing nested (a note, a tick): one C call, as _write lays out a leaf dict
            laid_out = f"{{\n{_INDENT * 4}{_PAYLOAD_ITEMS(payload)[1:-1]}\n{_INDENT * 3}}}"
    else:
        laid_out = _written(payload, 3)
    seq = event.seq if type(event.seq) is int else _leaf_encoder(0)(event.seq)
    schema = event.schema if type(event.schema) is int else _leaf_encoder(0)(event.schema)
    text = (
        f'    {{\n      "incident_id": {string(event.incident_id)},\n      "seq": {seq},\n'
        f'      "at": "{stamp(event.at)}",\n      "actor": {string(event.actor)},\n'
        f'      "type": {string(event.type)},\n      "payload": {laid_out},\n'
        f'      "schema": {schema}'
    )
    if event.unreadable:
        text += f',\n      "unreadable": {string(event.unreadable)}'
    if event.event_id:
        text += f',\n      "event_id": {string(event.event_id)}'
    if event.device:
        text += f',\n      "device": {string(event.device)}'
    return text + "\n    }"


def _to_dict_changed() -> bool:
    """Whether :meth:`Event.to_dict` writes other keys than :func:`event_json` knows."""
    probe = Event("i", 1, datetime(2026, 1, 1, tzinfo=UTC), "a", "t", {}, 1, "u", "e", "d")
    return tuple(probe.to_dict()) != (*_EVENT_KEYS, "unreadable", "event_id", "device")


_encode_string = json.encoder.encode_basestring
_PAYLOAD_ITEMS = _leaf_encoder(4)
"""Lays out the items of an event's payload (at depth 3 of the export)."""
_TO_DICT_CHANGED = _to_dict_changed()
