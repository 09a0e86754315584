"""Text that came from outside (a playbook, a note, a database) shown literally.

A value is data: control characters, terminal escape sequences and bidirectional
overrides are made visible as ``\\x1b``-style escapes instead of reaching a terminal.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_UNSAFE_INLINE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


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


def has_control(text: str) -> bool:
    """True when ``text`` holds a character :func:`printable` would escape."""
    return _UNSAFE.search(text) is not None
