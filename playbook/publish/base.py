"""What every publisher is: build the request a message becomes, send it, and, where the
destination keeps a record, find an earlier send of the same message.

The publish flow (``playbook.service.publishing``) records an intent before
:meth:`Publisher.send` and a result after it; :meth:`Publisher.find` is how a send that a
crash left without a result is reconciled before anything is sent again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar

from playbook import redaction
from playbook.errors import ExitCode, PlaybookError, UsageError

GROUP = "playbook.publishers"


class PublishRefused(PlaybookError):
    """Nothing was sent: the comms check, a drill, the store offline, or no confirmation."""

    exit_code = ExitCode.REFUSED


class PublishFailed(PlaybookError):
    """A destination did not accept the message (unreachable, an HTTP error, a timeout)."""

    exit_code = ExitCode.RUN_FAILED


class MaybeSent(PublishFailed):
    """The request went out whole and no complete answer came back (the connection
    dropped, or the answer did not arrive in time): the destination may have it. It is
    recorded as "unknown", never as "not sent", so nothing sends it again on a guess."""


class NotConfirmed(PublishFailed):
    """A destination's record could not say whether a message is out (its list did not
    end, or was not what its API returns): the send is left as "may have been sent",
    never repeated on that guess."""


@dataclass(frozen=True)
class Message:
    """One status message as every destination is given it."""

    incident_id: str
    title: str
    template: str
    status: str
    """investigating, identified, monitoring or resolved (Statuspage's and OpenStatus's)."""
    text: str
    """The exact text, as rendered and checked (with the DRILL mark in a drill)."""
    next_update: str
    """When the next update comes ("14:30 UTC"); empty for a resolution."""
    key: str
    """The idempotency key of this message at this destination."""
    drill: bool = False
    severity: str = ""
    impact: str = ""
    """Statuspage's impact_override: none, minor, major or critical ("" to leave it)."""
    components: Mapping[str, str] = field(default_factory=dict)
    """Component name -> its status (Statuspage's names: operational, partial_outage…)."""

    @property
    def headline(self) -> str:
        first = self.text.strip().splitlines()[0] if self.text.strip() else self.title
        return first.strip()[:150]


@dataclass(frozen=True)
class Request:
    """One HTTP request, as previewed and as sent."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: Any

    def shown(self) -> str:
        """The request as it may be shown: the URL and the secret headers masked (they
        go to the destination, not to its readers), the body as the exact JSON the
        destination receives. The body is never masked, so what the responder approves
        is what is sent; a body holding a secret playbook knows is shown masked and
        marked, and the comms check blocks it (it is never sent)."""
        headers = {
            k: (redaction.MASK if k.lower() in SECRET_HEADERS else v)
            for k, v in self.headers.items()
        }
        head = redaction.scrub(
            f"{self.method} {redaction.scrub(self.url)}\n"
            + "".join(f"{k}: {v}\n" for k, v in headers.items())
        )
        body = json.dumps(self.body, indent=2, ensure_ascii=False)
        masked = redaction.scrub(body)
        if masked != body:
            return f"{head}\n{masked}\n(secrets shown as {redaction.MASK}: this body is blocked)"
        return f"{head}\n{body}"


SECRET_HEADERS = frozenset({"authorization", "x-openstatus-key", "x-api-key"})


@dataclass(frozen=True)
class Sent:
    """What a destination answered."""

    http_status: int | None
    external_id: str | None = None
    url: str | None = None


class Publisher:
    """One destination. Subclasses set :attr:`kind` and implement :meth:`build` and
    :meth:`send`; those with a record of their own override :meth:`find`.

    ``settings`` is the destination's table from the responder's own config, ``${ENV}``
    already expanded (and every secret in it registered with :mod:`playbook.redaction`).
    """

    kind: ClassVar[str] = ""
    has_record: ClassVar[bool] = False
    """True when :meth:`find` can say whether a message was already posted."""
    creates_record: ClassVar[bool] = False
    """True when the first message creates a record (an incident, a report) that later
    messages update by its id: two first posts there make two records, so the intent to
    create one is decided atomically against the log (see
    :func:`playbook.service.publishing.publish`)."""
    keys: ClassVar[tuple[str, ...]] = ()
    """The settings this destination takes besides the common ones."""
    required: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        self.name = name
        self.settings = dict(settings)

    def build(self, message: Message, external_id: str | None) -> Request:
        """The request ``message`` becomes (a first post, or an update of
        ``external_id``)."""
        raise NotImplementedError

    def send(self, request: Request) -> Sent:
        """Send ``request``.

        Raises:
            PublishFailed: the destination did not accept it.
        """
        raise NotImplementedError

    def find(self, message: Message) -> Sent | None:
        """An earlier post of ``message`` (by its key) at the destination, or None."""
        raise NotImplementedError(f"{self.kind} keeps no record to look in")


COMMON_KEYS = ("type", "drill_sink", "audience")


def publisher_classes() -> dict[str, type[Publisher]]:
    """Publisher kinds by name, from the ``playbook.publishers`` entry points."""
    found: dict[str, type[Publisher]] = {}
    for entry in entry_points(group=GROUP):
        found[entry.name] = entry.load()
    return found


def make_publisher(name: str, settings: Mapping[str, Any]) -> Publisher:
    """The publisher for destination ``name`` (its ``type``, else its name).

    Raises:
        UsageError: no publisher of that kind is installed.
    """
    kind = str(settings.get("type", name))
    classes = publisher_classes()
    if kind not in classes:
        raise UsageError(
            f"publish.{name}: no publisher of type {kind!r}.",
            f"Installed: {', '.join(sorted(classes)) or 'none'}.",
        )
    return classes[kind](name, settings)
