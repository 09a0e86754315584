"""The playbook format: what a YAML playbook may say, as a validated model.

(Over 600 lines: the whole format, one model per part, in the order a playbook is
written, so that an author's question has one place to look.)

Every model forbids unknown keys and validates strictly (``"1"`` is not an
int, ``3.10`` is not a string), so a typo or a YAML coercion is an error the
author sees, not a value the responder gets at 3 a.m. Field docstrings become
the descriptions of the JSON Schema that ``playbook schema`` prints.

This module names no kind of diagnostic or action. It holds what every one has
(:class:`DiagnosticBase`, :class:`ActionBase`: parameters, expectations, timeouts, locks)
and :func:`playbook_model`, which makes the model that validates a playbook from the kinds
the installed adapters contribute (:func:`playbook.adapters.plugins.playbook_model`
calls it). :class:`Playbook` itself knows no kind and is never validated.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError
from pydantic_core import core_schema as cs

from playbook.core import durations as limits
from playbook.core.durations import format_duration

__all__ = [
    "FORMAT_VERSION",
    "ActionBase",
    "DiagnosticBase",
    "Model",
    "ParamRef",
    "Playbook",
    "diagnostic_model",
    "format_duration",
    "kind_of",
    "playbook_model",
]

FORMAT_VERSION = 1

_SLUG = r"^[a-z0-9][a-z0-9-]*$"
Slug = Annotated[str, Field(pattern=_SLUG, max_length=64)]
"""A lower-case identifier: letters, digits and dashes."""

# ASCII digits: \d is any Unicode digit, and int() reads "٣" as 3.
_DURATION_RE = re.compile(r"^\s*([0-9]+)\s*(s|m|h|d)\s*\Z")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> object:
    """Turn ``"90m"`` / ``"1h"`` into seconds; leave anything else for the type check."""
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match is None:
            raise ValueError(
                f"{value!r} is not a duration; write a number and a unit: 30s, 15m, 1h, 2d"
            )
        return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("a duration is a string such as 15m or 1h")
    return value


CLAMP_DURATIONS = "clamp_durations"
"""Validation context key: clamp a duration past its field's limits instead of refusing
it. Set when an incident's snapshot is validated again (:meth:`Playbook.from_snapshot`):
a playbook that was valid when the incident opened must still run, within today's
limits, rather than make the incident unusable."""


def _within(maximum: int, minimum: int, what: str) -> Any:
    def check(value: int, info: ValidationInfo) -> int:
        if minimum <= value <= maximum:
            return value
        if info.context and info.context.get(CLAMP_DURATIONS):
            return max(minimum, min(value, maximum))
        if value < minimum:
            raise PydanticCustomError(
                "duration_too_short",
                "{what} must be at least {limit}",
                {"what": what, "limit": format_duration(minimum)},
            )
        raise PydanticCustomError(
            "duration_too_long",
            "{what} may be at most {limit}; this one is {given}",
            {"what": what, "limit": format_duration(maximum), "given": _long(value)},
        )

    return AfterValidator(check)


def _long(seconds: int) -> str:
    days = seconds // limits.DAY
    return f"{days:,} days" if days > 999 else format_duration(seconds)


def bounded_duration(maximum: int, what: str, minimum: int = 0) -> Any:
    """A :data:`Duration` type of at most ``maximum`` seconds (at least ``minimum``)."""
    return Annotated[
        int,
        BeforeValidator(parse_duration),
        _within(maximum, minimum, what),
        # What parse_duration accepts, both ways: "15m"-style text, or whole seconds
        # (the form every default is written in), so an editor accepts what the loader does.
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "pattern": r"^[0-9]+(s|m|h|d)$"},
                    {"type": "integer", "minimum": minimum, "maximum": maximum},
                ],
                "examples": ["15m", "1h"],
                "description": f"A number and a unit (30s, 15m, 1h, 2d) or whole seconds; "
                f"at most {format_duration(maximum)}.",
            }
        ),
    ]


Duration = bounded_duration(limits.MAX_TARGET, "a duration")
"""A duration written as a number and a unit (s, m, h, d); held as seconds. At most
30 days; fields that bound a run have tighter limits (:mod:`playbook.core.durations`)."""
TargetDuration = bounded_duration(limits.MAX_TARGET, "a target")
DiagnosticTimeout = bounded_duration(
    limits.MAX_DIAGNOSTIC_TIMEOUT, "a diagnostic's timeout", minimum=1
)
ConnectTimeout = bounded_duration(limits.MAX_CONNECT_TIMEOUT, "a connect timeout", minimum=1)
ActionTimeout = bounded_duration(limits.MAX_ACTION_TIMEOUT, "an action's timeout", minimum=1)
LockTtl = bounded_duration(limits.MAX_LOCK_TTL, "a lock's TTL", minimum=1)


def slugify(text: str) -> str:
    """The id an item gets when its author gives none: its text, lower-cased and dashed."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:64].rstrip("-") or "item"


class Model(BaseModel):
    """Base for every part of a playbook: strict, closed, immutable."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        use_attribute_docstrings=True,
        populate_by_name=False,
    )

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; views cached from the original's fields are not carried over."""
        copy = super().model_copy(update=update, deep=deep)
        for name in _cached_names(type(self)):
            copy.__dict__.pop(name, None)
        return copy


def _cached_names(cls: type) -> list[str]:
    return [
        name
        for klass in cls.__mro__
        for name, value in vars(klass).items()
        if isinstance(value, cached_property)
    ]


# --------------------------------------------------------------------------- checklists


class ChecklistItem(Model):
    """One thing a responder does and ticks off."""

    text: str = Field(min_length=1)
    """What to do, as the responder reads it."""
    id: Slug | None = None
    """Stable id used by `playbook check`; derived from the text when omitted."""
    options: list[str] = []
    """Alternatives listed under the item (shown, not ticked separately)."""
    guidance: str | None = None
    """Longer advice shown beside the item."""

    @property
    def key(self) -> str:
        return self.id or slugify(self.text)


class _StringOrItemSchema:
    """JSON Schema for an item that may be written as a bare string."""

    def __get_pydantic_json_schema__(
        self, schema: cs.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [{"type": "string", "minLength": 1}, handler(schema)]}


def _item_from_string(value: object) -> object:
    if isinstance(value, str):
        return {"text": value}
    if isinstance(value, dict | ChecklistItem):
        return value
    raise PydanticCustomError("string_type", "an item is text, or a mapping with a text key")


Item = Annotated[ChecklistItem, BeforeValidator(_item_from_string), _StringOrItemSchema()]
"""A checklist item: a string, or a mapping with text, id, options, guidance."""


class Step(Model):
    """A numbered step of a phase or scenario: a title and the items under it."""

    id: Slug
    """Stable id, unique within its phase or section."""
    title: str
    """The step's heading."""
    guidance: str | None = None
    """What this step is for, shown above its items."""
    items: list[Item] = []
    """The checklist of this step."""
    diagnostics: list[Slug] = []
    """Ids of diagnostics (see `diagnostics`) that help with this step."""
    procedures: list[Slug] = []
    """Ids of recovery procedures (see `recovery_procedures`) this step may use."""
    templates: list[Slug] = []
    """Ids of status-page templates (see `communications.templates`) this step sends."""
    actions: list[Slug] = []
    """Ids of guarded actions (see `actions`) that change data for this step."""


# --------------------------------------------------------------------------- severity


LEVEL_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
"""A severity level's id: ``SEV-1``, ``P2``, ``critical``. Any short name of letters,
digits, ``-`` and ``_``; its place in the list, not its digits, says how severe it is."""

Cadence = bounded_duration(limits.MAX_TARGET, "a cadence", minimum=1)
"""How long between two status updates: never zero (a zero cadence asks for an update
every instant, so its timer would be breached for ever)."""

Audience = Literal["internal", "external"]
AUDIENCES: tuple[str, ...] = ("external", "internal")
"""Who a status message is for. ``external`` (the status page, customers) is the default:
it is what a single schedule or ``status_update_every`` has always meant."""

Notify = Literal["page", "ticket", "none"]


class UpdateStep(Model):
    """One step of a level's status-update schedule.

    A schedule is read in order. Leading ``within`` steps are one post each: the first
    post is due ``within`` of the opening, the next ``within`` of that post, and so on.
    Then ``every`` steps: after each post, the next is due ``every`` later, using the
    first step whose ``until`` (time since the opening) is not yet reached when the post
    is made; a step without ``until`` holds for ever after.
    """

    within: Cadence | None = None
    """This one post is due within this long of the opening (or of the previous post)."""
    every: Cadence | None = None
    """After each post, the next is due this much later."""
    until: Duration | None = None
    """Only while the incident is younger than this (measured from the opening)."""

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.within is None) == (self.every is None):
            raise PydanticCustomError(
                "update_step", "a schedule step says either `within` or `every` (not both)"
            )
        if self.within is not None and self.until is not None:
            raise PydanticCustomError(
                "update_step", "`until` goes with `every`; a `within` step is one post"
            )
        return self


UpdateSchedule = list[UpdateStep]


def _updates_shape(value: object) -> str:
    """Which form of ``updates`` an author wrote, so a mistake is reported against that
    form alone (not as three failed alternatives)."""
    if isinstance(value, list):
        return "schedule-list"
    if isinstance(value, dict):
        return "schedule-audiences"
    return "schedule-word"


Updates = Annotated[
    Annotated[Literal["none"], Tag("schedule-word")]
    | Annotated[UpdateSchedule, Tag("schedule-list")]
    | Annotated[dict[Audience, UpdateSchedule], Tag("schedule-audiences")],
    Discriminator(_updates_shape),
]


class SeverityLevel(Model):
    """One severity level: its targets, who is told, and how often updates are due."""

    id: Annotated[str, Field(pattern=LEVEL_ID, max_length=32)]
    """``SEV-1``, ``P2``, ``critical``: letters, digits, ``-`` and ``_``. Levels are
    listed most severe first; the order is the meaning, not any digit in the id."""
    name: str
    """Short name, e.g. High."""
    response: TargetDuration | None = None
    """Time from opening to acknowledgement: the team acknowledges and begins response.
    Absent: no response timer at this level."""
    resolution: TargetDuration | None = None
    """Time from opening to resolution. Absent: no resolution timer at this level."""
    status_update_every: Cadence | None = None
    """Shorthand for ``updates: [{every: …}]``: one external update each this long."""
    updates: Updates | None = None
    """The status-update schedule, e.g. ``[{within: 5m}, {every: 20m, until: 2h},
    {every: 1h}]``; or per audience, ``{external: […], internal: […]}``. A plain list
    is the external schedule. ``none`` or an empty list: no updates expected."""
    notify: Notify = "page"
    """How the team is told of an incident at this level: ``page`` someone, open a
    ``ticket``, or ``none``. A level that does not page asks for no escalation."""
    escalation: list[str] | None = None
    """Who is escalated to at this level, in order (default: the policy's path)."""
    description: str = ""
    """When this level applies."""
    defined_by: Literal["source", "playbook"] = "source"
    """`source` when the targets come from the playbook's source document; `playbook`
    when this file defines them because the source does not."""

    @field_validator("resolution")
    @classmethod
    def _response_within_resolution(cls, value: int | None, info: ValidationInfo) -> int | None:
        # Here rather than in the loader's reference checks, so it is reported in the same
        # run as every other mistake in the level.
        # An incident's snapshot (validated again with CLAMP_DURATIONS) must still run,
        # whatever it says: the check is for the author, at `validate`.
        if info.context and info.context.get(CLAMP_DURATIONS):
            return value
        response = info.data.get("response")
        if value is not None and response is not None and response > value:
            raise PydanticCustomError(
                "response_after_resolution",
                "the response target ({response}) is longer than the resolution target "
                "({resolution}): a team cannot acknowledge after it must have resolved",
                {"response": format_duration(response), "resolution": format_duration(value)},
            )
        return value

    def schedule(self, audience: str = "external") -> list[UpdateStep]:
        """The update schedule for ``audience``: empty when none is expected."""
        return schedule_of(self.updates, self.status_update_every, audience)


def schedule_of(updates: object, every: object, audience: str = "external") -> list[UpdateStep]:
    """The schedule a level's ``updates`` and ``status_update_every`` give ``audience``."""
    if updates == "none":
        return []
    if isinstance(updates, dict):
        return list(updates.get(audience, []))
    if isinstance(updates, list):
        return list(updates) if audience == "external" else []
    if audience == "external" and isinstance(every, int) and every > 0:
        return [UpdateStep(every=every)]
    return []


class Role(Model):
    """A role someone holds during an incident (incident commander, scribe, …)."""

    id: Slug
    """``commander``, ``deputy``, ``scribe``, ``subject-expert``, ``liaison``."""
    name: str
    description: str = ""


class SeverityPolicy(Model):
    """The severity table: levels, default, escalation."""

    default: str
    """The level a new incident starts at."""
    levels: list[SeverityLevel] = Field(min_length=1)
    """Every level, most severe first."""
    escalation_path: list[str] = Field(min_length=1)
    """Who is escalated to, in order (a level may give its own ``escalation``)."""
    escalation_basis: str = ""
    """What decides an escalation."""
    escalation_rule: str = ""
    """When the severity itself may be raised."""

    def level(self, level_id: str) -> SeverityLevel | None:
        return next((lvl for lvl in self.levels if lvl.id == level_id), None)

    def rank(self, level_id: str) -> int:
        """How severe ``level_id`` is: 0 for the most severe; past the end if unknown."""
        ids = [lvl.id for lvl in self.levels]
        return ids.index(level_id) if level_id in ids else len(ids)

    def escalation_for(self, level_id: str) -> list[str]:
        """Who is escalated to at ``level_id``: its own path, else the policy's; nobody
        at a level that does not page."""
        level = self.level(level_id)
        if level is None:
            return list(self.escalation_path)
        if level.notify == "none":
            return []
        return list(level.escalation if level.escalation is not None else self.escalation_path)


# --------------------------------------------------------------------------- triggers, phases


class TriggerGroup(Model):
    """A kind of signal that opens an incident."""

    id: Slug
    title: str
    items: list[Item] = Field(min_length=1)
    """The signals of this kind."""


Stage = Literal["containment", "investigation", "recovery", "restoration"]


class Phase(Model):
    """A timed phase of the response procedure."""

    id: Slug
    """Stable id, unique among phases, scenarios and sections."""
    title: str
    stage: Stage
    """Which of the app's four stages shows this phase."""
    starts: TargetDuration
    """When the phase's window opens, measured from the incident's opening."""
    ends: TargetDuration
    """When the phase's window closes, measured from the incident's opening."""
    steps: list[Step] = Field(min_length=1)


class Section(Model):
    """A group of steps outside the timed phases (initial assessment, post-incident)."""

    id: Slug
    title: str
    steps: list[Step] = Field(min_length=1)


class Scenario(Model):
    """A specific kind of data integrity incident."""

    id: Slug
    title: str
    summary: str = ""
    phase: Slug
    """The phase in which this scenario's investigation starts."""
    detection: list[Item] = Field(min_length=1)
    """Detection signs: what the responder may observe."""
    investigation: Step
    """How to investigate, with the diagnostics that do it."""
    recovery: list[Item] = Field(min_length=1)
    """Recovery procedures for this scenario."""


# --------------------------------------------------------------------------- diagnostics


class ParamRef(Model):
    """A typed parameter placed into a query: ``{$param: name}``."""

    param: str = Field(alias="$param", pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$", max_length=64)
    """The parameter's name, as a key of the diagnostic's `params`."""
    as_: Literal["value", "field_ref"] = Field("value", alias="as")
    """`value` puts the value in; `field_ref` puts ``$`` + value (an aggregation field path)."""

    model_config = ConfigDict(populate_by_name=False)


ParamType = Literal["string", "int", "float", "bool", "datetime", "objectid", "field", "list"]


class Param(Model):
    """A typed input of a diagnostic, asked of the responder or defaulted."""

    type: ParamType
    """string, int, float, bool, datetime (ISO 8601), objectid, field (a field name), list."""
    items: ParamType | None = None
    """Type of each element when `type` is list."""
    description: str = ""
    default: Any = None
    """Used when the responder gives no value; omit to make the parameter required."""
    default_from: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]*\.[A-Za-z0-9_:.-]+$")
    """``diagnostic.metric``: the default is that number from the diagnostic's last run
    in this incident (a datetime parameter reads it as seconds since the epoch)."""
    choices: list[str | int] = []
    """Allowed values, when only some make sense."""
    option: bool = False
    """Shell diagnostics: true when the value may start with `-`, so that the program
    reads it as an option. Otherwise such a value is refused before anything runs: a
    parameter is data, and `-delete` given to `find` would be an instruction."""


class Expectation(Model):
    """What a healthy result looks like; a result that misses it gets `verdict`."""

    metric: str
    """What is compared: count, rows, age_seconds, drop_percent, present, …"""
    op: Literal["eq", "ne", "lt", "le", "gt", "ge"]
    value: int | float | bool | ParamRef
    """A number, or ``{$param: name}`` (a datetime parameter compares as epoch seconds)."""
    verdict: Literal["fail", "warn"] = "fail"
    """The verdict when the expectation is not met."""
    because: str = ""
    """Why this is what healthy looks like."""


class DiagnosticBase(Model):
    """What every diagnostic says, whatever its kind; each kind's model adds ``kind`` and
    its own fields.

    An adapter contributes the model of its kind (:attr:`playbook.adapters.base.Adapter.
    diagnostic_model`, or a ``query_model`` that :func:`diagnostic_model` wraps) and the
    playbook model is assembled from the installed ones (:func:`playbook_model`): this
    module names no kind.
    """

    if TYPE_CHECKING:  # declared by each kind's model, as ``kind: Literal["<kind>"]``
        kind: str

    drill_service: ClassVar[bool] = True
    """Whether a drill must give this diagnostic's target a sandbox service. False for a
    kind that runs on the responder's own machine (shell), whose target names nothing a
    drill could stand in for."""

    title: str
    """What the diagnostic checks, in a few words."""
    description: str = ""
    target: Slug
    """A named target resolved from configuration at run time; never a URI."""
    params: dict[str, Param] = {}
    """Typed inputs, by name."""
    expect: list[Expectation] = []
    """What a healthy result looks like."""
    timeout: DiagnosticTimeout = 30
    """Deadline for the whole run, connecting included (at most 1h)."""
    connect_timeout: ConnectTimeout = 5
    """Deadline for reaching the server."""
    writes: bool = False
    """True when the query changes data; such a diagnostic is never run as a diagnostic."""
    caution: str = ""
    """What the responder must know before running it."""
    source: str = ""
    """The query as the source document wrote it, shown for reference."""

    def problems(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """What is wrong with this diagnostic that no one field can say (its SQL uses a
        placeholder that is not one of its ``params``): the path below the diagnostic and
        the message, for the loader to report with file and line. None by default."""
        return iter(())


Diagnostic = DiagnosticBase
"""A diagnostic of any installed kind (for annotations: the model of each kind is its
adapter's)."""


# --------------------------------------------------------------------------- guarded actions


class IndexSpec(Model):
    """A MongoDB index as the schema promises it."""

    keys: dict[str, Literal[1, -1]] = Field(min_length=1)
    name: str | None = None
    unique: bool = False
    expire_after_seconds: int | None = Field(None, ge=0)
    """Set for a TTL index."""


class LockSpec(Model):
    """The lock held while an action applies (and rolls back)."""

    name: str | None = None
    """Lock name on the target; defaults to ``playbook:action:<action id>``."""
    ttl: LockTtl = 600
    """The lock expires this long after it was last renewed, so a killed run frees it."""


class VerifyStep(Model):
    """A diagnostic re-run after apply, with its own expectations."""

    diagnostic: Slug
    params: dict[str, Any] = {}


def _verify_from_string(value: object) -> object:
    return {"diagnostic": value} if isinstance(value, str) else value


class _StringOrVerifySchema:
    """JSON Schema for a verify step that may be written as a bare diagnostic id."""

    def __get_pydantic_json_schema__(
        self, schema: cs.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [{"type": "string", "pattern": _SLUG, "maxLength": 64}, handler(schema)]}


Verify = Annotated[VerifyStep, BeforeValidator(_verify_from_string), _StringOrVerifySchema()]


class ActionBase(Model):
    """What every guarded action says, whatever its kind; each kind's model adds ``kind``
    and its ``do:`` (:attr:`playbook.adapters.base.Adapter.action_model`)."""

    if TYPE_CHECKING:  # declared by each kind's model
        kind: str
        do: Any

    title: str
    description: str = ""
    target: Slug
    """The named target it writes to."""
    params: dict[str, Param] = {}
    confirm: str | None = None
    """What the responder types to confirm; defaults to the target's name."""
    lock: LockSpec = LockSpec()
    verify: list[Verify] = []
    """Diagnostics re-run after apply; a verdict other than pass offers rollback."""
    batch: int = Field(1000, ge=1, le=100_000)
    """Items written per round trip."""
    timeout: ActionTimeout = 900
    """Deadline for each stage (dry run, backup, apply, rollback); at most 6h."""
    connect_timeout: ConnectTimeout = 5
    caution: str = ""
    """What the responder must know before confirming."""


Action = ActionBase
"""A guarded action of any installed kind (for annotations)."""


# --------------------------------------------------------------------------- communications


class TemplateVariable(Model):
    """A variable a status template needs.

    ``source: incident`` variables are filled from the incident: ``service``,
    ``incident_id``, ``title``, ``severity`` (the level's id now) and ``severity_name``,
    ``opened_at``, ``current_time``, ``phase`` and ``phase_title``, ``next_update_due``
    (ISO 8601 UTC of the update due after this one, for the template's audience),
    ``next_update_due_human`` (``14:25 UTC``), ``next_update_in`` (``20m 00s``),
    ``roles`` (``commander: alice, scribe: bob``) and ``commander``. Any other variable
    is asked of the responder (``--set``).
    """

    description: str = ""
    source: Literal["incident", "responder"] = "responder"
    """`incident`: filled from the incident; `responder`: asked of the responder."""


StatusPageState = Literal["investigating", "identified", "monitoring", "resolved"]


class StatusTemplate(Model):
    """A status-page message template."""

    title: str
    file: str
    """Path of the Jinja template, relative to the playbook's template directory."""
    status: StatusPageState
    """The status-page state this message puts the incident in."""
    audience: Audience = "external"
    """Who it is for: ``external`` (status page, customers) or ``internal`` (the team,
    executives). Each audience has its own update schedule."""
    phase: Slug
    """The phase in which this message is usually sent."""
    variables: dict[str, TemplateVariable] = {}


class CommsRule(Model):
    """A content rule of the comms check: the message must contain one of ``any``."""

    id: Slug
    wants: str = Field(min_length=1, max_length=300)
    """The sentence it wanted, shown when it fails ('say when the next update comes')."""
    any: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=100
    )
    """Phrases, any of which satisfies the rule (case-insensitive; not patterns)."""
    with_time: bool = False
    """The phrase must share a sentence with a time (HH:MM)."""
    kinds: list[Slug] = []
    """Only for these templates (empty: every one)."""
    statuses: list[str] = []
    """Only for messages setting one of these statuses (empty: every one)."""
    skip_statuses: list[str] = []
    """Not for messages setting one of these statuses."""


class CommsChecks(Model):
    """What the comms check asks of a message (empty rules: the defaults)."""

    rules: list[CommsRule] = []
    internal_domains: list[Annotated[str, Field(min_length=1, max_length=253)]] = []
    """Domains whose host names must never appear in a published message."""


class Communications(Model):
    """Status-page messages."""

    template_dir: str = "templates"
    """Where the templates live, relative to the playbook file, inside its folder (no
    absolute path, nothing that leads out; see SECURITY.md)."""
    templates: dict[Slug, StatusTemplate] = {}
    checks: CommsChecks = CommsChecks()
    """The comms check run before a message is published (playbook.core.commscheck)."""


# --------------------------------------------------------------------------- procedures, tables


class Command(Model):
    """A command a responder may copy and run by hand. `playbook` never runs it."""

    description: str = ""
    language: str = "bash"
    code: str


class Procedure(Model):
    """A data recovery procedure: steps and commands to copy."""

    id: Slug
    title: str
    summary: str = ""
    steps: list[Item] = []
    commands: list[Command] = []


Cell = str | int | float


class Table(Model):
    """A reference table of the appendix."""

    id: Slug
    title: str
    columns: list[str] = Field(min_length=1)
    rows: list[list[Cell]] = Field(min_length=1)


# --------------------------------------------------------------------------- drills


ServiceKind = Literal["redis", "postgres", "mongo", "http", "local"]
"""What a drill's sandbox can give a target: a real redis-server, a real PostgreSQL, a
MongoDB stand-in (mongomock, in the drill's own process), a local HTTP endpoint, or
``local``: this machine (target ``local:``) with a small file system of its own, for shell
diagnostics and actions (:mod:`playbook.drill.localfs`)."""


class MongoDrillOp(Model):
    """A change to the MongoDB stand-in. Documents are Extended JSON (``{"$oid": …}``,
    ``{"$date": …}``, ``{"$numberLong": …}``), so types are exact."""

    op: Literal["insert", "update", "delete", "create_index", "drop_index"]
    collection: str = Field(min_length=1)
    documents: list[dict[str, Any]] = []
    """insert: the documents."""
    filter: dict[str, Any] = {}
    """update, delete: which documents (all when empty)."""
    update: dict[str, Any] = {}
    """update: the update document, e.g. ``{"$set": {"guild_id": "123"}}``."""
    index: IndexSpec | None = None
    """create_index: the index."""
    name: str | None = None
    """drop_index: the index's name."""


class LiveAnswer(Model):
    """An HTTP stub's answer read from the sandbox when it is asked, not fixed at set-up:
    a drill must answer as the real system would, so after the repair the stand-in says
    what the real one would say then (``playbook.drill.routes``).

    The SQL goes through the diagnostics' PostgreSQL reader (one read-only statement,
    the server's parser and catalog asked, under the deadline below). A statement the
    reader refuses, or a read that fails, is answered with HTTP 500 and the reader's
    message, never with either body."""

    from_: Slug = Field(alias="from")
    """The drill's postgres service the SQL reads (a key of ``services``)."""
    sql: str = Field(min_length=1, max_length=10_000)
    """One read-only statement (no parameters). Whether it returns a row picks the body."""
    rows: Any
    """The JSON body served while the SQL returns at least one row (the faulty state,
    typically). ``{$row: column}`` anywhere in it is that column of the first row."""
    no_rows: Any
    """The JSON body served while the SQL returns no row (the healthy state, typically)."""
    timeout: DiagnosticTimeout = 5
    """The read's deadline, connecting included; keep it below the diagnostic's own."""


class DrillStep(Model):
    """One step of a drill's set-up, on one target: exactly one of the ways below."""

    target: Slug
    title: str = ""
    """What the step does, in words (shown while the drill sets up)."""
    redis: list[list[str | int]] | None = None
    """redis: commands sent as written, e.g. ``[SET, key, value]``."""
    delete: str | None = None
    """redis: delete every key matching this SCAN pattern."""
    sql: str | None = None
    """postgres: statements run in one transaction."""
    mongo: list[MongoDrillOp] | None = None
    """mongo: changes to the stand-in, in order."""
    serve: dict[str, Any] | None = None
    """http: URL path -> the JSON body served there (replacing what was served)."""
    answer: dict[str, LiveAnswer] | None = None
    """http: URL path -> a body read from the sandbox at each request (replacing what
    was served there)."""
    generate: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    """A data generator by name (built in, or registered under the
    ``playbook.drill_data`` entry-point group), given ``with``."""
    with_: dict[str, Any] = Field({}, alias="with")

    @property
    def way(self) -> str:
        """Which of the ways this step uses (the model makes sure there is one)."""
        return next(w for w in _STEP_WAYS if getattr(self, w) is not None)

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        given = [w for w in _STEP_WAYS if getattr(self, w) is not None]
        if len(given) != 1:
            ways = ", ".join(_STEP_WAYS)
            found = ", ".join(given) or "none"
            raise ValueError(f"a step takes exactly one of {ways} (found: {found})")
        if self.with_ and self.generate is None:
            raise ValueError("'with' is for a generate step")
        return self


_STEP_WAYS = ("redis", "delete", "sql", "mongo", "serve", "answer", "generate")
STEP_KINDS: dict[str, tuple[str, ...]] = {
    "redis": ("redis", "delete", "generate"),
    "postgres": ("sql", "generate"),
    "mongo": ("mongo", "generate"),
    "http": ("serve", "answer", "generate"),
    "local": ("generate",),
}
"""Which step ways fit each kind of service."""


class DrillFingerprint(Model):
    """What of a target's data is compared before the fault and after the recovery."""

    target: Slug
    keys: list[str] = []
    """redis: SCAN patterns; every matching key's type and whole value."""
    tables: list[str] = []
    """postgres: tables; every row, in key order."""
    collections: list[str] = []
    """mongo: collections; every document and index."""
    files: list[str] = []
    """local: glob patterns under the service's folder; every matching file's content."""


class Drill(Model):
    """A rehearsal of this playbook's incident on a sandbox (``playbook drill``)."""

    title: str
    """The incident rehearsed, in a line."""
    briefing: str = ""
    """What the responder is told when the drill starts (the page they would get)."""
    source: str = ""
    """Which seed or real incident the drill is shaped like."""
    services: dict[Slug, ServiceKind] = Field(min_length=1)
    """Target name -> the sandbox service that stands in for it."""
    load: list[DrillStep] = []
    """Data loaded before the fingerprint is taken."""
    fault: list[DrillStep] = Field(min_length=1)
    """What goes wrong: applied after the fingerprint, before the incident opens."""
    fingerprint: list[DrillFingerprint] = Field(min_length=1)
    """The data that recovery must bring back exactly as it was."""
    script: str | None = None
    """A headless script that detects and repairs the fault (``--headless`` runs it),
    relative to this file."""


# --------------------------------------------------------------------------- the playbook


class Playbook(Model):
    """An incident-response playbook."""

    # Never validated itself (it knows no kind): :func:`playbook_model` derives the model
    # that is, so building this one's validator at import would be wasted time.
    model_config = ConfigDict(defer_build=True)

    kinds_help: ClassVar[Mapping[str, str]] = MappingProxyType({})
    """Where the kinds of ``diagnostics`` and ``actions`` come from, by field: added to
    the message for an unknown kind (set by whoever assembled the model)."""
    unavailable: ClassVar[Mapping[str, str]] = MappingProxyType({})
    """Kinds that are installed but could not be loaded, with why: named when a playbook
    uses one."""

    version: Literal[1]
    """Format version of this file. The only version is 1."""
    id: Slug
    title: str
    summary: str = ""
    service: str
    """The service this playbook protects, as status messages name it."""
    severity: SeverityPolicy
    roles: list[Role] = []
    """The roles an incident records holders of (``playbook role ID ROLE PERSON``)."""
    enforce_roles: bool = False
    """Make the roles binding (team mode): only whoever holds ``commander`` changes the
    severity, resolves or closes; the commander role changes hands only by a handover the
    current commander offers and the new one accepts. While nobody holds ``commander``
    anyone may act (and take it), so a fresh incident is never stuck. Needs a role with
    id ``commander``. A coordination aid, not access control: anyone who can write to the
    incident log can write any name."""
    triggers: list[TriggerGroup] = []
    assessment: Section
    """The initial assessment, done before the phases start."""
    phases: list[Phase] = Field(min_length=1)
    scenarios: list[Scenario] = []
    post_incident: list[Section] = []
    communications: Communications = Communications()
    recovery_procedures: list[Procedure] = []
    appendix: list[Table] = []
    diagnostics: dict[Slug, Diagnostic] = {}
    actions: dict[Slug, Action] = {}
    """Guarded actions: the only way `playbook` changes data (dry run, backup,
    confirmation, lock, apply, verify, rollback)."""
    drill: Drill | None = None
    """How to rehearse this playbook's incident on a sandbox (``playbook drill``)."""

    @model_validator(mode="after")
    def _enforced_roles_name_a_commander(self) -> Self:
        if self.enforce_roles and not any(r.id == "commander" for r in self.roles):
            raise ValueError(
                "enforce_roles needs a role with id 'commander' under roles: (the one who "
                "changes the severity and resolves)"
            )
        return self

    # -- lookups used by the service, the exporters and the app

    def phase(self, phase_id: str) -> Phase | None:
        return next((p for p in self.phases if p.id == phase_id), None)

    def sections(self) -> Iterator[tuple[str, str, list[Step]]]:
        """Every checklist group as (id, title, steps), in reading order."""
        yield from self._sections

    @cached_property
    def _sections(self) -> tuple[tuple[str, str, list[Step]], ...]:
        # Built once per playbook: the app asks for steps on every redraw.
        out = [(self.assessment.id, self.assessment.title, self.assessment.steps)]
        out += [(phase.id, phase.title, phase.steps) for phase in self.phases]
        for scenario in self.scenarios:
            steps = [
                Step(id="detection", title="Detection signs", items=scenario.detection),
                scenario.investigation,
                Step(id="recovery", title="Recovery procedures", items=scenario.recovery),
            ]
            out.append((scenario.id, f"Scenario: {scenario.title}", steps))
        out += [(section.id, section.title, section.steps) for section in self.post_incident]
        return tuple(out)

    def checklist(self) -> dict[str, str]:
        """Every checkable item as ``section.step.item`` -> its text, in reading order."""
        return dict(self._checklist)

    @cached_property
    def _checklist(self) -> dict[str, str]:
        return {
            f"{section_id}.{step.id}.{item.key}": item.text
            for section_id, _title, steps in self.sections()
            for step in steps
            for item in step.items
        }

    def steps(self) -> Mapping[str, Step]:
        """Every step as ``section.step`` -> step (read-only, built once)."""
        return self._steps

    @cached_property
    def _steps(self) -> Mapping[str, Step]:
        return MappingProxyType(
            {
                f"{section_id}.{step.id}": step
                for section_id, _title, steps in self.sections()
                for step in steps
            }
        )


# --------------------------------------------------------------------------- kinds


def diagnostic_model(
    kind: str, query_model: type[BaseModel], doc: str = ""
) -> type[DiagnosticBase]:
    """The model of a diagnostic of ``kind`` whose own fields are all under ``query:``.

    Args:
        kind: what a playbook writes as the diagnostic's ``kind``.
        query_model: the shape of its ``query:`` (an adapter's ``query_model``).
        doc: what the diagnostic is, for the JSON Schema's description.

    Returns:
        A subclass of :class:`DiagnosticBase` named ``<Kind>Diagnostic``, with
        ``kind: Literal[kind]`` and ``query: query_model``.
    """
    name = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", kind)) or "Other"
    return create_model(  # type: ignore[call-overload,no-any-return]
        f"{name}Diagnostic",
        __base__=DiagnosticBase,
        __module__=query_model.__module__,
        __doc__=doc or f"A diagnostic of kind {kind!r}.",
        kind=(Literal[kind], ...),  # type: ignore[arg-type,valid-type]
        query=(query_model, ...),
    )


def playbook_model(
    diagnostics: Sequence[type[DiagnosticBase]],
    actions: Sequence[type[ActionBase]],
    *,
    kinds_help: Mapping[str, str] | None = None,
    unavailable: Mapping[str, str] | None = None,
) -> type[Playbook]:
    """The playbook model whose diagnostics and actions may be of exactly these kinds.

    This module names no kind: :mod:`playbook.adapters.plugins` collects the models the
    installed adapters contribute and calls this (once per process; building the
    validator takes a few hundredths of a second).

    Args:
        diagnostics: one model per diagnostic kind, each a :class:`DiagnosticBase` with
            ``kind: Literal["<kind>"]``.
        actions: one model per action kind, each an :class:`ActionBase` likewise.
        kinds_help: added to the message for an unknown kind, by field
            (``"diagnostics"``, ``"actions"``): where kinds come from.
        unavailable: kinds installed but not loadable, with why.

    Returns:
        A subclass of :class:`Playbook` (named ``Playbook``, so its JSON Schema reads as
        before) whose ``diagnostics`` and ``actions`` are unions discriminated by ``kind``.

    Raises:
        TypeError: a model is not a diagnostic (action) model, or two declare one kind.
    """
    fields: dict[str, Any] = {}
    for name, models, base in (
        ("diagnostics", diagnostics, DiagnosticBase),
        ("actions", actions, ActionBase),
    ):
        declared = Playbook.model_fields[name]
        fields[name] = (
            dict[Slug, _one_of(list(models), base)],  # type: ignore[misc,valid-type]
            Field({}, description=declared.description),
        )
    built = create_model(  # type: ignore[call-overload]
        "Playbook", __base__=Playbook, __module__=__name__, __doc__=Playbook.__doc__, **fields
    )
    built.kinds_help = MappingProxyType(dict(kinds_help or {}))
    built.unavailable = MappingProxyType(dict(unavailable or {}))
    # Built now, not on first use (the base defers its build): two threads validating at
    # once (the app's playbook and an incident's snapshot) would otherwise both build it.
    built.model_rebuild(force=True)
    return built  # type: ignore[no-any-return]


def kind_of(model: type[BaseModel]) -> str:
    """The kind a diagnostic or action model declares (``kind: Literal["<kind>"]``).

    Raises:
        TypeError: it declares none, or more than one.
    """
    field = model.model_fields.get("kind")
    values = typing.get_args(field.annotation) if field is not None else ()
    if field is None or typing.get_origin(field.annotation) is not Literal or len(values) != 1:
        raise TypeError(f"{model.__name__} does not declare kind: Literal['<its kind>']")
    return str(values[0])


def _one_of(models: list[type[BaseModel]], base: type[BaseModel]) -> Any:
    """A union of ``models`` discriminated by ``kind`` (a refusal when there are none)."""
    seen: dict[str, str] = {}
    for model in models:
        if not (isinstance(model, type) and issubclass(model, base)):
            raise TypeError(f"{model!r} is not a {base.__name__} subclass")
        kind = kind_of(model)
        if kind in seen:
            raise TypeError(f"{model.__name__} and {seen[kind]} both declare kind {kind!r}")
        seen[kind] = model.__name__
    if not models:
        return Annotated[Any, BeforeValidator(_no_kind)]
    return Annotated[Union[tuple(models)], Field(discriminator="kind")]  # noqa: UP007


def _no_kind(value: object) -> object:
    """No kind is installed: every diagnostic (action) is of an unknown kind."""
    tag = value.get("kind") if isinstance(value, dict) else value
    raise PydanticCustomError(
        "union_tag_invalid",
        "Input tag {tag} found using {discriminator} does not match any of the expected tags",
        {"discriminator": "'kind'", "tag": str(tag), "expected_tags": ""},
    )
