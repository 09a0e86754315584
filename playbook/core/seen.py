"""What a reader sees of HTML: the text a browser shows, joined across tags, comments
and hidden elements, for the comms check (:mod:`playbook.core.commscheck`) to read.

Apart from the check's rules because it is a reading, not a rule: the standard
library's :mod:`html.parser` tokenises, with HTML5's comment ends where html.parser
(3.11) reads them otherwise, and Unicode's tables say which characters draw nothing
(:mod:`unicodedata` for general categories; the ``regex`` module for the
Default_Ignorable_Code_Point property, which the standard library does not expose).
"""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

import regex

_INVISIBLE = frozenset({"Cf", "Mn", "Cc"})
"""Unicode categories a reader does not see as a character of their own: ``Cf`` (soft
hyphen, zero-width space and joiners, bidirectional controls, tag characters), ``Mn``
(variation selectors and the combining grapheme joiner draw nothing; other combining
marks only decorate the letter before them, which stays readable) and ``Cc`` (controls;
tab, newline and carriage return are kept as layout). Unicode's tables decide, through
:mod:`unicodedata`. The cost: the form the check reads loses the accents of decomposed
text, which only matters if that makes it read as a leak."""
_NON_ASCII = re.compile(r"[^\x20-\x7e\t\n\r]")
_IGNORABLE = regex.compile(r"\p{Default_Ignorable_Code_Point}")
"""Unicode's Default_Ignorable_Code_Point: what a renderer draws as nothing even when it
does not know the character. It holds code points no general category above catches:
unassigned ones reserved as ignorable (U+2065, U+FFF0–U+FFF8, the rest of the tag block
U+E0000–U+E0FFF, category Cn) and the Hangul fillers (U+115F, U+1160, U+3164, U+FFA0,
category Lo), which split a secret as invisibly as a zero-width space (attacker round G)."""


def without_invisible(text: str) -> str:
    """``text`` without the characters a reader does not see (:data:`_INVISIBLE`): what
    is left when ``RdS3cret\u00adMarker`` is shown is ``RdS3cretMarker``."""

    def one(match: re.Match[str]) -> str:
        char = match.group()
        if unicodedata.category(char) in _INVISIBLE or _IGNORABLE.match(char):
            return ""
        return char

    return _NON_ASCII.sub(one, text)


# Elements whose content a browser never shows (HTML Living Standard: <style> and
# <script> content is not rendered, <template> content is inert, and the ``hidden``
# attribute means "not rendered"), and inline declarations that hide an element.
_HIDDEN_TAGS = frozenset({"style", "script", "template"})
_HIDDEN_STYLES = frozenset({"display:none", "visibility:hidden", "visibility:collapse"})
# HTML5 ends a comment at "-->" or "--!>" (WHATWG HTML, 13.2.5.50 comment end state and
# 13.2.5.51 comment end bang state); html.parser (3.11) waits for "--\s*>" instead.
_COMMENT_END = re.compile(r"--!?>")


def _hides(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    """Whether a browser shows nothing of this element. A ``style`` attribute is read as
    its declarations only (``display: none``, ``visibility: hidden``), not as CSS with
    a cascade: hiding more never lets a secret through, as the text joined across
    everything is read too (:func:`seen_in_html`)."""
    if tag in _HIDDEN_TAGS or any(name == "hidden" for name, _ in attrs):
        return True
    for name, value in attrs:
        if name == "style" and value:
            for declaration in value.lower().split(";"):
                squeezed = re.sub(r"\s+|!important", "", declaration)
                if squeezed in _HIDDEN_STYLES:
                    return True
    return False


class _Seen(HTMLParser):
    """The standard library's HTML parser, keeping the text a browser shows (character
    references decoded), apart from it the text of elements a browser never shows
    (:func:`_hides`) and every attribute value (a link's target, an image's alternative
    text), which the check reads too. Tags, comments and declarations show nothing, so
    the text around them is joined as the reader sees it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.everything: list[str] = []
        self.hidden: list[str] = []  # one entry per outermost hidden element
        self.attributes: list[str] = []
        self._hiding: list[str] = []  # the open tags from the outermost hidden element in

    def handle_data(self, data: str) -> None:
        self.everything.append(data)
        if self._hiding:
            self.hidden[-1] += data
        else:
            self.text.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes.extend(value for _, value in attrs if value)
        if not self._hiding and _hides(tag, attrs):
            self.hidden.append("")
            self._hiding.append(tag)
        elif self._hiding:
            self._hiding.append(tag)

    def handle_endtag(self, tag: str) -> None:
        # Close back to the last open tag of this name: an element never closed (<br>,
        # <p>) inside a hidden one goes with it, with no list of void elements of ours.
        if tag in self._hiding:
            del self._hiding[len(self._hiding) - 1 - self._hiding[::-1].index(tag) :]

    def parse_comment(self, i: int, report: bool = True) -> int:
        """A comment as HTML5 reads it, where html.parser found one starting at ``i``:
        ``<!-->`` and ``<!--->`` are empty comments (WHATWG HTML, 13.2.5.43 comment
        start state and 13.2.5.44 comment start dash state, parse error
        "abrupt-closing-of-empty-comment"); otherwise it ends at the first ``-->`` or
        ``--!>``, and with none it runs to the end (the document is fed whole). Read
        otherwise, ``Zq9<!--->MARKER`` hides the text a browser shows after it."""
        rawdata = self.rawdata
        start = i + 4
        for abrupt in (">", "->"):
            if rawdata.startswith(abrupt, start):
                self.handle_comment("")
                return start + len(abrupt)
        match = _COMMENT_END.search(rawdata, start)
        stop, end = (match.start(), match.end()) if match else (len(rawdata), len(rawdata))
        self.handle_comment(rawdata[start:stop])
        return end


def seen_in_html(document: str) -> str:
    """What a reader sees of an HTML ``document``: its text with tags, comments and the
    content of hidden elements (``<style>``, ``<script>``, ``<template>``, ``hidden``,
    ``style="display:none"``) removed, character references decoded and invisible
    characters dropped; then, each on a line of its own, the text joined across
    everything (hidden content too: where html.parser and a browser disagree on where a
    hidden element ends, the reading that shows more is read as well), each hidden
    element's text, and each attribute value. ``RdS3cret<b></b>Marker``,
    ``RdS3cret<!-- -->Marker``, ``RdS3cret<style>x</style>Marker`` and
    ``RdS3cret&#8203;Marker`` all read ``RdS3cretMarker``.

    What is shown is :mod:`html.parser`'s reading (comments as HTML5 ends them), not a
    pattern of ours. Reading more costs only a possible warning, never a leak."""
    parser = _Seen()
    parser.feed(document)
    parser.close()
    parts = ["".join(parser.text), "".join(parser.everything), *parser.hidden, *parser.attributes]
    return without_invisible("\n".join(parts))
