"""The checks a playbook gets after the model accepted it: references that name other
parts (phases, diagnostics, procedures, templates, actions, parameters), ids that must be
unique, a drill's services and fingerprints, and the files it names beside itself.

Split from :mod:`playbook.core.loader`, which reads the YAML and maps each problem to its
file, line and key; these checks only say *which key* is wrong and why, through a
:class:`Report` (the loader's source map), so they name no line themselves.
"""

from __future__ import annotations

import difflib
import functools
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, PydanticUserError, TypeAdapter, ValidationError

from playbook.core.model import Playbook

Path_ = tuple[str | int, ...]


class Report(Protocol):
    """Where a check says what is wrong: the loader's source, which knows the lines."""

    def add(self, path: Path_, message: str, key: bool = False) -> None: ...


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def check_references(pb: Playbook, data: Any, src: Report) -> None:
    """Ids that name other parts of the playbook must exist, and ids must be unique."""
    phases = {p.id for p in pb.phases}
    procedures = {p.id for p in pb.recovery_procedures}
    templates = set(pb.communications.templates)
    diagnostics = set(pb.diagnostics)
    actions = set(pb.actions)
    levels = [lvl.id for lvl in pb.severity.levels]

    if pb.severity.default not in levels:
        src.add(
            ("severity", "default"),
            f"default severity {pb.severity.default!r} is not one of the levels {levels}",
        )
    for i, dup in _duplicates(levels):
        src.add(("severity", "levels", i, "id"), f"duplicate severity level {dup!r}")

    top_ids: list[tuple[Path_, str]] = [(("assessment", "id"), pb.assessment.id)]
    top_ids += [(("phases", i, "id"), p.id) for i, p in enumerate(pb.phases)]
    top_ids += [(("scenarios", i, "id"), s.id) for i, s in enumerate(pb.scenarios)]
    top_ids += [(("post_incident", i, "id"), s.id) for i, s in enumerate(pb.post_incident)]
    seen: dict[str, Path_] = {}
    for path, ident in top_ids:
        if ident in seen:
            src.add(path, f"id {ident!r} is already used at {format_path(seen[ident])}")
        else:
            seen[ident] = path
    for i, dup in _duplicates([p.id for p in pb.recovery_procedures]):
        src.add(("recovery_procedures", i, "id"), f"duplicate procedure id {dup!r}")
    for i, dup in _duplicates([t.id for t in pb.appendix]):
        src.add(("appendix", i, "id"), f"duplicate table id {dup!r}")
    for i, dup in _duplicates([t.id for t in pb.triggers]):
        src.add(("triggers", i, "id"), f"duplicate trigger group id {dup!r}")

    for i, phase in enumerate(pb.phases):
        if phase.ends <= phase.starts:
            src.add(("phases", i, "ends"), "a phase must end after it starts")

    def check_step(path: Path_, step: Any) -> None:
        for j, ref in enumerate(step.diagnostics):
            if ref not in diagnostics:
                src.add((*path, "diagnostics", j), _dangling("diagnostic", ref, diagnostics))
        for j, ref in enumerate(step.procedures):
            if ref not in procedures:
                src.add((*path, "procedures", j), _dangling("procedure", ref, procedures))
        for j, ref in enumerate(step.actions):
            if ref not in actions:
                src.add((*path, "actions", j), _dangling("action", ref, actions))
        for j, ref in enumerate(step.templates):
            if ref not in templates:
                src.add((*path, "templates", j), _dangling("template", ref, templates))
        for j, dup in _duplicates([item.key for item in step.items]):
            src.add(
                (*path, "items", j),
                f"two items of this step have the id {dup!r}; give one an explicit id",
            )

    for i, dup in _duplicates([s.id for s in pb.assessment.steps]):
        src.add(("assessment", "steps", i, "id"), f"duplicate step id {dup!r}")
    for i, step in enumerate(pb.assessment.steps):
        check_step(("assessment", "steps", i), step)
    for i, phase in enumerate(pb.phases):
        for k, dup in _duplicates([s.id for s in phase.steps]):
            src.add(("phases", i, "steps", k, "id"), f"duplicate step id {dup!r}")
        for k, step in enumerate(phase.steps):
            check_step(("phases", i, "steps", k), step)
    for i, section in enumerate(pb.post_incident):
        for k, step in enumerate(section.steps):
            check_step(("post_incident", i, "steps", k), step)
    for i, scenario in enumerate(pb.scenarios):
        if scenario.phase not in phases:
            src.add(("scenarios", i, "phase"), _dangling("phase", scenario.phase, phases))
        check_step(("scenarios", i, "investigation"), scenario.investigation)
    for name, tmpl in pb.communications.templates.items():
        if isinstance(tmpl, Unchecked):
            continue
        if tmpl.phase not in phases:
            src.add(
                ("communications", "templates", name, "phase"),
                _dangling("phase", tmpl.phase, phases),
            )
    for name, diag in pb.diagnostics.items():
        if isinstance(diag, Unchecked):
            continue  # refused by the model (a partial playbook): nothing here to check
        _check_params(("diagnostics", name), diag, data, src)
        for where, message in diag.problems():
            src.add(("diagnostics", name, *where), message)
        for pname, param in diag.params.items():
            source = (param.default_from or "").split(".", 1)[0]
            if source and source not in diagnostics:
                src.add(
                    ("diagnostics", name, "params", pname, "default_from"),
                    _dangling("diagnostic", source, diagnostics),
                )
    for name, action in pb.actions.items():
        if isinstance(action, Unchecked):
            continue
        _check_params(("actions", name), action, data, src)
        for j, check in enumerate(action.verify):
            if check.diagnostic not in diagnostics:
                src.add(
                    ("actions", name, "verify", j),
                    _dangling("diagnostic", check.diagnostic, diagnostics),
                )


def check_levels(pb: Playbook, src: Report) -> None:
    """A level gives one form of its schedule, and role ids are unique (a response past
    the resolution target and zero cadences are refused by the model; unknown defaults
    and duplicate levels by :func:`check_references`)."""
    for i, level in enumerate(pb.severity.levels):
        if level.updates is not None and level.status_update_every is not None:
            src.add(
                ("severity", "levels", i, "status_update_every"),
                f"level {level.id!r} gives both `updates` and its shorthand "
                "`status_update_every`; keep one",
            )
    for i, dup in _duplicates([role.id for role in pb.roles]):
        src.add(("roles", i, "id"), f"duplicate role id {dup!r}")


def check_drill(pb: Playbook, src: Report, base: Path | None) -> None:
    """A drill's steps and fingerprints name its services and fit their kinds, every
    target the playbook's diagnostics and actions use has a service, and its script
    exists."""
    from playbook.core.model import STEP_KINDS

    drill = pb.drill
    if drill is None:
        return
    services = drill.services
    diags = {n: d for n, d in pb.diagnostics.items() if not isinstance(d, Unchecked)}
    acts = {n: a for n, a in pb.actions.items() if not isinstance(a, Unchecked)}
    used = [(f"diagnostic {n!r}", d.target) for n, d in diags.items() if d.drill_service]
    used += [(f"action {n!r}", a.target) for n, a in acts.items()]
    for who, target in used:
        if target not in services:
            src.add(
                ("drill", "services"),
                f"no service for target {target!r}, which {who} uses "
                f"(add `{target}: redis|postgres|mongo|http|local`)",
            )
            services = {**services, target: "http"}  # say it once per target
    from importlib.metadata import entry_points

    generators = {ep.name for ep in entry_points(group="playbook.drill_data")}
    for part in ("load", "fault"):
        for i, step in enumerate(getattr(drill, part)):
            if step.generate is not None and step.generate not in generators:
                src.add(
                    ("drill", part, i, "generate"),
                    _dangling("data generator", step.generate, generators),
                )
            kind = services.get(step.target)
            if kind is None:
                src.add(
                    ("drill", part, i, "target"),
                    _dangling("service", step.target, set(drill.services)),
                )
            elif step.way not in STEP_KINDS[kind]:
                fits = ", ".join(STEP_KINDS[kind])
                src.add(
                    ("drill", part, i, step.way),
                    f"{step.way!r} does not fit target {step.target!r}, a {kind} service "
                    f"(a {kind} step takes one of: {fits})",
                )
            for path, live in (step.answer or {}).items():
                if services.get(live.from_) != "postgres":
                    src.add(
                        ("drill", part, i, "answer", path, "from"),
                        f"{live.from_!r} is not a postgres service of this drill: an "
                        "answer reads one (services: "
                        + (", ".join(f"{n}: {k}" for n, k in drill.services.items()))
                        + ")",
                    )
    wanted = {"redis": "keys", "postgres": "tables", "mongo": "collections", "local": "files"}
    for i, fp in enumerate(drill.fingerprint):
        kind = services.get(fp.target)
        if kind is None:
            src.add(
                ("drill", "fingerprint", i, "target"),
                _dangling("service", fp.target, set(drill.services)),
            )
            continue
        if kind == "http":
            src.add(
                ("drill", "fingerprint", i, "target"),
                f"{fp.target!r} is an http service, which serves what the drill gives it; "
                "fingerprint the data a recovery changes",
            )
            continue
        field_ = wanted[kind]
        for other in set(wanted.values()) - {field_}:
            if getattr(fp, other):
                src.add(
                    ("drill", "fingerprint", i, other),
                    f"{other!r} does not fit {fp.target!r}, a {kind} service; use {field_!r}",
                )
        if not getattr(fp, field_):
            src.add(
                ("drill", "fingerprint", i),
                f"a fingerprint of {fp.target!r} (a {kind} service) needs {field_!r}",
            )
    if drill.script is not None and base is not None:
        try:
            script = drill_script_path(base, drill.script)
        except ValueError as why:
            src.add(
                ("drill", "script"),
                f"drill script {why}; a drill script must be inside the playbook's folder",
            )
            return
        if not script.is_file():
            src.add(("drill", "script"), f"drill script {drill.script!r} not found at {script}")


def _check_params(path: Path_, diag: Any, data: Any, src: Report) -> None:
    declared = set(diag.params)
    raw = data.get(path[0], {}).get(path[-1], {}) if isinstance(data, dict) else {}
    for where, name in _param_uses(raw, path):
        if name not in declared:
            src.add(where, _dangling("parameter", name, declared))
    for pname, param in diag.params.items():
        if param.type == "list" and param.items is None:
            src.add(
                (*path, "params", pname, "items"), "a list parameter names the type of its items"
            )


def _param_uses(value: Any, path: Path_) -> Iterator[tuple[Path_, str]]:
    """Every ``{$param: name}`` and ``$param:name`` key in a diagnostic's raw data."""
    if isinstance(value, dict):
        if "$param" in value:
            extra = set(value) - {"$param", "as"}
            if extra:
                yield (*path, sorted(extra)[0]), "<a parameter reference takes only $param and as>"
            yield (*path, "$param"), str(value["$param"])
            return
        for key, child in value.items():
            if isinstance(key, str) and key.startswith("$param:"):
                yield (*path, key), key.removeprefix("$param:")
            yield from _param_uses(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _param_uses(child, (*path, i))


def _dangling(what: str, ref: str, known: set[str]) -> str:
    if ref.startswith("<"):
        return ref.strip("<>")
    if any(isinstance(name, Unchecked) for name in known):
        # One of the ids it could name was refused (a partial playbook): not a finding.
        return f"no {what} named {ref!r} {UNCHECKED_TEXT}"
    hint = difflib.get_close_matches(ref, sorted(known), n=1, cutoff=0.6)
    message = f"no {what} named {ref!r}"
    if hint:
        return f"{message} (did you mean {hint[0]!r}?)"
    if known:
        shown = ", ".join(sorted(known)[:8])
        return f"{message}; known: {shown}{', …' if len(known) > 8 else ''}"
    return f"{message}; none are defined"


def _duplicates(values: list[str]) -> Iterator[tuple[int, str]]:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            yield i, value
        seen.add(value)


def drill_script_path(playbook_file: Path, script: str) -> Path:
    """The drill script a playbook names, relative to the playbook, held to the same rule
    as its templates (:func:`confined`): the playbook comes from a runbooks repository,
    and ``drill --headless`` prints what it cannot parse of the file, line by line, so a
    path that leads out (``/etc/shadow``, ``../``, a symlink) would print the responder's
    files into a CI log. ``--script`` on the responder's own command line is not held.

    Raises:
        ValueError: why it is refused, as a phrase.
    """
    folder = template_root(playbook_file)
    return confined(folder, playbook_file.resolve().parent, script)


def template_root(playbook_file: Path) -> Path:
    """The folder a playbook's templates must stay inside: the playbook's own folder
    (its real path). The runbooks that ship with playbook follow the same rule."""
    return playbook_file.resolve().parent


def confined(root: Path, base: Path, relative: str) -> Path:
    """``base / relative`` with symlinks and ``..`` resolved, if it stays inside ``root``.

    The playbook names its templates; the playbook is not trusted (it may come from a
    runbooks repository), so what it names must not lead to the responder's other files:
    no absolute path, and nothing (``..``, a symlink) that resolves outside ``root``.

    Raises:
        ValueError: why it is refused, as a phrase (``"is an absolute path"``).
    """
    if not relative.strip():
        raise ValueError("is empty")
    if "\x00" in relative:
        raise ValueError("contains a NUL character")
    if Path(relative).is_absolute() or relative.startswith("~"):
        raise ValueError(f"{relative!r} is an absolute path; name one inside {root}")
    real_root = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(real_root):
        raise ValueError(f"{relative!r} leads outside {real_root} (to {target})")
    return target


def check_template_files(pb: Playbook, base: Path, src: Report) -> None:
    if not pb.communications.templates:
        return  # nothing is read from template_dir
    wanted = pb.communications.template_dir
    root = template_root(base)
    try:
        template_dir = confined(root, base.resolve().parent, wanted)
    except ValueError as why:
        src.add(
            ("communications", "template_dir"),
            f"template_dir {why}; templates must be inside the playbook's folder",
        )
        return
    for name, tmpl in pb.communications.templates.items():
        if isinstance(tmpl, Unchecked):
            continue
        try:
            target = confined(template_dir, template_dir, tmpl.file)
        except ValueError as why:
            src.add(
                ("communications", "templates", name, "file"),
                f"template file {why}",
            )
            continue
        if not target.is_file():
            src.add(
                ("communications", "templates", name, "file"),
                f"template file {tmpl.file!r} not found in {template_dir}",
            )


# ----------------------------------------------------------- checks on a refused model
#
# When the model refuses part of a playbook, the reference checks still run on the rest,
# so one `validate` shows a schema error and a dangling reference together. The model is
# rebuilt part by part (:func:`partial`): each field is validated alone; a model-valued
# field that fails is rebuilt from its own fields, a list or mapping element by element;
# what still fails becomes :data:`UNCHECKED`. The checks then run on that, and
# :class:`SkipFailed` drops what they say inside a subtree the model already refused
# (the model's message there is the one to act on).

UNCHECKED_TEXT = "⟨unchecked⟩"


class Unchecked(str):
    """A value the model refused, standing in for it while the other checks run. It is
    text (ids and references are text, so sets, sorting and hints keep working) and
    every problem that mentions it is dropped (:class:`SkipFailed`). So that a check
    reading through it goes on to the next part rather than stopping, any attribute of it
    is itself, it holds nothing when iterated, and it compares as neither less nor more
    than anything (``ends <= starts`` of a refused phase is simply not a finding)."""

    def __getattr__(self, name: str) -> Unchecked:
        if name.startswith("__"):
            raise AttributeError(name)  # copy, pickle and the like ask for dunders
        return UNCHECKED

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __lt__(self, other: object) -> bool:
        return False

    __le__ = __gt__ = __ge__ = __lt__

    __hash__ = str.__hash__


UNCHECKED = Unchecked(UNCHECKED_TEXT)


def partial(model: type[BaseModel], data: Any) -> Any:
    """``model`` built from ``data`` as far as it is valid (see the section's comment)."""
    try:
        return model.model_validate(data)
    except ValidationError:
        pass
    if not isinstance(data, dict):
        return UNCHECKED
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key in data:
            annotation = (
                Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            )
            values[name] = _partial_value(annotation, data[key])
        elif info.is_required():
            values[name] = UNCHECKED
        else:
            values[name] = info.get_default(call_default_factory=True)
    # No validators run here: this object only feeds the reference checks, never a caller.
    return model.model_construct(**values)


@functools.lru_cache(maxsize=512)
def _cached_adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _adapter(annotation: Any) -> TypeAdapter[Any]:
    """A validator for ``annotation``, kept: building one costs about a millisecond, and a
    broken playbook asks for the same few hundreds of times."""
    try:
        return _cached_adapter(annotation)
    except TypeError:  # an annotation that cannot be a cache key
        return TypeAdapter(annotation)


def _partial_value(annotation: Any, value: Any) -> Any:
    try:
        return _adapter(annotation).validate_python(value)
    except ValidationError:
        pass
    except PydanticUserError:  # an annotation TypeAdapter cannot take: left unchecked
        return UNCHECKED
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:
            return _partial_value(members[0], value)
        return UNCHECKED  # a discriminated union (a diagnostic, an action): all or nothing
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return partial(annotation, value)
    if origin is list and isinstance(value, list):
        return [_partial_value(args[0], item) for item in value]
    if origin is dict and isinstance(value, dict):
        return {key: _partial_value(args[1], item) for key, item in value.items()}
    return UNCHECKED


class SkipFailed:
    """A :class:`Report` that passes on only what the model has not already refused: no
    problem inside a path that has one, and none that mentions an :class:`Unchecked`."""

    def __init__(self, src: Report, failed: set[str]) -> None:
        self.src = src
        self.failed = failed

    def _inside_failed(self, where: str) -> bool:
        return any(
            where == bad or where.startswith(bad + ".") or where.startswith(bad + "[")
            for bad in self.failed
        )

    def add(self, path: Path_, message: str, key: bool = False) -> None:
        if UNCHECKED_TEXT in message or any(isinstance(p, Unchecked) for p in path):
            return
        if self._inside_failed(format_path(path)):
            return
        self.src.add(path, message, key)


def check_partial(
    model: type[Playbook], data: Any, src: Report, failed: set[str], base: Path | None
) -> None:
    """The checks after the model, run on what of ``data`` the model accepts (see above).

    A check that trips over a refused value (an attribute a stand-in lacks) stops there;
    what it said before stands. That costs a few references in a broken part going
    unchecked until the model's problem there is fixed, never a wrong report.
    """
    pb = partial(model, data)
    if isinstance(pb, Unchecked):
        return
    report = SkipFailed(src, failed)
    for check in (
        lambda: check_references(pb, data, report),
        lambda: None if _inside(failed, "severity") else check_levels(pb, report),
        lambda: None if _inside(failed, "drill") else check_drill(pb, report, base),
        lambda: None if base is None else check_template_files(pb, base, report),
    ):
        try:
            check()
        except (AttributeError, TypeError):
            continue


def _inside(failed: set[str], top: str) -> bool:
    return any(bad == top or bad.startswith((top + ".", top + "[")) for bad in failed)
