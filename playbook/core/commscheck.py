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

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from playbook import redaction

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
_KEYVAL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*=\s*\S")
_HOSTLIKE = re.compile(r"\b[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}\.)+[A-Za-z0-9\-]{1,63}\b")
_IPLIKE = re.compile(r"[0-9A-Fa-f:.]*[0-9A-Fa-f][0-9A-Fa-f:.%]*")
_STACK = (
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r'File "[^"\n]+", line \d+'),
    re.compile(r"^\s+at [\w$.<>]+\([\w$.]*\.(?:java|kt|scala|cs):\d+\)", re.M),
    re.compile(r"Exception in thread \""),
    re.compile(r"^goroutine \d+ \[", re.M),
    re.compile(r"panicked at ", re.M),
)


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
    if address.is_private or address.is_loopback or address.is_link_local:
        return str(address)
    return None


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
    secret_keys = redaction.libpq_secret_keys()
    for match in _KEYVAL.finditer(text):
        if match.group(1).lower() in secret_keys:
            found.append(f"{match.group(1)}=***")
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
    return found


def check_message(
    text: str,
    *,
    kind: str,
    status: str,
    audience: str = EXTERNAL,
    checks: Mapping[str, Any] | None = None,
    internal_hosts: Iterable[str] = (),
    component_statuses: Mapping[str, str] | None = None,
) -> CheckResult:
    """Check ``text`` (status message ``kind`` putting the page in ``status``).

    ``checks`` is the playbook's ``communications.checks`` (rules and
    ``internal_domains``); ``internal_hosts`` the hosts of the responder's targets;
    ``component_statuses`` what the message sets each component to, for the "outage"
    warning. For an ``internal`` audience nothing blocks: every finding is a warning.
    """
    external = audience != INTERNAL
    findings: list[Finding] = []
    for rule in rules_of(checks):
        if _applies(rule, kind, status) and not _rule_holds(rule, text):
            findings.append(
                Finding(str(rule.get("id", "rule")), str(rule.get("wants", "")), external)
            )
    if redaction.scrub(text) != text:
        findings.append(
            Finding("secret", "it holds a secret playbook knows (shown as ***)", external)
        )
    for shown in _connection_strings(text):
        findings.append(
            Finding("connection-string", f"it holds a connection string ({shown})", external)
        )
    ips = sorted({ip for t in _IPLIKE.findall(text) if (ip := _private_ip(t))})
    for ip in ips:
        findings.append(Finding("private-ip", f"it names a private address ({ip})", external))
    internal = [*(checks or {}).get("internal_domains", []), *internal_hosts]
    for host in sorted(set(_internal_hosts(text, internal))):
        findings.append(Finding("internal-host", f"it names an internal host ({host})", external))
    if any(p.search(text) for p in _STACK):
        findings.append(Finding("stack-trace", "it holds a stack trace", external))
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
