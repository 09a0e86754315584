"""The use cases: everything the CLI and the app can do to an incident.

Each command reads the incident's events, folds them, decides what new events the
request means (refusing it with a clear error if the state does not allow it), and
appends them naming the last sequence it saw. If another process appended first, the
command re-reads and decides again, so concurrent writers never lose or reorder an
acknowledged event and never act on stale state. Every payload passes through
:func:`playbook.redaction.scrub_data` on its way to the store: no event holds a secret
the process knows, whichever use case built it. It then passes through
:func:`playbook.core.text.unpaired_escaped`: a lone surrogate a database or an endpoint
returned is recorded as its six-character escape (``\\ud800``), never refused with the
evidence lost. The one exception is the playbook's own snapshot in ``opened``, recorded
as the file was (see :meth:`Service.open`; the loader refuses a lone surrogate in it).
"""

from __future__ import annotations

import contextlib
import difflib
import getpass
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playbook.core import events as ev
from playbook.core.clock import Clock, SystemClock
from playbook.core.events import Event, NewEvent
from playbook.core.state import IncidentState, fold
from playbook.core.text import first_control, unpaired_escaped
from playbook.core.timers import Timers, compute
from playbook.errors import Conflict, NotFound, TemplateError, UsageError
from playbook.redaction import scrub_data
from playbook.render import export as exporters
from playbook.resources import builtin_runbooks, resolve_playbook
from playbook.store import ConcurrencyConflict, EventStore

if TYPE_CHECKING:
    from playbook.adapters.base import Adapter, Progress, RunContext, RunRequest
    from playbook.core.loader import LoadedPlaybook
    from playbook.core.model import Diagnostic, Playbook
    from playbook.guarded import GuardedRun
    from playbook.targets import Target

MAX_RETRIES = 8
"""Attempts at drawing a free incident id."""
MAX_NOTE = 20_000
"""Characters a note may have; longer text belongs in a file the note points at."""

Decision = list[tuple[str, dict[str, Any]]]


def typed_text(value: str, what: str, *, multiline: bool = False) -> str:
    """``value`` as a person typed it, for the incident log; refused (never altered)
    when it holds what no terminal, export or status page should receive.

    The policy for every title, note, reason, summary and actor name: what Unicode
    calls a control, format or separator character (:mod:`playbook.core.text`: terminal
    escapes, every bidirectional control, zero-width characters, U+2028) and bytes that
    are not UTF-8 are refused here, with where they are, so the log holds exactly what was typed and
    one bad title cannot block status messages later. With ``multiline`` (notes,
    resolution summaries) newlines and tabs are text, and Windows line endings become
    plain newlines.

    Raises:
        UsageError: naming the field, the character and its position.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(
            f"The {what} is not UTF-8 text (at character {exc.start + 1}).",
            "Type it again in UTF-8 (check the terminal's and the locale's encoding).",
        ) from None
    if multiline:
        value = value.replace("\r\n", "\n")
    found = first_control(value, multiline)
    if found is not None:
        position, shown = found
        allowed = (
            "newlines and tabs are fine"
            if multiline
            else "it is one line of plain text, without tabs or line breaks"
        )
        raise UsageError(
            f"The {what} contains a control character: {shown} at character {position}.",
            "Text typed into the incident is kept exactly as typed and shown in terminals, "
            "exports and status pages, so control characters, terminal escapes (colour "
            "codes), invisible format characters (direction marks and overrides, "
            f"zero-width characters) and line separators are refused; {allowed}.",
        )
    return value


def default_actor() -> str:
    """Who is acting: ``$PLAYBOOK_ACTOR``, ``$USER``, or the login name."""
    for var in ("PLAYBOOK_ACTOR", "USER", "LOGNAME"):
        value = os.environ.get(var)
        if value:
            return value
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


DRILL_PREFIX = "drill-"
"""Every drill's id starts with this, so no reference to one reads as a real incident."""
DRILL_MARK = "[DRILL — not a real incident]"
"""The first line of every status message written in a drill."""


def new_incident_id(now: datetime, prefix: str = "") -> str:
    """``YYYYMMDD-xxxx``: sortable by day, short enough to type at 3 a.m."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    suffix = "".join(secrets.choice(alphabet) for _ in range(4))
    return f"{prefix}{now:%Y%m%d}-{suffix}"


@dataclass(frozen=True)
class Incident:
    """An incident as read: its events and the state folded from them."""

    state: IncidentState
    events: list[Event]


def sections_payload(pb: Playbook) -> list[dict[str, Any]]:
    """The playbook's checklist, grouped, as stored in the ``opened`` event."""
    return [
        {
            "id": section_id,
            "title": title,
            "steps": [
                {
                    "id": step.id,
                    "title": step.title,
                    "items": [
                        {"ref": f"{section_id}.{step.id}.{item.key}", "text": item.text}
                        for item in step.items
                    ],
                }
                for step in steps
            ],
        }
        for section_id, title, steps in pb.sections()
    ]


@dataclass
class PreparedRun:
    """A diagnostic checked and ready to run; :meth:`cancel` stops it from any thread."""

    incident_id: str
    diagnostic_id: str
    diagnostic: Diagnostic
    values: dict[str, object]
    target: str
    adapter: Adapter
    request: RunRequest
    context: RunContext | None = None
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.context is not None:
            self.context.cancel()


class Service:
    """Incident use cases over an event store and a clock."""

    def __init__(
        self,
        store: EventStore,
        clock: Clock | None = None,
        actor: str | None = None,
        evidence_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.actor = actor or default_actor()
        data_dir = getattr(store, "data_dir", None)
        self.evidence_dir = evidence_dir or (Path(data_dir) / "evidence" if data_dir else None)
        """Where full diagnostic results are saved (None: results are not saved)."""
        self.backup_dir = (
            self.evidence_dir.parent / "backups" if self.evidence_dir is not None else None
        )
        """Where guarded actions save their backups (None: no action can apply)."""

    # ------------------------------------------------------------------ reading

    def incident_ids(self) -> list[str]:
        return self.store.incident_ids()

    def resolve_id(self, ref: str) -> str:
        """An incident id from the id itself or a unique part of it (e.g. its suffix)."""
        ref = ref.strip()
        ids = self.store.incident_ids()
        if ref in ids:
            return ref
        matches = [i for i in ids if i.startswith(ref) or i.endswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UsageError(
                f"{ref!r} matches {len(matches)} incidents",
                "Use more of the id: " + ", ".join(matches[:10]),
            )
        hint = difflib.get_close_matches(ref, ids, n=1)
        raise NotFound(
            f"No incident {ref!r}.",
            f"Did you mean {hint[0]}?" if hint else "`playbook incidents` lists them.",
        )

    def get(self, ref: str) -> Incident:
        incident_id = self.resolve_id(ref)
        events = self.store.read(incident_id)
        return Incident(fold(events, incident_id), events)

    def incidents(self) -> list[IncidentState]:
        return [fold(self.store.read(i), i) for i in self.store.incident_ids()]

    def timers(self, state: IncidentState, now: datetime | None = None) -> Timers:
        return compute(state, now or self.clock.now())

    def playbook_of(self, state: IncidentState) -> Playbook:
        """The playbook as it was when the incident opened (from the snapshot).

        Durations past today's limits (an incident opened by an older version) are clamped
        to them rather than refused: the incident stays usable, and no run gets a deadline
        longer than ``validate`` allows. The snapshot keeps its keys' order as written, so
        a MongoDB ``sort`` comes back as the playbook said it.

        Raises:
            StoreError: the snapshot in the ``opened`` event cannot be read as a playbook.
        """
        from pydantic import ValidationError

        from playbook.core.model import CLAMP_DURATIONS, Playbook
        from playbook.errors import StoreError

        try:
            return Playbook.model_validate(
                state.snapshot, strict=False, context={CLAMP_DURATIONS: True}
            )
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            raise StoreError(
                f"Incident {state.id}'s playbook snapshot cannot be read: {where}: {first['msg']}.",
                "Its events still show and export; diagnostics and actions need a readable "
                "snapshot.",
            ) from None

    # ------------------------------------------------------------------ writing

    def _command(self, ref: str, decide: Callable[[IncidentState], Decision]) -> IncidentState:
        """Decide on the incident's current events and append, in one store transaction."""
        incident_id = self.resolve_id(ref)
        self._check_actor()

        def make(events: list[Event]) -> list[NewEvent]:
            state = fold(events, incident_id)
            decision = decide(state)
            now = self.clock.now()
            if state.last_event_at is not None and now < state.last_event_at:
                now = state.last_event_at  # the log's time never runs backwards
            return [
                NewEvent(kind, unpaired_escaped(scrub_data(payload)), self.actor, now)
                for kind, payload in decision
            ]

        before, appended = self.store.update(incident_id, make)
        return fold([*before, *appended], incident_id)

    def _check_actor(self) -> None:
        """The actor's name goes into every event: the same policy as typed text."""
        typed_text(self.actor, "actor name (from --actor, PLAYBOOK_ACTOR or $USER)")

    def open(
        self,
        playbook: LoadedPlaybook | str | Path | None,
        title: str,
        severity: str | None = None,
        triggers: Iterable[str] = (),
        drill: Mapping[str, Any] | None = None,
    ) -> IncidentState:
        """Open a new incident on a playbook (a drill when ``drill`` describes one)."""
        from playbook.core.loader import LoadedPlaybook, load

        loaded = (
            playbook if isinstance(playbook, LoadedPlaybook) else load(resolve_playbook(playbook))
        )
        pb = loaded.playbook
        title = typed_text(title.strip(), "title")
        if not title:
            raise UsageError("An incident needs a title (--title).")
        self._check_actor()
        level = severity or pb.severity.default
        if pb.severity.level(level) is None:
            known = ", ".join(lvl.id for lvl in pb.severity.levels)
            raise UsageError(f"Unknown severity {level!r}.", f"This playbook has: {known}.")
        trigger_list = [typed_text(self._trigger_text(pb, t), "trigger") for t in triggers]
        payload = {
            "title": title,
            "severity": level,
            "triggers": trigger_list,
            "playbook": {
                "id": pb.id,
                "title": pb.title,
                "version": pb.version,
                "path": str(loaded.path),
                "sha256": loaded.sha256,
            },
            "snapshot": pb.model_dump(mode="json", by_alias=True),
            "sections": sections_payload(pb),
        }
        if drill is not None:
            payload["drill"] = dict(drill)
        # The playbook's own content is recorded as it is, not scrubbed: the diagnostics run
        # from this snapshot and it must match the file's recorded SHA-256 (a query naming a
        # role whose name is also an ${ENV} value must keep that name).
        payload = {
            key: value if key in ("snapshot", "sections") else unpaired_escaped(scrub_data(value))
            for key, value in payload.items()
        }
        now = self.clock.now()
        for _attempt in range(MAX_RETRIES):
            incident_id = new_incident_id(now, DRILL_PREFIX if drill is not None else "")
            try:
                appended = self.store.append(
                    incident_id, 0, [NewEvent(ev.OPENED, payload, self.actor, now)]
                )
            except ConcurrencyConflict:
                continue  # the random suffix collided; draw again
            return fold(appended, incident_id)
        raise Conflict("Could not find a free incident id; try again.")

    @staticmethod
    def _trigger_text(pb: Playbook, trigger: str) -> str:
        """A trigger given as ``group.item`` id becomes its text; free text stays as is."""
        for group in pb.triggers:
            for item in group.items:
                if trigger in (f"{group.id}.{item.key}", item.key):
                    return f"{group.title}: {item.text}"
        return trigger.strip()

    def acknowledge(self, ref: str) -> IncidentState:
        def decide(state: IncidentState) -> Decision:
            _require_open(state)
            if state.acknowledged_at is not None:
                raise Conflict(
                    f"Incident {state.id} was already acknowledged at {state.acknowledged_at:%H:%M} UTC."
                )
            return [(ev.ACKNOWLEDGED, {})]

        return self._command(ref, decide)

    def change_severity(self, ref: str, level: str, reason: str) -> IncidentState:
        reason = typed_text(reason.strip(), "reason")
        if not reason:
            raise UsageError("A severity change needs a reason (--reason).")

        def decide(state: IncidentState) -> Decision:
            _require_open(state)
            if level not in state.levels:
                raise UsageError(
                    f"Unknown severity {level!r}.",
                    f"This incident's playbook has: {', '.join(state.levels)}.",
                )
            if level == state.severity:
                raise Conflict(f"Incident {state.id} is already {level}.")
            return [(ev.SEVERITY_CHANGED, {"from": state.severity, "to": level, "reason": reason})]

        return self._command(ref, decide)

    def enter_phase(self, ref: str, phase: str) -> IncidentState:
        def decide(state: IncidentState) -> Decision:
            _require_open(state)
            ids = [p.id for p in state.phases]
            if phase not in ids:
                raise NotFound(f"No phase {phase!r}.", f"Phases: {', '.join(ids)}.")
            if phase == state.phase:
                return []
            return [(ev.PHASE_ENTERED, {"phase": phase})]

        return self._command(ref, decide)

    def choose_scenario(self, ref: str, scenario: str) -> IncidentState:
        """Follow a scenario: its detection signs, investigation and recovery come into view."""

        def decide(state: IncidentState) -> Decision:
            _require_open(state)
            known = [s["id"] for s in state.snapshot.get("scenarios", [])]
            if scenario not in known:
                raise NotFound(f"No scenario {scenario!r}.", f"Scenarios: {', '.join(known)}.")
            if scenario in state.scenarios:
                return []
            return [(ev.SCENARIO_CHOSEN, {"scenario": scenario})]

        return self._command(ref, decide)

    def _items_for(self, state: IncidentState, ref: str) -> list[str]:
        """Item refs named by ``ref``: an item, or every item of a step."""
        ref = ref.strip().strip(".")
        keys = list(state.checklist)
        if ref in state.checklist:
            return [ref]
        steps = {k.rsplit(".", 1)[0] for k in keys}
        step_matches = [s for s in steps if s == ref or s.endswith("." + ref)]
        item_matches = [k for k in keys if k.endswith("." + ref)]
        if len(item_matches) == 1 and not step_matches:
            return item_matches
        if len(step_matches) == 1 and not item_matches:
            return [k for k in keys if k.rsplit(".", 1)[0] == step_matches[0]]
        candidates = sorted(step_matches) + item_matches
        if candidates:
            raise UsageError(
                f"{ref!r} names more than one step or item.",
                "Say which:\n  " + "\n  ".join(candidates[:12]),
            )
        hint = difflib.get_close_matches(ref, keys + sorted(steps), n=3, cutoff=0.5)
        raise NotFound(
            f"No step or item {ref!r} in this incident's playbook.",
            ("Did you mean: " + ", ".join(hint))
            if hint
            else "`playbook show INCIDENT` lists them.",
        )

    def check(self, ref: str, item: str) -> IncidentState:
        """Tick an item, or every item of a step; enters the item's phase if it is later.

        After resolution only the post-incident sections can still be ticked.
        """

        def decide(state: IncidentState) -> Decision:
            wanted = [k for k in self._items_for(state, item) if k not in state.done]
            _require_checkable(state, wanted)
            decision: Decision = []
            if wanted:
                section = wanted[0].split(".", 1)[0]
                order = [p.id for p in state.phases]
                later = (
                    section in order
                    and state.phase in order
                    and order.index(section) > order.index(state.phase)
                )
                if later:
                    decision.append((ev.PHASE_ENTERED, {"phase": section}))
            decision += [(ev.ITEM_CHECKED, {"item": k}) for k in wanted]
            return decision

        return self._command(ref, decide)

    def uncheck(self, ref: str, item: str) -> IncidentState:
        def decide(state: IncidentState) -> Decision:
            wanted = [k for k in self._items_for(state, item) if k in state.done]
            _require_checkable(state, wanted)
            return [(ev.ITEM_UNCHECKED, {"item": k}) for k in wanted]

        return self._command(ref, decide)

    def note(self, ref: str, text: str) -> IncidentState:
        if not text.strip():
            raise UsageError("A note needs some text.")
        if len(text) > MAX_NOTE:
            raise UsageError(
                f"A note is limited to {MAX_NOTE:,} characters; this one has {len(text):,}.",
                "Save the text as a file (a log excerpt, a query's output) where the team "
                "keeps evidence, and note its path with a line on what it shows; "
                "`sha256sum FILE` gives a digest to note with it.",
            )
        text = typed_text(text, "note", multiline=True)

        def decide(state: IncidentState) -> Decision:
            return [(ev.NOTE_ADDED, {"text": text})]  # notes are welcome even after closing

        return self._command(ref, decide)

    def escalate(self, ref: str, to: str | None = None, reason: str = "") -> IncidentState:
        to = typed_text(to or "", "name to escalate to")
        reason = typed_text(reason, "reason")

        def decide(state: IncidentState) -> Decision:
            _require_open(state)
            target = (to or "").strip() or state.next_escalation()
            if not target:
                raise Conflict(
                    "Everyone on the escalation path has been escalated to.",
                    "Name someone with --to.",
                )
            return [(ev.ESCALATED, {"to": target, "reason": reason.strip()})]

        return self._command(ref, decide)

    def resolve(self, ref: str, summary: str = "") -> IncidentState:
        summary = typed_text(summary, "summary", multiline=True)

        def decide(state: IncidentState) -> Decision:
            _require_open(state)
            return [(ev.RESOLVED, {"summary": summary.strip()})]

        return self._command(ref, decide)

    def rename(self, ref: str, title: str) -> IncidentState:
        """Give the incident a new title; the old one stays in the timeline and exports.

        Allowed until the incident is closed (a title can be put right for the review).
        """
        title = typed_text(title.strip(), "title")
        if not title:
            raise UsageError("A new title needs some text.")

        def decide(state: IncidentState) -> Decision:
            if state.closed_at is not None:
                raise Conflict(
                    f"Incident {state.id} is closed.",
                    "Only notes can be added to a closed incident.",
                )
            if title == state.title:
                raise Conflict(f"Incident {state.id} already has that title.")
            return [(ev.RENAMED, {"from": state.title, "to": title})]

        return self._command(ref, decide)

    def close(self, ref: str) -> IncidentState:
        def decide(state: IncidentState) -> Decision:
            if state.closed_at is not None:
                raise Conflict(f"Incident {state.id} is already closed.")
            if state.resolved_at is None:
                raise Conflict(
                    f"Incident {state.id} is not resolved.",
                    "Resolve it first: playbook resolve ID.",
                )
            return [(ev.CLOSED, {})]

        return self._command(ref, decide)

    # ------------------------------------------------------------------ status messages

    def template_dir(self, state: IncidentState) -> Path:
        """Where the incident's status templates are: inside the playbook's folder.

        The rule :func:`playbook.core.loader.confined` applied when the playbook was
        loaded is applied again here, on the snapshot the incident recorded (it may have
        been opened by an older version, or the folder changed since).

        Raises:
            TemplateError: ``template_dir`` leads outside the playbook's folder.
            NotFound: the templates are no longer where they were.
        """
        from playbook.core.loader import confined, template_root

        template_dir = state.snapshot.get("communications", {}).get("template_dir", "templates")
        places = [(Path(state.playbook_path), template_dir)] if state.playbook_path else []
        builtin = builtin_runbooks().get(state.playbook_id)
        if builtin is not None:
            # An incident opened before the shipped templates moved inside runbooks/
            # recorded ``../templates``: the packaged runbook's own folder says where now.
            from playbook.core.loader import load

            places.append((builtin, template_dir))
            places.append((builtin, load(builtin).playbook.communications.template_dir))
        refused: ValueError | None = None
        for playbook_file, wanted in places:  # the playbook's folder, else the packaged one's
            try:
                found = confined(template_root(playbook_file), playbook_file.parent, wanted)
            except ValueError as why:
                refused = refused or why
                continue
            if found.is_dir():
                return found
        if refused is not None:
            raise TemplateError(
                f"Refused: the playbook's template_dir {refused}.",
                "Templates must be inside the playbook's folder.",
            )
        raise NotFound(
            f"The templates of playbook {state.playbook_id!r} are not where they were.",
            f"Expected them beside {state.playbook_path}.",
        )

    def status_variables(self, state: IncidentState, now: datetime | None = None) -> dict[str, str]:
        """The variables an incident fills in by itself."""
        moment = now or self.clock.now()
        level = state.levels.get(state.severity)
        return {
            "service": state.service,
            "incident_id": state.id,
            "title": state.title,
            "severity": state.severity,
            "severity_name": level.name if level else "",
            "opened_at": f"{state.opened_at:%Y-%m-%d %H:%M} UTC" if state.opened_at else "",
            "current_time": f"{moment:%Y-%m-%d %H:%M} UTC",
        }

    def _template(self, state: IncidentState, kind: str) -> dict[str, Any]:
        known = state.snapshot.get("communications", {}).get("templates", {})
        if kind not in known:
            raise NotFound(
                f"No status template {kind!r}.", f"This playbook has: {', '.join(known) or 'none'}."
            )
        return dict(known[kind])

    def render_status(self, state: IncidentState, kind: str, values: Mapping[str, str]) -> str:
        """The text of status message ``kind`` for ``state`` (the app's live preview, the
        CLI's --preview and what is recorded all come from here).

        A drill's message starts with :data:`DRILL_MARK` on a line of its own, so a
        rehearsal's message can never be read as a real incident's, wherever it is pasted.
        """
        from playbook.render.template_worker import render_isolated

        tmpl = self._template(state, kind)
        merged = {**self.status_variables(state), **values}
        # In a worker process killed at a hard deadline: a template is untrusted code.
        text = render_isolated(self.template_dir(state), tmpl["file"], merged, label=kind)
        return f"{DRILL_MARK}\n{text}" if state.drill is not None else text

    def preview_status(self, ref: str, kind: str, values: Mapping[str, str]) -> str:
        """Render a status message without recording it."""
        return self.render_status(self.get(ref).state, kind, values)

    def status(self, ref: str, kind: str, values: Mapping[str, str]) -> tuple[IncidentState, str]:
        """Render a status message and record its exact text."""
        rendered: dict[str, str] = {}

        def decide(state: IncidentState) -> Decision:
            tmpl = self._template(state, kind)
            text = self.render_status(state, kind, values)
            rendered["text"] = text
            return [
                (
                    ev.STATUS_RENDERED,
                    {
                        "template": kind,
                        "status": tmpl.get("status", ""),
                        "text": text,
                        "variables": dict(values),
                    },
                )
            ]

        state = self._command(ref, decide)
        return state, rendered["text"]

    # ------------------------------------------------------------------ diagnostics

    def prepare_diagnostic(
        self,
        ref: str,
        diagnostic_id: str,
        given: Mapping[str, object],
        targets: Mapping[str, Target],
    ) -> PreparedRun:
        """Everything checked before a diagnostic runs; nothing is sent yet.

        Raises:
            NotFound: no such diagnostic in the incident's playbook.
            Refused: the diagnostic writes, or its query is not a bounded read.
            UsageError: a parameter or the target is missing or wrong.
        """
        from playbook.adapters import plugins
        from playbook.adapters.base import RunRequest
        from playbook.adapters.readonly import Refused
        from playbook.core.diagnostics import resolve, substitute
        from playbook.targets import resolve_target

        self._check_actor()  # before anything runs: its result is recorded under this name
        incident = self.get(ref)
        state = incident.state
        if state.closed_at is not None:
            raise Conflict(
                f"Incident {state.id} is closed.", "Open a new incident to run diagnostics."
            )
        pb = self.playbook_of(state)
        diagnostic = pb.diagnostics.get(diagnostic_id)
        if diagnostic is None:
            hint = difflib.get_close_matches(diagnostic_id, list(pb.diagnostics), n=1)
            raise NotFound(
                f"No diagnostic {diagnostic_id!r} in playbook {pb.id!r}.",
                f"Did you mean {hint[0]}?" if hint else "`playbook diag list` lists them.",
            )
        if diagnostic.writes:
            raise Refused(
                f"Refused: {diagnostic_id} changes data; it is never run as a diagnostic.",
                diagnostic.caution or "Run it by hand, deliberately, with a backup.",
            )
        values = resolve(diagnostic.params, defaults_from(state, diagnostic, given))
        options: dict[str, Any] = {"params": values}
        if diagnostic.kind == "shell":
            from playbook.adapters.shell import refuse_option_values

            dumped = diagnostic.model_dump(by_alias=True)
            raw_query: dict[str, Any] = {
                k: dumped[k] for k in ("argv", "env", "network", "exit_codes")
            }
            flagged = {name for name, param in diagnostic.params.items() if param.option}
            refuse_option_values(raw_query["argv"], values, flagged)
            # The program must not read the incidents, evidence or backups either.
            options["unreadable"] = [str(self.evidence_dir.parent)] if self.evidence_dir else []
        else:
            raw_query = diagnostic.query.model_dump(by_alias=True, exclude_none=True)
        query = substitute(raw_query, values)
        if diagnostic.kind == "shell":
            query["argv"] = [str(a) for a in query["argv"]]  # type: ignore[index]
            query["env"] = {k: str(v) for k, v in query["env"].items()}  # type: ignore[index]
        target = resolve_target(diagnostic.target, targets, drill=state.drill is not None)
        adapter = plugins.load(diagnostic.kind)
        # What the responder's own config allows, read by the adapters under these keys;
        # a playbook cannot set them (they come from the targets, not the diagnostic).
        options["target"] = target.options
        options["allow_unsandboxed_shell"] = bool(
            getattr(targets, "allow_unsandboxed_shell", False)
        )
        request = RunRequest(diagnostic_id, query, target.uri, options=options)  # type: ignore[arg-type]
        adapter.check(request)
        return PreparedRun(
            state.id, diagnostic_id, diagnostic, values, target.name, adapter, request
        )

    def execute_diagnostic(
        self, prepared: PreparedRun, progress: Callable[[Progress], None] | None = None
    ) -> dict[str, Any]:
        """Run a prepared diagnostic; the evidence payload, whatever the outcome.

        Never raises for a failed run: an unreachable server, a deadline or a cancel
        is a result with verdict ``error`` and whatever rows arrived, labelled partial
        (and ``cancelled`` when it was cancelled). The full result is written to a file and
        fsynced before this returns.

        Raises:
            StoreError: the result file cannot be created; the diagnostic did not run.
        """
        from playbook.adapters.base import RunContext, RunError, Sink
        from playbook.core.diagnostics import ERROR, Verdict, evaluate
        from playbook.core.evidence import run_payload

        d = prepared.diagnostic
        started = self.clock.now()
        path = self._evidence_path(prepared.incident_id, prepared.diagnostic_id, started)
        try:
            sink = Sink(path, redact=True)  # evidence is shown and exported
        except OSError as exc:
            from playbook.errors import StoreError

            raise StoreError(
                f"Cannot write the result file {path}: {exc.strerror or exc}. "
                "The diagnostic was not run and nothing was recorded.",
                "Free some space or fix the data directory's permissions, then run it again.",
            ) from None
        ctx = RunContext(float(d.timeout), float(d.connect_timeout), progress)
        prepared.context = ctx
        metrics: dict[str, Any] = {}
        error = ""
        try:
            if prepared.cancelled:
                ctx.cancel()
            ctx.check()
            metrics = prepared.adapter.run(prepared.request, ctx, sink)
        except RunError as exc:
            error = exc.title + (f" {exc.message}" if exc.message else "")
        except Exception as exc:  # a driver's surprise must still leave evidence
            from playbook.adapters.base import scrub

            error = scrub(f"{type(exc).__name__}: {exc}", prepared.request.uri)
        finally:
            ctx.finish()
        sha = sink.close()
        ended = self.clock.now()
        verdict = (
            Verdict(ERROR, [], error) if error else evaluate(d.expect, metrics, prepared.values)
        )
        payload = run_payload(
            diagnostic=prepared.diagnostic_id,
            title=d.title,
            kind=d.kind,
            target=prepared.target,
            params=prepared.values,
            started=started,
            ended=ended,
            verdict=verdict,
            metrics=metrics,
            rows=sink.rows,
            rows_total=sink.count,
            partial=bool(error),
            error=error,
            file=str(path) if path else None,
            sha256=sha,
            cancelled=ctx.stopped == "cancel",
        )
        # The caller may show it before it is recorded: secrets masked, and a lone
        # surrogate an endpoint or a database returned written as its escape.
        return unpaired_escaped(scrub_data(payload))

    def record_diagnostic(self, ref: str, payload: dict[str, Any]) -> IncidentState:
        """Append a run's evidence to the incident (also after it was resolved or closed)."""
        return self._command(ref, lambda state: [(ev.DIAGNOSTIC_RUN, payload)])

    def run_diagnostic(
        self,
        ref: str,
        diagnostic_id: str,
        given: Mapping[str, object],
        targets: Mapping[str, Target],
        progress: Callable[[Progress], None] | None = None,
    ) -> tuple[IncidentState, dict[str, Any]]:
        """Prepare, run and record a diagnostic: the state after, and the evidence."""
        prepared = self.prepare_diagnostic(ref, diagnostic_id, given, targets)
        payload = self.execute_diagnostic(prepared, progress)
        return self.record_diagnostic(prepared.incident_id, payload), payload

    def _evidence_path(self, incident_id: str, diagnostic_id: str, at: datetime) -> Path | None:
        if self.evidence_dir is None:
            return None
        folder = self.evidence_dir / incident_id
        stem = f"{at:%Y%m%dT%H%M%S}Z-{diagnostic_id}"
        for n in range(1000):
            path = folder / (f"{stem}.jsonl" if n == 0 else f"{stem}-{n}.jsonl")
            if not path.exists():
                return path
        raise Conflict(f"Too many results named {stem} in {folder}.")

    # ------------------------------------------------------------------ guarded actions

    def start_action(
        self,
        ref: str,
        action_id: str,
        given: Mapping[str, object],
        targets: Mapping[str, Target],
        progress: Callable[[Progress], None] | None = None,
        hook: Callable[[str, str], None] | None = None,
    ) -> GuardedRun:
        """A new run of a guarded action, checked and ready for its dry run."""
        from playbook import guarded

        self._check_actor()  # before anything runs: every stage is recorded under this name

        return guarded.start(self, ref, action_id, given, targets, progress, hook)

    def resume_action(
        self,
        ref: str,
        run_id: str,
        targets: Mapping[str, Target],
        progress: Callable[[Progress], None] | None = None,
        hook: Callable[[str, str], None] | None = None,
    ) -> GuardedRun:
        """An earlier run of a guarded action, rebuilt from its events to roll it back."""
        from playbook import guarded

        self._check_actor()

        return guarded.resume(self, ref, run_id, targets, progress, hook)

    def record_action_stage(self, ref: str, payload: dict[str, Any]) -> IncidentState:
        """Append one stage of a guarded action (also after the incident was resolved)."""
        return self._command(ref, lambda state: [(ev.ACTION_STAGE, payload)])

    def record_drill_check(self, ref: str, payload: dict[str, Any]) -> IncidentState:
        """Append a drill's fingerprint comparison (refused for a real incident)."""

        def decide(state: IncidentState) -> Decision:
            if state.drill is None:
                raise UsageError(f"Incident {state.id} is not a drill; it has no fingerprint.")
            return [(ev.DRILL_CHECKED, payload)]

        return self._command(ref, decide)

    # ------------------------------------------------------------------ export

    def export(self, ref: str, fmt: str, tz: tzinfo | None = None) -> str:
        incident = self.get(ref)
        now = self.clock.now()
        if fmt == "json":
            return exporters.to_json(incident.events, now)
        if fmt == "markdown":
            return exporters.to_markdown(incident.events, now, tz)
        raise UsageError(f"Unknown export format {fmt!r}.", "Use markdown or json.")


def defaults_from(
    state: IncidentState, diagnostic: Diagnostic, given: Mapping[str, object]
) -> dict[str, object]:  # also used by the app to pre-fill its parameter dialog
    """``given`` plus each unset parameter whose `default_from` names a number that an
    earlier run of this incident produced (times as seconds since the epoch)."""
    out = dict(given)
    last = state.last_runs()
    for name, param in diagnostic.params.items():
        if name in out or not param.default_from:
            continue
        source, metric = param.default_from.split(".", 1)
        run = last.get(source)
        value = (run.payload.get("metrics") or {}).get(metric) if run else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = value
            if param.type == "datetime":
                # A number the database chose (1e300) may be no time at all: it is then
                # left a number, and the parameter's check says so, naming it.
                with contextlib.suppress(OverflowError, OSError, ValueError):
                    out[name] = datetime.fromtimestamp(value, UTC).isoformat()
    return out


def post_incident_ids(state: IncidentState) -> set[str]:
    """Ids of the post-incident sections, which stay open after resolution."""
    return {section["id"] for section in state.snapshot.get("post_incident", [])}


def _require_checkable(state: IncidentState, refs: list[str]) -> None:
    if state.closed_at is not None:
        raise Conflict(
            f"Incident {state.id} is closed.", "Only notes can be added to a closed incident."
        )
    if state.resolved_at is None:
        return
    post = post_incident_ids(state)
    blocked = [r for r in refs if r.split(".", 1)[0] not in post]
    if blocked:
        raise Conflict(
            f"Incident {state.id} is resolved: only post-incident items can be ticked now.",
            f"{blocked[0]} belongs to the response itself.",
        )


def _require_open(state: IncidentState) -> None:
    if state.closed_at is not None:
        raise Conflict(
            f"Incident {state.id} is closed.", "Only notes can be added to a closed incident."
        )
    if state.resolved_at is not None:
        raise Conflict(
            f"Incident {state.id} is resolved.",
            "What remains: post-incident items, notes, the export, and closing it.",
        )
