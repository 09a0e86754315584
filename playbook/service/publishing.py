"""Publishing a status message: draft → check → preview → publish, each step recorded.

(Over 600 lines: the draft, the send and the reconciliation share the intent and result
payloads and the rules on who may send what; split apart, each half would import the
other's private helpers.)

:func:`draft` renders the message through the same path as ``playbook status``
(:func:`playbook.service.status.render_status`), adds the next update time when the
template did not state it, runs the comms check for each destination's audience, and
builds each destination's request (the preview shows exactly that request, secrets
masked). :func:`publish` sends a draft nothing blocks, in three steps per destination:

1. ``publish_intended`` (destination, digest, idempotency key, the text), appended and
   durable **before** anything is sent;
2. the send;
3. ``publish_result`` (external id and URL, HTTP status, the exact text sent).

A crash between 2 and 3 leaves an intent without a result. The next publish on the
incident (or ``playbook publish ID --resume``) reconciles it first (:func:`resume`):
Statuspage is asked for an incident whose ``metadata`` carries the key; a destination
that keeps no record we can read (Slack, Teams, OpenStatus, a webhook) is reported as
"may have been sent", and sent again only if the responder says so. Nothing is ever
sent twice without that answer.

Nothing is published from a drill unless the destination is a ``drill_sink`` (and a
drill's text starts with the DRILL mark), nor while the shared store is offline
(:func:`_require_online`).
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playbook import redaction
from playbook.core import events as ev
from playbook.core.commscheck import CheckResult, check_message, seen_in_html
from playbook.core.publications import Publication
from playbook.core.state import IncidentState
from playbook.errors import UsageError
from playbook.publish.base import (
    MaybeSent,
    Message,
    NotConfirmed,
    Publisher,
    PublishFailed,
    PublishRefused,
    Request,
)
from playbook.publish.config import Destinations, load_destinations
from playbook.publish.statuspage import COMPONENT_STATUSES
from playbook.service import team
from playbook.service.context import Context, append_one, command, get
from playbook.service.status import _template, render_status, status_variables

DEFAULT_UPDATE_EVERY = 20 * 60
"""Seconds to the next update when the severity level names none (PagerDuty's external
guidance: at least every 20 minutes during the first two hours)."""

FINAL = ("resolved", "completed")
IMPACT_BY_RANK = ("critical", "major", "minor")


@dataclass
class Part:
    """One destination's share of a draft."""

    destination: str
    kind: str
    audience: str
    message: Message
    check: CheckResult
    request: Request | None = None
    external_id: str | None = None
    refused: str = ""
    """Why this destination will not get the message (a drill, a bad component); "" if it will."""
    unsettled: str = ""
    """Why this destination holds the message until the responder resends
    (:func:`describe_unsettled`); "" when nothing is in doubt there."""

    @property
    def blocked(self) -> bool:
        return bool(self.refused) or self.check.blocked


@dataclass
class Draft:
    incident_id: str
    template: str
    status: str
    text: str
    next_update: str
    variables: dict[str, str]
    parts: list[Part] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return any(p.blocked for p in self.parts)


@dataclass(frozen=True)
class Outcome:
    destination: str
    outcome: str
    """published, reconciled, unknown (may have been sent; not sent again), failed, or
    held (another responder is creating the record there now; nothing sent)."""
    external_id: str | None = None
    url: str | None = None
    http_status: int | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        # What a destination answered is shown at once (the CLI's result line, --json,
        # the app), not only once recorded: it is scrubbed here, where every outcome is
        # made. A destination echoing an API key as an incident's id or link showed it
        # on screen while the log masked it (attacker round L).
        for name in ("external_id", "url", "detail"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, redaction.scrub(value))


# --------------------------------------------------------------------------- hooks

after_send: Callable[[str], None] | None = None
"""Called with the destination's name after a send and before its result is recorded:
where a test kills the process to prove a crash there never double-posts."""


def _require_online(ctx: Context) -> None:
    """Refuse to publish while the shared store is offline or holds unshared events
    (:func:`playbook.service.team.require_online`, the gate guarded actions use too): an
    intent that cannot reach the shared log must not be followed by a send, and a message
    written from a stale view must not go out."""
    team.require_online(ctx.store, "publishing a status message")


# --------------------------------------------------------------------------- draft


def next_update_due(ctx: Context, state: IncidentState) -> str:
    """When the next update comes, as a message states it ("14:30 UTC")."""
    known = status_variables(ctx, state).get("next_update_due_human")
    if known and known[:1].isdigit():  # "14:25 UTC"; otherwise "none scheduled"
        return known
    level = state.targets()
    every = level.status_update_every if level and level.status_update_every > 0 else None
    seconds = (every or DEFAULT_UPDATE_EVERY) / max(state.speed, 1e-9)
    return f"{ctx.clock.now() + timedelta(seconds=seconds):%H:%M} UTC"


def _impact(state: IncidentState, publisher: Publisher) -> str:
    chosen = dict(publisher.settings.get("impact", {}) or {}).get(state.severity)
    if chosen:
        return str(chosen)
    order = list(state.levels)
    rank = order.index(state.severity) if state.severity in order else len(IMPACT_BY_RANK)
    return IMPACT_BY_RANK[rank] if rank < len(IMPACT_BY_RANK) else "none"


def target_hosts(state: IncidentState) -> list[str]:
    """The hosts of the responder's targets: names that must never be published."""
    from playbook.targets import load_targets

    hosts: set[str] = set()
    try:
        known = load_targets(Path(state.playbook_path) if state.playbook_path else None)
    except UsageError:
        return []
    for target in known.values():
        uri = target.uri
        try:
            if "://" in uri:
                for part in urlsplit(uri).netloc.rpartition("@")[2].split(","):
                    host = part.rsplit(":", 1)[0].strip("[]") if part.count(":") <= 1 else part
                    if host:
                        hosts.add(host)
            else:
                from psycopg.conninfo import conninfo_to_dict

                for host in str(conninfo_to_dict(uri).get("host", "")).split(","):
                    if host and not host.startswith("/"):
                        hosts.add(host)
        except Exception:  # a target its parser cannot read names no host we could check
            continue
    return sorted(hosts)


def draft(
    ctx: Context,
    ref: str,
    template: str,
    values: Mapping[str, str],
    to: Sequence[str],
    components: Mapping[str, str] | None = None,
    destinations: Destinations | None = None,
) -> Draft:
    """Render, check and build the requests for ``template`` to each of ``to``.

    Raises:
        UsageError: no destination named, or one that is not configured; a component
            status that is not one of Statuspage's.
        NotFound, TemplateError: as for ``playbook status``.
    """
    incident = get(ctx, ref)
    state = incident.state
    dests = destinations or load_destinations(
        Path(state.playbook_path) if state.playbook_path else None
    )
    if not to:
        raise UsageError(
            "Name where to publish: --to NAME[,NAME…].",
            f"Configured: {', '.join(dests.publishers) or 'none'} (in {dests.path}).",
        )
    for name in to:
        if name not in dests.publishers:
            raise UsageError(
                f"No destination {name!r}.",
                f"Configured in {dests.path}: {', '.join(dests.publishers) or 'none'} "
                "(as [publish.NAME])." + "".join(f"\nAlso: {n}" for n in dests.notices),
            )
    for name, status in (components or {}).items():
        if status not in COMPONENT_STATUSES:
            raise UsageError(
                f"--component {name}={status}: not a component status.",
                f"One of: {', '.join(COMPONENT_STATUSES)}.",
            )
    tmpl = _template(state, template)
    status = str(tmpl.get("status", ""))
    final = status in FINAL
    # The responder's own value wins (--set next_update_due=…); else the schedule's time.
    next_update = "" if final else (values.get("next_update_due") or next_update_due(ctx, state))
    text = render_status(ctx, state, template, dict(values))
    if next_update and next_update not in text:
        # The template did not say when the next update comes: every external update
        # must (PagerDuty), so the line is added, and shown in the preview.
        text = f"{text.rstrip()}\n\nNext update by {next_update}."
    checks = state.snapshot.get("communications", {}).get("checks") or {}
    hosts = target_hosts(state)
    ids = external_ids_of(state)
    out = Draft(state.id, template, status, text, next_update, dict(values), notices=dests.notices)
    for name in to:
        publisher = dests.publishers[name]
        audience = dests.audience(name)
        message = Message(
            incident_id=state.id,
            # A drill's title says so too: a status page shows the title on its own.
            title=f"[DRILL] {state.title}" if state.drill is not None else state.title,
            template=template,
            status=status,
            text=text,
            next_update=next_update,
            key=uuid.uuid4().hex,
            drill=state.drill is not None,
            severity=state.severity,
            impact=_impact(state, publisher),
            components=dict(components or {}),
        )
        request: Request | None = None
        refused = ""
        try:
            request = publisher.build(message, ids.get(name))
        except PublishFailed as why:
            refused = why.title
        result = check_message(
            text,
            kind=template,
            status=status,
            audience=audience,
            checks=checks,
            internal_hosts=hosts,
            component_statuses=components,
            also=sent_texts(message, request),
        )
        part = Part(name, publisher.kind, audience, message, result, external_id=ids.get(name))
        part.request = request
        if state.drill is not None and not dests.drill_sink(name):
            part.refused = (
                "this incident is a drill, and this destination is not a drill sink "
                "(drill_sink = true in its table)"
            )
        part.refused = part.refused or refused
        held = unsettled(state, name)
        part.unsettled = describe_unsettled(held, ctx.actor) if held is not None else ""
        out.parts.append(part)
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def rendered_text(markdown: str) -> str:
    """What a reader sees of ``markdown`` once a status page or chat renders it, for the
    comms check to read too. Two renderers, each a dialect's own:

    - CommonMark, by markdown-it-py;
    - GitHub Flavored Markdown, by cmark-gfm (GitHub's reference implementation, through
      cmarkgfm), which the JavaScript renderers behind status pages and e-mail follow.
      Its strikethrough takes one tilde or two, so ``RdS3~cret~Marker`` shows a reader
      ``RdS3cretMarker`` (struck through, still legible) where CommonMark leaves the
      tildes in place.

    The standard library's HTML parser reads each rendering as a browser shows it
    (:func:`seen_in_html`): text joined across tags, comments and empty links
    (``RdS3cret[]()Marker`` is ``RdS3cretMarker``), character references decoded,
    invisible characters dropped, and each link's target on a line of its own. The two
    readings are returned one after the other, each whole on lines of its own.

    The readings are the parsers' own, not a list of ours: a template that puts markup
    showing nothing between every character of a secret cannot hide it from the check."""
    import cmarkgfm
    from cmarkgfm.cmark import Options
    from markdown_it import MarkdownIt

    readings = [
        seen_in_html(MarkdownIt("commonmark").render(markdown)),
        # Unsafe: raw HTML is kept as a browser would get it, for seen_in_html to read;
        # nothing rendered here is shown or sent.
        seen_in_html(
            cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)
        ),
    ]
    return "\n".join(dict.fromkeys(readings))


def sent_texts(message: Message, request: Request | None) -> list[str]:
    """Every text a destination is sent besides the message's body (the title, the
    components' names, each field of its request) and each as its readers see it
    rendered: what the comms check must read, not only the template's output."""
    texts = [message.title, *message.components, message.text]
    if request is not None:
        texts.extend(_strings(request.body))
    joined = "\n".join(dict.fromkeys(texts))
    return [joined, rendered_text(joined)]


def external_ids_of(state: IncidentState) -> dict[str, str]:
    """Destination -> the incident or report id there (the first one created)."""
    ids: dict[str, str] = {}
    for pub in state.publications.values():
        if pub.result and pub.result.get("external_id"):
            ids.setdefault(pub.destination, str(pub.result["external_id"]))
    return ids


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- publish


def _intent_payload(part: Part) -> dict[str, Any]:
    m = part.message
    return {
        "destination": part.destination,
        "key": m.key,
        "digest": digest(m.text),
        "template": m.template,
        "status": m.status,
        "external_id": part.external_id,
        "kind": part.kind,
        "text": m.text,
        "next_update": m.next_update,
        "components": dict(m.components),
        "impact": m.impact,
    }


def _result_payload(part_or_pub: Part | Publication, outcome: Outcome, text: str) -> dict[str, Any]:
    if isinstance(part_or_pub, Part):
        key, template, status = (
            part_or_pub.message.key,
            part_or_pub.message.template,
            part_or_pub.message.status,
        )
    else:
        key, template, status = part_or_pub.key, part_or_pub.template, part_or_pub.status
    return {
        "destination": outcome.destination,
        "key": key,
        "outcome": outcome.outcome,
        "external_id": outcome.external_id,
        "url": outcome.url,
        "http_status": outcome.http_status,
        "text": text,
        "template": template,
        "status": status,
        "detail": outcome.detail,
    }


def _send(publisher: Publisher, request: Request, name: str, message: Message) -> Outcome:
    """Send ``request``: published, failed (it never left), or unknown (it went out and
    no answer came back: the destination may have it, so it is held, never re-sent on a
    guess). A destination that keeps a record (Statuspage) is asked at once whether the
    message arrived: found by its key, it is ``reconciled``, and later messages update
    it."""
    try:
        sent = publisher.send(request)
    except MaybeSent as why:
        detail = f"{why.title} {why.message}".strip()
        if publisher.has_record:
            with contextlib.suppress(PublishFailed):  # not found or unreadable: unknown
                found = publisher.find(message)
                if found is not None:
                    return Outcome(
                        name,
                        "reconciled",
                        found.external_id,
                        found.url,
                        found.http_status,
                        "its answer was lost; found at the destination by its key",
                    )
        return Outcome(name, "unknown", detail=detail)
    except PublishFailed as why:
        return Outcome(name, "failed", detail=f"{why.title} {why.message}".strip())
    return Outcome(name, "published", sent.external_id, sent.url, sent.http_status)


def publish(
    ctx: Context,
    prepared: Draft,
    *,
    confirm_unknown: Callable[[Publication], bool] = lambda _pub: False,
    destinations: Destinations | None = None,
    resend: Collection[str] = (),
    confirm_resend: Callable[[Publication], bool] = lambda _pub: False,
) -> list[Outcome]:
    """Send a checked draft to each of its destinations, recording each step.

    A destination whose last publication's outcome is unknown (a crash between its send
    and its result, never settled) gets nothing new unless it is in ``resend`` (the
    responder's ``--resend NAME``) or ``confirm_resend`` says so: the message may
    already be out, and a second post of it is the double post the intent exists to
    prevent.

    Raises:
        PublishRefused: the draft is blocked (the comms check, a drill), or a
            destination's last message may already be out; nothing was sent.
        Offline: the shared store is offline, or an intent did not reach it; nothing
            more was sent.
    """
    if prepared.blocked:
        reasons = [
            f"{p.destination}: {p.refused or '; '.join(f.describe() for f in p.check.blocking)}"
            for p in prepared.parts
            if p.blocked
        ]
        raise PublishRefused("Not published: the message did not pass.", "\n".join(reasons))
    _require_online(ctx)
    state = get(ctx, prepared.incident_id).state
    dests = destinations or load_destinations(
        Path(state.playbook_path) if state.playbook_path else None
    )
    resume(ctx, prepared.incident_id, confirm_unknown=confirm_unknown, destinations=dests)
    state = get(ctx, prepared.incident_id).state
    held = [
        pub
        for part in prepared.parts
        if (pub := unsettled(state, part.destination)) is not None
        and part.destination not in resend
        and not confirm_resend(pub)
    ]
    if held:
        raise PublishRefused(
            "Not published: an earlier message may already be out.",
            "\n".join(describe_unsettled(pub, ctx.actor) for pub in held) + "\nNothing was sent.",
        )
    # The message is recorded as sent once, as `playbook status` records it (the timers
    # count from it), then each destination in three steps.
    append_one(
        ctx,
        prepared.incident_id,
        ev.STATUS_RENDERED,
        {
            "template": prepared.template,
            "status": prepared.status,
            "text": prepared.text,
            "variables": prepared.variables,
        },
    )
    outcomes: list[Outcome] = []
    for part in prepared.parts:
        publisher = dests.publishers[part.destination]
        # Each send's intent must be in the shared log before it goes (not only in the
        # local outbox): a teammate who cannot see it would publish the same update.
        _require_online(ctx)
        try:
            _record_intent(ctx, prepared.incident_id, part, publisher, part.destination in resend)
        except PublishHeld as held_by:
            outcomes.append(Outcome(part.destination, "held", detail=held_by.message))
            continue
        request = publisher.build(part.message, part.external_id)
        _require_shared(ctx, prepared.incident_id, part)
        outcome = _send(publisher, request, part.destination, part.message)
        if after_send is not None:
            after_send(part.destination)
        if outcome.external_id is None and part.external_id:
            outcome = Outcome(
                outcome.destination,
                outcome.outcome,
                part.external_id,
                outcome.url,
                outcome.http_status,
                outcome.detail,
            )
        append_one(
            ctx,
            prepared.incident_id,
            ev.PUBLISH_RESULT,
            _result_payload(part, outcome, part.message.text),
        )
        outcomes.append(outcome)
    return outcomes


class PublishHeld(PublishRefused):
    """Another responder's first post to a destination that keeps one record (a
    Statuspage incident) has no result yet: a second first post would make a second
    record. Nothing was recorded or sent to that destination."""


def _record_intent(ctx: Context, ref: str, part: Part, publisher: Publisher, resend: bool) -> None:
    """Append ``part``'s intent, decided on the log as it is when the store appends it
    (:meth:`EventStore.update`: no other responder's intent can land in between).

    Where the first message creates a record (``creates_record``): if the log already
    holds that record's id, the intent becomes an update of it (``part.external_id``);
    if another intent to create it waits for its result, nothing is appended and
    :class:`PublishHeld` says whose, unless the responder chose to resend. Two
    responders publishing the first update at once thus make one incident, not two.
    """

    def decide(state: IncidentState) -> list[tuple[str, dict[str, Any]]]:
        if publisher.creates_record:
            known = external_ids_of(state).get(part.destination)
            part.external_id = known  # someone else's first post may have landed meanwhile
            creating = next(
                (
                    pub
                    for pub in state.publications.values()
                    if pub.destination == part.destination and pub.result is None
                ),
                None,
            )
            if known is None and creating is not None and not resend:
                raise PublishHeld(
                    f"Not sent to {part.destination}: its first post is being made now.",
                    describe_unsettled(creating, ctx.actor),
                )
        return [(ev.PUBLISH_INTENDED, _intent_payload(part))]

    command(ctx, ref, decide)


def _require_shared(ctx: Context, ref: str, part: Part) -> None:
    """Stop before the send when the intent just appended waits in the local outbox
    (the shared store went away between the gate and the append): the result says
    nothing was sent, so the intent is never taken for a message that may be out."""
    outbox = team.outbox_of(ctx.store)
    if outbox is None or not outbox.pending():
        return
    append_one(
        ctx,
        ref,
        ev.PUBLISH_RESULT,
        _result_payload(
            part,
            Outcome(part.destination, "failed", detail="not sent: the shared store was lost"),
            part.message.text,
        ),
    )
    raise team.Offline(
        f"Not sent to {part.destination}: its intent is not in the shared log "
        "(the shared store could not be reached).",
        "Nothing more was sent. A teammate who cannot see the intent could publish the "
        "same update; run it again once the shared store answers "
        "(`playbook store status`).",
    )


def unsettled(state: IncidentState, destination: str) -> Publication | None:
    """The last publication to ``destination`` when its outcome is unknown (it may be
    out, nobody has said), else None."""
    last = None
    for pub in state.publications.values():
        if pub.destination == destination:
            last = pub
    return last if last is not None and last.outcome == "unknown" else None


def open_questions(state: IncidentState) -> list[Publication]:
    """Every destination's last publication whose outcome is unknown: the one source
    of what ``publish`` holds and ``publish --resume`` reports."""
    last: dict[str, Publication] = {}
    for pub in state.publications.values():
        last[pub.destination] = pub
    return [pub for pub in last.values() if pub.outcome == "unknown"]


def describe_unsettled(pub: Publication, actor: str) -> str:
    """What a person is told about ``pub``, whose outcome is unknown, in every front
    end: in flight (no result yet) or settled as "may have been sent"."""
    if pub.result is None:
        who = "you" if pub.actor == actor else pub.actor
        return (
            f"{pub.destination}: a '{pub.template}' message {who} started sending at "
            f"{pub.intended_at:%H:%M:%S} UTC has no result yet: it may be in flight now, "
            "or its sender crashed. Run it again in a moment; if it stays, look at the "
            f"destination and resend to send anyway (--resend {pub.destination}; Ctrl+R "
            "in the app)."
        )
    return (
        f"{pub.destination}: a '{pub.template}' message may have been sent before a crash "
        "(its outcome is unknown). Look at the destination; to send this message anyway, "
        f"resend it (--resend {pub.destination}; Ctrl+R in the app)."
    )


def pending(state: IncidentState) -> list[Publication]:
    """Publications intended and never given a result (a crash between send and result)."""
    return [p for p in state.publications.values() if p.result is None]


def _intent(ctx: Context, ref: str, key: str) -> dict[str, Any]:
    for event in reversed(get(ctx, ref).events):
        if event.type == ev.PUBLISH_INTENDED and event.payload.get("key") == key:
            return dict(event.payload)
    return {}


def resume(
    ctx: Context,
    ref: str,
    *,
    confirm_unknown: Callable[[Publication], bool] = lambda _pub: False,
    destinations: Destinations | None = None,
) -> list[Outcome]:
    """Settle every publication a crash left without a result, before anything new.

    Statuspage: found by the key in an incident's metadata → recorded as
    ``reconciled``; not found → sent now; its list not read to the end → recorded as
    ``unknown``. A destination with no record: sent again only if ``confirm_unknown``
    says so, else recorded as ``unknown`` (may have been sent).

    Another responder's intent is only looked up, never sent or marked unknown: it may
    be in flight now (their send has not answered yet), and sending it here would be
    the second post. Found, it is recorded as ``reconciled``; otherwise it stays
    pending, and :func:`open_questions` names it.
    """
    state = get(ctx, ref).state
    waiting = pending(state)
    if not waiting:
        return []
    _require_online(ctx)
    dests = destinations or load_destinations(
        Path(state.playbook_path) if state.playbook_path else None
    )
    outcomes: list[Outcome] = []
    for pub in waiting:
        intent = _intent(ctx, ref, pub.key)
        text = str(intent.get("text", ""))
        outcome = _settle(
            ctx, state, pub, intent, dests.publishers.get(pub.destination), confirm_unknown
        )
        if outcome is None:
            continue
        append_one(ctx, ref, ev.PUBLISH_RESULT, _result_payload(pub, outcome, text))
        outcomes.append(outcome)
    return outcomes


def _settle(
    ctx: Context,
    state: IncidentState,
    pub: Publication,
    intent: Mapping[str, Any],
    publisher: Publisher | None,
    confirm_unknown: Callable[[Publication], bool],
) -> Outcome | None:
    """The outcome to record for ``pub``, a publication without a result; None to leave
    it pending (another responder's, not found: it may be in flight)."""
    mine = pub.actor == ctx.actor
    external = intent.get("external_id") or None
    if publisher is None:
        if not mine:
            return None
        return Outcome(pub.destination, "unknown", detail="destination no longer configured")
    message = Message(
        incident_id=state.id,
        title=state.title,
        template=pub.template,
        status=pub.status,
        text=str(intent.get("text", "")),
        next_update=str(intent.get("next_update", "")),
        key=pub.key,
        drill=state.drill is not None,
        severity=state.severity,
        impact=str(intent.get("impact", "")),
        components=dict(intent.get("components") or {}),
    )
    if publisher.has_record:
        # A failed look-up (unreachable, an HTTP error) raises: the publication stays
        # pending, never resent on a guess. A list that cannot be read to its end is
        # not a failure to retry forever: it is "may have been sent".
        try:
            found = publisher.find(message)
        except NotConfirmed as why:
            if not mine:
                return None
            return Outcome(pub.destination, "unknown", external, detail=why.title)
        if found is not None:
            return Outcome(
                pub.destination,
                "reconciled",
                found.external_id,
                found.url,
                found.http_status,
                "found at the destination by its key; not sent again",
            )
        if not mine:
            return None  # in flight elsewhere, perhaps: its sender records it
        return _send(publisher, publisher.build(message, external), pub.destination, message)
    if not mine:
        return None
    if confirm_unknown(pub):
        return _send(publisher, publisher.build(message, external), pub.destination, message)
    return Outcome(
        pub.destination,
        "unknown",
        external,
        detail="may have been sent before a crash; not sent again",
    )
