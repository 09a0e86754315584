"""CommonMark for values from outside: the one place they are made literal.

Titles, notes, actor names, trigger texts, diagnostic rows and messages, template
values, status texts, check texts and drill examples come from people, playbooks and
databases. In an export they must read as what they are, and never become markup of
their own once the document is pasted into a wiki or a ticket that renders Markdown:

- HTML and autolinks: ``<`` is escaped, so no tag, comment or ``<scheme:…>`` link
  starts; ``&`` is escaped, so no entity turns into a character.
- Links, images and link reference definitions: ``[`` and ``]`` are escaped.
- Emphasis, code spans, strikethrough and table cells: ``*``, ``_``, `````, ``~`` and
  ``|`` are escaped, and ``\\`` itself.
- Block syntax (headings, block quotes, lists, thematic breaks, setext underlines,
  fences, HTML blocks) can only start a line: a value's first character is escaped
  when it could start one, and so is every line of a multi-line value (a note).
- Control characters, terminal escapes, bidirectional controls, invisible format
  characters, line separators and lone surrogates (Unicode's categories Cc, Cf, Zl, Zp
  and Cs) are shown as ``\\x1b``-style escapes (:mod:`playbook.core.text`).

Backslash escapes are CommonMark's own way of saying "this character is literal"
(any ASCII punctuation may be escaped), so a renderer shows the value exactly, and
the raw file stays readable: ordinary words, numbers and ``:`` ``/`` ``.`` are left
alone. Bare URLs are left as text; a GFM renderer may make ``https://…`` clickable, but
such a link shows its own address (nothing can hide it behind other words).

Code spans and fenced blocks hold a value literally; their fence is longer than any
run of backticks inside, so nothing in the value can close it.
"""

from __future__ import annotations

import re

from playbook.core.text import one_line, printable

_INLINE = re.compile(r"([\\`*_\[\]<&|~])")
"""Characters that can start or end inline markup anywhere in a line."""
_INLINE_CHARS = "\\`*_[]<&|~"
"""The same characters, the backslash first: each present one is put behind a backslash by
``str.replace``, the same text as ``_INLINE.sub(r"\\\1", …)`` (a backslash added
before a later character is never doubled: backslashes went first). ``re`` expands that
template in Python for every match, and ``str.translate`` looks every character of a
non-ASCII line up in a dict; a 100,000-event export escapes some 300,000 values (issue
15 §6)."""
_LINE_START = re.compile(r"^( {0,3})([#>+=\-]|\d{1,9}(?=[.)](?:\s|$)))")
"""A line's first character that could start a block: a heading, a block quote, a list
item, a setext underline or thematic break (``*``, ``_``, `````, ``~``, ``<`` and
``|`` are escaped everywhere already). For an ordered list the digits stay and the
``.`` or ``)`` after them is escaped (see :func:`_line_start`)."""
_BACKTICKS = re.compile(r"`+")
_TRAILING_HASHES = re.compile(r"(#+)(\s*)$")
"""A heading's closing sequence: ``# Title ##`` would lose its ``##``."""


_MAY_START_BLOCK = frozenset(" #>+=-0123456789")
"""The first characters :data:`_LINE_START` can match at: any other line is left as it is
without asking the pattern (most lines start with a letter)."""


def _line_start(line: str) -> str:
    """``line`` (already escaped inline) with a block-starting first character escaped
    (called only when its first character is in :data:`_MAY_START_BLOCK`)."""
    match = _LINE_START.match(line)
    if match is None:
        return line
    spaces, start = match.group(1), match.group(2)
    rest = line[match.end() :]
    if start[0].isdigit():
        return f"{spaces}{start}\\{rest}"  # "1." -> "1\." : not a list item
    return f"{spaces}\\{start}{rest}"


def _escape_line(line: str) -> str:
    escaped = line
    if _INLINE.search(line) is not None:
        for char in _INLINE_CHARS:
            if char in escaped:
                escaped = escaped.replace(char, "\\" + char)
    if escaped.rstrip().endswith("#"):  # rstrip drops what ``\s*`` matches: no search
        escaped = _TRAILING_HASHES.sub(lambda m: "\\#" * len(m.group(1)) + m.group(2), escaped)
    return _line_start(escaped) if escaped[:1] in _MAY_START_BLOCK else escaped


def _one_line(value: str) -> str:
    """:func:`~playbook.core.text.one_line`, skipped when it would change nothing.

    ``str.isprintable`` is false for every character of the categories ``one_line``
    escapes (Cc, Cf, Zl, Zp, Cs: Unicode's tables, as :mod:`unicodedata` has them) and for
    line breaks, so a printable value is already one safe line. Most values are, and the
    check is one C loop instead of a regular-expression callback per non-ASCII character.
    """
    return value if value.isprintable() else one_line(value)


def _printable(value: str) -> str:
    """:func:`~playbook.core.text.printable` (line breaks and tabs kept), skipped when it
    would change nothing (see :func:`_one_line`)."""
    if value.isprintable() or value.replace("\n", "").replace("\t", "").isprintable():
        return value
    return printable(value)


def text(value: object) -> str:
    """``value`` as literal Markdown text on one line, safe anywhere inline: in a
    paragraph, a list item, a heading, a table cell. Line breaks are shown as ⏎.

    Leading blanks are dropped: a renderer would drop them anyway, and four of them at
    the start of a line would make an indented code block.
    """
    line = str(value)
    if not line.isprintable():  # see _one_line; inlined, as this runs once per value
        line = one_line(line)
    return _escape_line(line.lstrip())


def code(value: object, in_table: bool = False) -> str:
    """``value`` as a code span (shown literally, markup and all), on one line.

    In a table cell, pipes are escaped as GFM asks even inside code spans.
    """
    body = _one_line(str(value))
    ticks = "`" * (_longest_backtick_run(body) + 1)
    if body.startswith(("`", " ")) or body.endswith(("`", " ")) or not body:
        body = f" {body} "
    if in_table:
        body = body.replace("|", "\\|")
    return f"{ticks}{body}{ticks}"


def fence(value: str, info: str = "text") -> str:
    """``value`` in a fenced block: its lines kept, shown literally, control characters
    escaped. The fence is longer than any run of backticks in the value."""
    body = _printable(value).rstrip("\n")
    ticks = "`" * max(3, _longest_backtick_run(body) + 1)
    return f"{ticks}{info}\n{body}\n{ticks}"


def lines(value: str, indent: str = "  ") -> str:
    """A multi-line value (a note) as literal Markdown that keeps its line breaks.

    Each line is escaped like :func:`text`; lines end in a hard break, a blank line
    starts a new paragraph, and lines after the first are indented by ``indent`` so
    that they stay inside the list item they continue.
    """
    if value.isprintable():  # one line with nothing to escape as \x..: most notes
        kept_line = value.rstrip()
        return _escape_line(kept_line) if kept_line.strip() else ""
    paragraphs: list[list[str]] = [[]]
    for raw in _printable(value).replace("\r\n", "\n").split("\n"):
        if raw.strip():
            paragraphs[-1].append(_escape_line(raw.rstrip()))
        elif paragraphs[-1]:
            paragraphs.append([])
    kept = [p for p in paragraphs if p] or [[""]]
    joined = [f"\\\n{indent}".join(p) for p in kept]
    return f"\n\n{indent}".join(joined)


def _longest_backtick_run(value: str) -> int:
    return max(map(len, _BACKTICKS.findall(value)), default=0)
