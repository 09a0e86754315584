"""Text that came from outside (a playbook, a note, a database) shown literally.

A value is data: control characters, terminal escape sequences and bidirectional
overrides are made visible as ``\\x1b``-style escapes instead of reaching a terminal.

Text a person types into the log (titles, notes, reasons) is refused at input when it
holds such characters (:func:`first_control`); text from elsewhere (database rows,
playbooks, older logs) is escaped wherever it is shown.
"""

from __future__ import annotations

import re

_C1_AND_BIDI = "\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff"
"""DEL, the C1 controls (one of them, CSI, starts a terminal escape), directional marks,
embeddings, overrides and isolates, and the byte-order mark."""
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f{_C1_AND_BIDI}]")
_UNSAFE_INLINE = re.compile(f"[\x00-\x1f{_C1_AND_BIDI}]")
_JSON_UNSAFE = re.compile(f"[{_C1_AND_BIDI}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with control characters escaped; newlines and tabs kept."""
    return _UNSAFE.sub(_escape, text)


def inline(text: str) -> str:
    """``text`` on one line: every control character escaped, newlines too."""
    return _UNSAFE_INLINE.sub(_escape, text)


def one_line(text: str) -> str:
    """``text`` for a single line: line breaks shown as ⏎, other controls escaped."""
    return inline(text.replace("\r\n", "\n").replace("\n", " ⏎ "))


def first_control(text: str, multiline: bool = False) -> tuple[int, str] | None:
    """Where the first character :func:`inline` would escape is (1-based), and how it
    is shown; None when there is none. With ``multiline``, newlines and tabs are text."""
    found = (_UNSAFE if multiline else _UNSAFE_INLINE).search(text)
    if found is None:
        return None
    return found.start() + 1, _escape(found)


def json_escaped(document: str) -> str:
    """Serialised JSON with the characters :func:`printable` escapes written as
    ``\\u`` escapes: the same value once loaded, but no C1 control or bidirectional
    override reaches whoever opens the file. (``json.dumps`` escapes C0 itself.)"""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", document)


def has_control(text: str) -> bool:
    """True when ``text`` holds a character :func:`printable` would escape."""
    return _UNSAFE.search(text) is not None
