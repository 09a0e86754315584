"""Writing playbooks: which variables each status template gets and from where, the
metrics an expectation names, and a new playbook to start from.

The loader (pure core) cannot parse templates: Jinja lives in :mod:`playbook.render`.
What only parsing a template can tell (a variable nobody provides) is found here and
called from `playbook validate` and `playbook vars`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playbook.errors import TemplateError

if TYPE_CHECKING:
    from playbook.core.loader import LoadedPlaybook

SCHEDULE = "(from the severity schedule)"

INCIDENT_VARIABLES: dict[str, tuple[str, str]] = {
    "service": ("the playbook's service", "The affected service, as the playbook names it."),
    "incident_id": ("the incident's id", "The incident's id, e.g. 2026-03-14-001."),
    "title": ("the incident's title", "The incident's title."),
    "severity": ("the current severity", "The current severity level's id, e.g. P1."),
    "severity_name": ("the current level's name", "The current severity level's name."),
    "opened_at": ("when it was opened", "When the incident was opened (UTC)."),
    "current_time": ("the time of rendering", "When the message is rendered (UTC)."),
    "phase": ("the current phase", "The id of the phase the incident is in."),
    "phase_title": ("the current phase", "The title of the phase the incident is in."),
    "next_update_due": (
        SCHEDULE,
        "When the update after this one is due, ISO 8601 UTC (empty when none is due).",
    ),
    "next_update_due_human": (SCHEDULE, "The same, as 14:25 UTC (or none scheduled)."),
    "next_update_in": (SCHEDULE, "How long until then, as 20m 00s."),
    "roles": ("the roles held", "Who holds each role: commander: alice, scribe: bob."),
    "commander": ("the roles held", "Who is the incident commander (or not assigned)."),
}
"""Every variable an incident fills in by itself: name -> (where it comes from, what it
is). The one list `playbook vars` prints and the README shows; the ones marked
:data:`SCHEDULE` follow the current level's update schedule for the template's audience."""


@dataclass(frozen=True)
class Variable:
    """One variable a template reads, and where its value comes from."""

    name: str
    origin: str
    """``incident``, ``responder``, ``undeclared`` (an error) or ``unavailable`` (declared
    as from the incident, which has no such value: an error too)."""
    detail: str
    line: int

    @property
    def is_error(self) -> bool:
        return self.origin in ("undeclared", "unavailable")


@dataclass
class TemplateVariables:
    """A status template's variables, or why its file could not be read."""

    name: str
    file: Path
    variables: list[Variable] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    """Declared in the playbook, read nowhere in the template."""
    error: str = ""


def template_variables(loaded: LoadedPlaybook, only: str | None = None) -> list[TemplateVariables]:
    """Each template of ``loaded`` (or only the one named ``only``) with its variables.

    Raises:
        KeyError: ``only`` names no template of the playbook.
    """
    from playbook.render.templates import variable_lines

    templates = loaded.playbook.communications.templates
    if only is not None and only not in templates:
        raise KeyError(only)
    folder = loaded.template_dir
    found: list[TemplateVariables] = []
    for name, tmpl in templates.items():
        if only is not None and name != only:
            continue
        entry = TemplateVariables(name, folder / tmpl.file)
        found.append(entry)
        try:
            used = variable_lines(folder, tmpl.file)
        except TemplateError as error:
            entry.error = f"{error.title}: {error.message}" if error.message else error.title
            continue
        for variable, line in used.items():
            entry.variables.append(_origin(variable, line, tmpl.variables.get(variable)))
        entry.unused = sorted(set(tmpl.variables) - set(used))
    return found


def _origin(variable: str, line: int, declared: Any) -> Variable:
    provided = INCIDENT_VARIABLES.get(variable)
    if declared is None:
        if provided is not None:  # the incident fills it in whether declared or not
            return Variable(variable, "incident", provided[0], line)
        return Variable(
            variable,
            "undeclared",
            "read by the template, declared nowhere: declare it under the template's "
            "variables (source: responder) or remove it",
            line,
        )
    if declared.source == "incident":
        if provided is None:
            known = ", ".join(INCIDENT_VARIABLES)
            return Variable(
                variable,
                "unavailable",
                f"declared source: incident, but an incident provides no {variable!r} "
                f"(it provides: {known}); make it source: responder",
                line,
            )
        return Variable(variable, "incident", provided[0], line)
    return Variable(variable, "responder", declared.description or "asked", line)


def template_problems(loaded: LoadedPlaybook) -> list[str]:
    """``file:line:1: key: message`` for each variable a template reads that nothing
    provides (the template's own file and line, the playbook's key)."""
    problems: list[str] = []
    for entry in template_variables(loaded):
        key = f"communications.templates.{entry.name}.variables"
        problems.extend(
            f"{entry.file}:{v.line}:1: {key}: {v.name!r}: {v.detail}"
            for v in entry.variables
            if v.is_error
        )
    return problems


# --------------------------------------------------------------------------- metrics


def _declared_metrics(diag: Any) -> frozenset[str] | None:
    """The metrics a diagnostic's run can return, when its kind says (an optional
    ``result_metrics()`` on the kind's model); None when the kind does not declare them,
    or says that only the target knows (a ``SELECT *``, Redis' INFO). A name ending in
    ``*`` stands for every name that begins so (MongoDB's ``index:*``)."""
    declare = getattr(diag, "result_metrics", None)
    if declare is None:
        return None
    found = declare()
    return None if found is None else frozenset(found)


def is_declared(metric: str, declared: frozenset[str]) -> bool:
    """Whether ``metric`` is one of ``declared`` (a name, or a prefix ending in ``*``)."""
    return metric in declared or any(
        d.endswith("*") and metric.startswith(d[:-1]) and len(metric) > len(d) - 1 for d in declared
    )


def metric_problems(loaded: LoadedPlaybook) -> tuple[list[str], list[str]]:
    """Expectations naming a metric the diagnostic's kind says its run never returns, as
    ``file:line:column: key: message``; and the diagnostics with expectations whose kind
    does not say, which no check can cover (``validate`` names them rather than pass them
    silently)."""
    pb = loaded.playbook
    problems: list[str] = []
    unknown: list[str] = []
    for name, diag in pb.diagnostics.items():
        if not diag.expect:
            continue
        metrics = _declared_metrics(diag)
        if metrics is None:
            unknown.append(name)
            continue
        for i, expectation in enumerate(diag.expect):
            if not is_declared(expectation.metric, metrics):
                path = ("diagnostics", name, "expect", i, "metric")
                line, column = _position(loaded.path, path)
                problems.append(
                    f"{loaded.path}:{line}:{column}: diagnostics.{name}.expect[{i}].metric: "
                    f"{expectation.metric!r} is not a metric this {diag.kind} diagnostic "
                    f"returns (it returns: {', '.join(sorted(metrics)) or 'none'})"
                )
    return problems, unknown


def _position(file: Path, path: tuple[str | int, ...]) -> tuple[int, int]:
    """Line and column of ``path`` in a playbook that already loaded (so it parses), or
    of its nearest parent; the loader's positions are not kept past loading."""
    import yaml

    node: Any = yaml.compose(file.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    for part in path:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            child = node.value[part]
        else:
            child = None
        if child is None:
            break
        node = child
    return node.start_mark.line + 1, node.start_mark.column + 1


# --------------------------------------------------------------------------- a new playbook

_PLAYBOOK = """\
# yaml-language-server: $schema=./playbook.schema.json
# {title}: a playbook to start from (`playbook new`). Check it with
# `playbook validate {name}.yaml`; `playbook schema > playbook.schema.json` beside it
# gives your editor completion and checking through the line above.
version: 1
id: {name}
title: {title}
service: Your service
summary: What goes wrong, and how this playbook brings it back.

severity:
  default: P2
  escalation_path: [on-call engineer, team lead]
  levels:
    - id: P1
      name: High
      response: 15m
      resolution: 4h
      status_update_every: 30m
      defined_by: playbook
    - id: P2
      name: Medium
      response: 1h
      resolution: 1d
      status_update_every: 2h
      defined_by: playbook

assessment:
  id: assessment
  title: Initial assessment
  steps:
    - id: scope
      title: Find the scope
      items:
        - Which users and features are affected?
        - When did it start?

phases:
  - id: response
    title: Response
    stage: containment
    starts: 0
    ends: 1h
    steps:
      - id: contain
        title: Contain the damage
        items:
          - Stop what makes it worse.
          - id: tell-users
            text: Tell the users what is happening.
        templates: [initial]

communications:
  template_dir: templates
  templates:
    initial:
      title: Initial status update
      file: {name}/initial.txt.j2
      status: investigating
      phase: response
      variables:
        what_users_see:
          source: responder
          description: What affected users notice, in their words.
"""

_TEMPLATE = """\
[INVESTIGATING] {{{{ service }}}}

We are investigating a problem affecting {{{{ service }}}}. Users may notice
{{{{ what_users_see }}}}. We will post an update as soon as we know more.

Posted: {{{{ current_time }}}}
"""

_TOML = """\
# Where this playbook's diagnostics and actions connect, by target name. A playbook.toml
# beside a playbook is ignored until you trust its folder (`playbook trust DIR`); keep
# passwords out of it: ${{ENV}} is read from the environment when a diagnostic runs.
# Most responders put their targets in their own ~/.config/playbook/playbook.toml.

# [targets]
# app-db = "postgresql://reader:${{PG_PASSWORD}}@db.internal/app"
# cache = "redis://:${{REDIS_PASSWORD}}@cache.internal:6379/0"
"""


def new_playbook(name: str, folder: Path) -> list[Path]:
    """Write a small valid playbook ``name`` into ``folder``: the YAML (with the editor
    modeline), one status template under ``templates/``, and a commented
    ``playbook.toml``. Returns the files written.

    Raises:
        UsageError: ``name`` is not an id, or a file it would write exists (nothing is
            written then: an author's work is never replaced).
    """
    import re

    from playbook.errors import UsageError

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", name):
        raise UsageError(
            f"{name!r} is not a playbook id.",
            "Use lower-case letters, digits and dashes: disk-full.",
        )
    title = name.replace("-", " ").capitalize()
    files = {
        folder / f"{name}.yaml": _PLAYBOOK.format(name=name, title=title),
        folder / "templates" / name / "initial.txt.j2": _TEMPLATE.format(),
        folder / "playbook.toml": _TOML.format(),
    }
    existing = [path for path in files if path.exists() or path.is_symlink()]
    if existing:
        raise UsageError(
            f"Not overwriting {', '.join(str(p) for p in existing)}.",
            "Choose another NAME or --dir, or move the file away first.",
        )
    written: list[Path] = []
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as out:  # "x": never replace, even in a race
            out.write(text)
        written.append(path)
    return written
