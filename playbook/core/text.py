"""Text that came from outside (a playbook, a note, a database) shown literally.

A value is data: control characters, terminal escape sequences, bidirectional controls
and invisible format characters are made visible as ``\\x1b``-style escapes instead of
reaching a terminal, an export or a status page.

Which characters those are is Unicode's call, asked of :mod:`unicodedata`, never a list
of our own (a hand list missed U+061C ARABIC LETTER MARK and the line separators):

- ``Cc``: the C0 and C1 controls and DEL (ESC and CSI start terminal escapes);
- ``Cf``: format characters, every one of Unicode's ``Bidi_Control`` characters among
  them (U+061C, U+200E/F, U+202A–E, U+2066–9), zero-width characters, the byte-order
  mark and the invisible tag characters;
- ``Zl`` and ``Zp``: U+2028 and U+2029, line breaks to some readers and not to others;
- ``Cs``: a lone UTF-16 surrogate (``\\ud800``), which is not a character at all and
  cannot be written as UTF-8.

The cost of asking Unicode: ``Cf`` also holds the zero-width joiners that some scripts
(Persian, Indic) and emoji sequences use; they are refused in typed text and shown as
``\\u200d`` elsewhere, like every other invisible character.

Text a person types into the log (titles, notes, reasons) is refused at input when it
holds such characters (:func:`first_control`); text from elsewhere (database rows,
playbooks, older logs) is escaped wherever it is shown. A lone surrogate that came from
a database or an endpoint is replaced by its six-character escape before it is recorded
(:func:`unpaired_escaped`).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
"""Unicode general categories that are never shown raw (see the module docstring)."""
_LINE_BREAKS = "\n\t"
"""Controls that are text in a multi-line value (a note, a status message)."""

_CANDIDATE = re.compile(r"[^\x20-\x7e]")
"""Every character that is not printable ASCII: only these are looked up in Unicode's
tables, so ASCII text costs one regular-expression scan and nothing more."""
_SURROGATE = re.compile("[\ud800-\udfff]")
"""A UTF-16 surrogate code point: Python keeps one in a ``str`` (from a ``\\ud800``
escape in JSON or YAML, or from bytes that were not UTF-8), and UTF-8 cannot encode it.
This range is the definition of category ``Cs``, not a list of our own."""


@lru_cache(maxsize=4096)
def is_unsafe(char: str) -> bool:
    """True when ``char`` is a control, format, separator or surrogate character."""
    return unicodedata.category(char) in UNSAFE_CATEGORIES


def _escape_char(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escaped(text: str, keep: str) -> str:
    def one(match: re.Match[str]) -> str:
        char = match.group()
        return _escape_char(char) if char not in keep and is_unsafe(char) else char

    return _CANDIDATE.sub(one, text)


def printable(text: str) -> str:
    """``text`` with control characters escaped; newlines and tabs kept."""
    return _escaped(text, _LINE_BREAKS)


def inline(text: str) -> str:
    """``text`` on one line: every control character escaped, newlines too."""
    return _escaped(text, "")


def one_line(text: str) -> str:
    """``text`` for a single line: line breaks shown as ⏎, other controls escaped."""
    return inline(text.replace("\r\n", "\n").replace("\n", " ⏎ "))


def first_control(text: str, multiline: bool = False) -> tuple[int, str] | None:
    """Where the first character :func:`inline` would escape is (1-based), and how it
    is shown; None when there is none. With ``multiline``, newlines and tabs are text."""
    keep = _LINE_BREAKS if multiline else ""
    for match in _CANDIDATE.finditer(text):
        char = match.group()
        if char not in keep and is_unsafe(char):
            return match.start() + 1, _escape_char(char)
    return None


def has_control(text: str) -> bool:
    """True when ``text`` holds a character :func:`printable` would escape."""
    return first_control(text, multiline=True) is not None


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON spells a character past the BMP as its UTF-16 pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_escaped(document: str) -> str:
    """Serialised JSON with every character :func:`inline` escapes written as a JSON
    ``\\u`` escape: the same value once loaded, but no control, bidirectional control,
    line separator or lone surrogate reaches whoever opens the file, and the text can
    always be written as UTF-8. (``json.dumps`` escapes C0 inside strings itself, so a
    raw newline, tab or carriage return is the layout's whitespace and stays; outside
    strings JSON has only ASCII, so every other match is inside a string.)"""

    def one(match: re.Match[str]) -> str:
        char = match.group()
        return _json_escape(char) if char not in "\n\t\r" and is_unsafe(char) else char

    return _CANDIDATE.sub(one, document)


def first_unpaired(text: str) -> int | None:
    """Where (0-based) the first lone surrogate in ``text`` is, or None."""
    found = _SURROGATE.search(text)
    return None if found is None else found.start()


def unpaired_json_escaped(document: str) -> str:
    """Serialised JSON with every lone surrogate in its strings replaced by an escaped
    backslash and its code (``\\\\ud800`` in the JSON text): the value read back holds
    the six characters ``\\ud800``, as :func:`unpaired_escaped` would make it, and the
    text can be written as UTF-8."""
    return _SURROGATE.sub(lambda m: f"\\\\u{ord(m.group()):04x}", document)


def unpaired_escaped(value: Any) -> Any:
    """A JSON-ready value with every lone surrogate in its strings (keys included)
    replaced by its six-character escape, ``\\ud800``: the one rule for such text from a
    database or an endpoint, which must still be recorded and shown. Returned as is (the
    same object) when there is none, so the common case costs one scan per string.

    Nesting is walked with a stack, not recursion: the value may be as deep as whatever
    produced it.
    """
    if isinstance(value, str):
        return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    if not _holds_unpaired(value):
        return value
    return _rebuild(value)


def _holds_unpaired(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _rebuild(value: Any) -> Any:
    """``value`` with :func:`unpaired_escaped` applied to every string, built bottom-up
    without recursion."""
    root: list[Any] = [None]
    # Each job: (source, parent container, key or index in the parent).
    jobs: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while jobs:
        item, parent, slot = jobs.pop()
        if isinstance(item, str):
            new: Any = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", item)
        elif isinstance(item, dict):
            new = {}
            for key, child in item.items():
                fixed = unpaired_escaped(key) if isinstance(key, str) else key
                new[fixed] = None
                jobs.append((child, new, fixed))
        elif isinstance(item, list | tuple):
            new = [None] * len(item)
            jobs.extend((child, new, i) for i, child in enumerate(item))
        else:
            new = item
        parent[slot] = new
    return root[0]
