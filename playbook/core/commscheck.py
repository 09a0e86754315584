"""The comms check: what a status message must say, and what it must never say, before
it leaves for a status page or a chat channel.

A function of the message's text and a little of the incident's state (which template,
which status, which components), so it runs the same in the CLI, the app and a test.

Two kinds of rule:

* **Content rules** (data, in the playbook's ``communications.checks.rules``, with
  :data:`DEFAULT_RULES` when it gives none): each names itself and the sentence it wanted
  (``next-update: say when the next update comes ("Next update by 14:30 UTC")``). A rule
  matches when one of its phrases is in the text (case-insensitive substrings, never a
  regular expression: a playbook is untrusted, and a pattern from it could make the
  check run for hours). They follow PagerDuty's external-communication guidance: every
  update states the impact, what is being done and when the next update comes; the
  resolution says whether data was lost. For an external audience a failed content rule
  blocks; for an internal one it warns.
* **Leak rules** (code, always blocking for an external audience): a secret
  :mod:`playbook.redaction` knows; a connection string (``scheme://user:pass@`` as
  ``urllib`` reads it, or a libpq ``key=value`` naming a keyword libpq itself marks
  secret); a private, loopback or link-local IP address as :mod:`ipaddress` classifies it;
  a host name of one of the responder's own targets or under a special-use or internal
  domain; a stack trace.

What it costs: a phrase rule is a substring search, so "next update by 14:30" is matched
by the phrase plus a ``HH:MM`` in the same sentence (``with_time``), not by grammar.
"""

from __future__ import annotations

import contextlib
import html
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from playbook import redaction
from playbook.core.seen import seen_in_html, without_invisible

DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {
        "id": "impact",
        "wants": 'say who or what is affected ("Some users may experience …")',
        "any": [
            "affect",
            "impact",
            "experienc",
            "unavailable",
            "degraded",
            "slow",
            "error",
            "outage",
            "disrupt",
            "unable to",
            "cannot",
            "missing",
            "functioning normally",
        ],
    },
    {
        "id": "current-action",
        "wants": 'say what is being done ("We are restoring the affected records")',
        "any": [
            "we are ",
            "we're ",
            "we have ",
            "our team",
            "investigating",
            "implementing",
            "restoring",
            "monitoring",
            "working",
            "resolved",
            "mitigat",
            "rolled back",
            "rolling back",
        ],
    },
    {
        "id": "next-update",
        "wants": 'say when the next update comes ("Next update by 14:30 UTC")',
        "any": ["next update", "next post", "update by", "update at", "further update"],
        "with_time": True,
        "skip_statuses": ["resolved", "completed"],
    },
    {
        "id": "data-loss",
        "wants": 'say whether data was lost ("No data was lost", or how much)',
        "any": [
            "data loss",
            "data was lost",
            "data were lost",
            "no data was lost",
            "no data has been lost",
            "lost no data",
            "records were lost",
            "were permanently lost",
        ],
        "statuses": ["resolved", "completed"],
    },
)
"""The content rules a playbook gets when its ``communications.checks.rules`` is empty."""

EXTERNAL = "external"
INTERNAL = "internal"

SPECIAL_USE_SUFFIXES = (
    "internal",  # ICANN reserved .internal for private use (2024)
    "local",  # RFC 6762 (mDNS)
    "localhost",  # RFC 6761
    "home.arpa",  # RFC 8375
    "test",  # RFC 6761
    "invalid",  # RFC 6761
    "example",  # RFC 6761
    "lan",
    "corp",
    "intranet",
    "private",
)
"""Domain suffixes that name a private network; more come from the playbook's
``communications.checks.internal_domains`` and every target host the responder configured."""

OUTAGE_STATUSES = frozenset({"partial_outage", "major_outage"})

_TIME = re.compile(r"\b[0-2]?[0-9]:[0-5][0-9]\b")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s<>\"'`]+")
_KEYVAL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*[=:](?=\s*\S)")
# user:pass@host without a scheme (what a config line or a log prints).
_USERINFO = re.compile(r"(?<![\w/:@.%+-])[\w.%+-]+:[^\s:@/]+@[A-Za-z0-9][A-Za-z0-9.\-]*(?::\d+)?")
# Every IPv4 spelling the C library's inet_aton reads: 1 to 4 parts, each decimal,
# octal (leading 0) or hex (0x).
_V4LIKE = re.compile(
    r"(?<![\w.])(?:0[xX][0-9A-Fa-f]+|\d+)(?:\.(?:0[xX][0-9A-Fa-f]+|\d+)){0,3}(?![\w])"
)
# Single-label special-use names (RFC 6761): "localhost" alone, or with a port.
_SPECIAL_LABELS = ("localhost",)
_HOSTLIKE = re.compile(r"\b[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}\.)+[A-Za-z0-9\-]{1,63}\b")
_IPLIKE = re.compile(r"[0-9A-Fa-f:.]*[0-9A-Fa-f][0-9A-Fa-f:.%]*")
STACK_SHAPES: tuple[tuple[str, str], ...] = (
    # (where the runtime documents the shape, the pattern that reads it)
    (
        "Python traceback module: 'Traceback (most recent call last):' "
        "https://docs.python.org/3/library/traceback.html",
        r"Traceback \(most recent call last\)",
    ),
    (
        "Python traceback module: '  File \"<stdin>\", line 1, in <module>'",
        r'File "[^"\n]+", line \d+',
    ),
    (
        # A frame anywhere in a line, not only at its start: a trace pasted into one line
        # ("... pool exhausted at com.acme.db.Pool.get(Pool.java:88) at ...") is one too.
        "Java StackTraceElement.toString(): 'com.foo.Main.run(Main.java:101)', "
        "'acme@2.1/org.acme.Lib.test(Lib.java:80)', '(Native Method)', '(Unknown Source)'; "
        "Throwable.printStackTrace(): '\\tat Junk.a(Junk.java:13)' "
        "https://docs.oracle.com/en/java/javase/21/docs/api/java.base/java/lang/StackTraceElement.html",
        r"\bat [\w$.<>/@\-]+\((?:[\w$.\-]+\.(?:java|kt|scala|groovy|cs)(?::\d+)?"
        r"|Native Method|Unknown Source)\)",
    ),
    (
        # A class name after "Caused by: ": package-qualified ("org.postgresql.util.
        # PSQLException") or named for what it is ("LowLevelException"), so that "Caused
        # by: a migration" and "caused by a migration" stay prose.
        "Java Throwable.printStackTrace(): 'Caused by: LowLevelException' "
        "https://docs.oracle.com/en/java/javase/21/docs/api/java.base/java/lang/Throwable.html",
        r"\bCaused by: (?:(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*|[A-Z][\w$]*(?:Exception|Error))\b",
    ),
    (
        "Java ThreadGroup.uncaughtException(): 'Exception in thread \"name\" ' "
        "https://docs.oracle.com/en/java/javase/21/docs/api/java.base/java/lang/ThreadGroup.html",
        r'Exception in thread "',
    ),
    (
        "Go runtime traceback (GOTRACEBACK): 'goroutine 1 [running]:' https://pkg.go.dev/runtime",
        r"^goroutine \d+ \[",
    ),
    (
        "Go runtime traceback: '/src/x.go:42 +0x1d' https://pkg.go.dev/runtime",
        r"\S+\.go:\d+ \+0x[0-9a-f]+",
    ),
    (
        # The line an unrecovered run-time panic starts with: "panic: " and the value
        # (runtime.Error messages begin "runtime error: "); "panic buttons" stays prose.
        "Go spec, Run-time panics (a runtime.Error value), printed as 'panic: runtime "
        "error: ...' https://go.dev/ref/spec#Run_time_panics https://pkg.go.dev/runtime#Error",
        r"\bpanic: runtime error: |^panic: .* \[recovered\]",
    ),
    (
        "Rust std::panic: \"thread 'main' panicked at src/main.rs:2:5\" "
        "https://doc.rust-lang.org/std/macro.panic.html",
        r"panicked at ",
    ),
    (
        "Rust std::backtrace frame: 'at src/main.rs:10:5' "
        "https://doc.rust-lang.org/std/backtrace/index.html",
        r"^\s*(?:at )?\S+\.rs:\d+:\d+\s*$",
    ),
    (
        "Node.js error.stack: 'at f (/app/x.js:10:5)' or 'at /app/x.js:10:5' "
        "https://nodejs.org/api/errors.html#errorstack",
        r"\bat (?:[^\n(]* \()?[^\s()]+\.(?:[cm]?js|jsx|tsx?):\d+:\d+\b",
    ),
    (
        # Node's own modules are named by the node: scheme, without a file extension:
        # "at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)".
        "Node.js error.stack frame of a built-in module ('node:' scheme) "
        "https://nodejs.org/api/errors.html#errorstack "
        "https://nodejs.org/api/modules.html#built-in-modules",
        r"\bat (?:[^\n(]* \()?node:[\w/.\-]+:\d+:\d+\b",
    ),
    (
        ".NET Exception.StackTrace: 'at A.B() in C:\\src\\x.cs:line 42' "
        "https://learn.microsoft.com/dotnet/api/system.exception.stacktrace",
        r"\bat \S+\([^\n]*\) in [^\n]+:line \d+",
    ),
    (
        "Ruby Exception#backtrace: \"x.rb:12:in 'load'\" "
        "https://docs.ruby-lang.org/en/master/Exception.html#method-i-backtrace",
        r"\S+\.rb:\d+:in [`'\"]",
    ),
)
"""The shapes of a stack trace, each with the runtime's documentation of the format it
reads. Data: a new runtime is a new row. Each is a regular expression of our own (this
table is ours, never a playbook's), matched line by line (``re.M``)."""
_STACK = tuple(re.compile(pattern, re.M) for _, pattern in STACK_SHAPES)


@dataclass(frozen=True)
class Finding:
    """One rule that failed: its name, what it wanted (or found), and whether it blocks."""

    rule: str
    message: str
    blocks: bool

    def describe(self) -> str:
        return f"{self.rule}: {self.message}"


@dataclass(frozen=True)
class CheckResult:
    """Every finding of one message's check."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return any(f.blocks for f in self.findings)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocks]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if not f.blocks]


def rules_of(checks: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The content rules of a playbook's ``communications.checks`` (defaults if none)."""
    given = list((checks or {}).get("rules") or [])
    return given or [dict(rule) for rule in DEFAULT_RULES]


def _applies(rule: Mapping[str, Any], kind: str, status: str) -> bool:
    if rule.get("kinds") and kind not in rule["kinds"]:
        return False
    if rule.get("statuses") and status not in rule["statuses"]:
        return False
    return status not in (rule.get("skip_statuses") or [])


def _rule_holds(rule: Mapping[str, Any], text: str) -> bool:
    phrases = [p.lower() for p in rule.get("any", []) if p]
    if not rule.get("with_time"):
        low = text.lower()
        return any(p in low for p in phrases)
    for sentence in _SENTENCE.findall(text):
        low = sentence.lower()
        if any(p in low for p in phrases) and _TIME.search(sentence):
            return True
    return False


def _private_ip(token: str) -> str | None:
    candidate = token.strip("[]()<>,;'\"")
    if candidate.count(":") == 1 and "." in candidate:  # 10.0.0.5:6379
        candidate = candidate.split(":", 1)[0]
    candidate = candidate.rstrip(".")
    try:
        address = ipaddress.ip_address(candidate.split("%", 1)[0])
    except ValueError:
        return None
    if _is_private(address):
        return str(address)
    return None


def _is_private(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_private or address.is_loopback or address.is_link_local


def v4_readings(token: str) -> set[ipaddress.IPv4Address]:
    """Every IPv4 address ``token`` may be read as: what the C library's ``inet_aton``
    makes of it (octal ``0177.0.0.1``, hex ``0x0a000005``, decimal ``167772165``, short
    ``10.5``: what a reader's ping or curl resolves), and, for a dotted form with
    zero-padded parts (``203.000.113.009``), the same parts read as decimal.

    A short form is read as an address too, so ``10.5`` alone (a version, a number of
    seconds) reads as 10.0.0.5; a bare number reads as an address only beyond 0.0.0.0/8
    (16777216 and up). The check blocks on four-part forms only and warns on the others
    (:func:`_leaks`).
    """
    found: set[ipaddress.IPv4Address] = set()
    parts = token.split(".")
    with contextlib.suppress(OSError, ValueError):
        found.add(ipaddress.IPv4Address(socket.inet_aton(token)))
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        with contextlib.suppress(ValueError):
            found.add(ipaddress.IPv4Address(".".join(str(int(p)) for p in parts)))
    if len(parts) < 4:  # a short form: never the "this network" block a small number is
        found = {a for a in found if a not in _THIS_NETWORK}
    return found


_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")


def _dotted_quad(token: str) -> bool:
    """Four dot-separated parts (how a reader writes and recognises an address, in any
    radix or padding: ``10.000.000.005``, ``0xa.0.0.5``, ``010.0.0.5``), or any hex part
    (``0x0a000005``: nobody writes a number of users in hex)."""
    return token.count(".") == 3 or "0x" in token.lower()


def _v4_spellings(text: str) -> dict[str, set[ipaddress.IPv4Address]]:
    return {m.group(0): r for m in _V4LIKE.finditer(text) if (r := v4_readings(m.group(0)))}


def _connection_strings(text: str) -> list[str]:
    """What in ``text`` is a connection string carrying a credential, shown redacted."""
    found: list[str] = []
    for match in _URI.finditer(text):
        token = match.group(0).rstrip(".,;)")
        try:
            parts = urlsplit(token)
            has_password = parts.password is not None
        except ValueError:  # urllib cannot read it: treat as a credential-bearing string
            has_password = "@" in token
        if has_password or redaction.secrets_of(token):
            found.append(redaction.redact(token))
    secret_keys = redaction.libpq_secret_names()
    for match in _KEYVAL.finditer(text):
        if match.group(1).lower() in secret_keys:
            found.append(f"{match.group(1)}=***")
    for match in _USERINFO.finditer(text):
        user, _, rest = match.group(0).partition(":")
        found.append(f"{user}:***@{rest.rpartition('@')[2]}")
    return found


def _internal_hosts(text: str, internal: Sequence[str]) -> list[str]:
    suffixes = [s.lower().strip(".") for s in (*SPECIAL_USE_SUFFIXES, *internal) if s.strip(".")]
    found: list[str] = []
    low = text.lower()
    for host in internal:  # a target's exact host, even a single label ("db-prod-3")
        host = host.lower().strip(".")
        if host and "." not in host and re.search(rf"(?<![\w.-]){re.escape(host)}(?![\w-])", low):
            found.append(host)
    for match in _HOSTLIKE.finditer(text):
        name = match.group(0).lower().rstrip(".")
        if any(name == s or name.endswith("." + s) for s in suffixes):
            found.append(name)
    for label in _SPECIAL_LABELS:
        if re.search(rf"(?<![\w.-]){label}(?![\w-])", low):
            found.append(label)
    # A target's host that is an address, in any spelling a reader's tools resolve.
    addresses: set[ipaddress.IPv4Address] = set()
    for host in internal:
        addresses |= v4_readings(host.strip("[]")) if _V4LIKE.fullmatch(host) else set()
    for token, readings in _v4_spellings(text).items():
        if readings & addresses:
            found.append(token)
    return found


_BACKSLASH_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def reader_forms(text: str) -> list[str]:
    """``text`` and what a reader of a Markdown or HTML page sees of it: character
    references decoded (``html.unescape``: ``&#64;`` is ``@``), CommonMark's backslash
    escapes removed (``10\\.0\\.0\\.5`` is ``10.0.0.5``), each alone and both in either
    order; the text as an HTML page shows it (:func:`seen_in_html`); and each of these
    without the characters a reader cannot see (``&shy;``, ``&#8203;``). A leak in any
    one blocks. (What a Markdown renderer shows is made where Markdown is rendered, in
    the publish service, and given to :func:`check_message` in ``also``.)"""
    found = [text]
    unescaped = html.unescape(text)
    unslashed = _BACKSLASH_ESCAPE.sub(r"\1", text)
    for form in (
        unescaped,
        unslashed,
        html.unescape(unslashed),
        _BACKSLASH_ESCAPE.sub(r"\1", unescaped),
        seen_in_html(text),
        # RFC 3986 percent-decoding, as a browser decodes a URL's host before it resolves
        # it: http://%31%30.0.0.1/ goes to 10.0.0.1 (attacker round L)
        unquote(text),
    ):
        if form not in found:
            found.append(form)
    for form in list(found):
        folded = folded_form(form)
        if folded not in found:
            found.append(folded)
    for form in list(found):
        bare = without_invisible(form)
        if bare not in found:
            found.append(bare)
    return found


_IDNA_DOTS = {0x3002: ".", 0xFF0E: ".", 0xFF61: "."}
"""The characters IDNA reads as a label's dot (RFC 3490, 3.1): the ideographic, fullwidth
and halfwidth ideographic full stops."""


def folded_form(text: str) -> str:
    """``text`` as a reader or a resolver takes it: Unicode's compatibility normalisation
    (NFKC: fullwidth ``ＳｅｃＲｅｔ`` is ``SecRet``, ``１０`` is ``10``) and IDNA's dots
    (``10。0。0。5`` resolves as ``10.0.0.5``, ``db。internal`` as ``db.internal``)."""
    return unicodedata.normalize("NFKC", text).translate(_IDNA_DOTS)


def _leaks(text: str, internal: Sequence[str], external: bool) -> list[Finding]:
    """The leak rules on one form of the text."""
    findings: list[Finding] = []
    if redaction.scrub(text) != text:
        findings.append(
            Finding("secret", "it holds a secret playbook knows (shown as ***)", external)
        )
    for shown in _connection_strings(text):
        findings.append(
            Finding("connection-string", f"it holds a connection string ({shown})", external)
        )
    ips = {ip for t in _IPLIKE.findall(text) if (ip := _private_ip(t))}
    odd: dict[str, str] = {}  # an odd spelling -> the private address it reads as
    for token, readings in _v4_spellings(text).items():
        private = sorted(str(a) for a in readings if _is_private(a))
        if not private:
            continue
        if _dotted_quad(token):
            ips.update(private)
        else:
            odd[token] = private[0]
    for ip in sorted(ips):
        findings.append(Finding("private-ip", f"it names a private address ({ip})", external))
    for token, ip in sorted(odd.items()):
        if ip in ips:
            continue
        # "10.5 s" or "167772165 rows" read as addresses to inet_aton too; a reader
        # would rarely take them for one, and blocking them would stop ordinary updates
        # at 3 a.m. They are named, as a warning, so the responder decides.
        findings.append(
            Finding("private-ip", f"{token!r} reads as a private address ({ip})", False)
        )
    for host in sorted(set(_internal_hosts(text, internal))):
        findings.append(Finding("internal-host", f"it names an internal host ({host})", external))
    if any(p.search(text) for p in _STACK):
        findings.append(Finding("stack-trace", "it holds a stack trace", external))
    return findings


def check_message(
    text: str,
    *,
    kind: str,
    status: str,
    audience: str = EXTERNAL,
    checks: Mapping[str, Any] | None = None,
    internal_hosts: Iterable[str] = (),
    component_statuses: Mapping[str, str] | None = None,
    also: Iterable[str] = (),
) -> CheckResult:
    """Check ``text`` (status message ``kind`` putting the page in ``status``).

    ``checks`` is the playbook's ``communications.checks`` (rules and
    ``internal_domains``); ``internal_hosts`` the hosts of the responder's targets;
    ``component_statuses`` what the message sets each component to, for the "outage"
    warning. For an ``internal`` audience nothing blocks: every finding is a warning.

    ``also``: more text that goes out with the message (the title, a component's name,
    every other field of the destination's request; the text as the destination renders
    it). The leak rules run on it and on every form in :func:`reader_forms` of it and of
    ``text``; a leak in any form blocks. The content rules read ``text`` alone.
    """
    external = audience != INTERNAL
    findings: list[Finding] = []
    for rule in rules_of(checks):
        if _applies(rule, kind, status) and not _rule_holds(rule, text):
            findings.append(
                Finding(str(rule.get("id", "rule")), str(rule.get("wants", "")), external)
            )
    forms: list[str] = []
    for given in (text, *also):
        forms.extend(f for f in reader_forms(given) if f not in forms)
    internal = [*(checks or {}).get("internal_domains", []), *internal_hosts]
    leaks: list[Finding] = []
    for form in forms:
        leaks.extend(f for f in _leaks(form, internal, external) if f not in leaks)
    findings.extend(leaks)
    statuses = dict(component_statuses or {})
    if "outage" in text.lower() and statuses and not (set(statuses.values()) & OUTAGE_STATUSES):
        findings.append(
            Finding(
                "outage-word",
                'it says "outage" but no component is in an outage '
                f"({', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))})",
                False,
            )
        )
    return CheckResult(findings)
