"""Load a playbook from YAML, reporting every problem at once with file, line and key.

The YAML is read defensively before it is trusted: the file's size and its nesting
are capped before a node tree is built (the composer recurses, and a 50,000-level
document would otherwise end in a RecursionError), aliases are expanded under a
node budget (an alias bomb stops at the budget), only plain YAML tags are accepted
(no ``!!python/object``), duplicate keys are errors, the YAML 1.1 words that
turn into booleans (``NO``, ``on``, ``y``) are refused so that no value is silently
coerced, and a lone surrogate (YAML's ``"\\ud800"`` escape makes one) is refused where
it is written: it is not text, and no event, export or terminal could take it. Values are
then validated by the strict model in :mod:`playbook.core.model`, assembled with the
installed adapters' kinds: the caller passes it
(:func:`playbook.adapters.plugins.load_playbook` does), since this module names no kind.
"""

from __future__ import annotations

import difflib
import hashlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from playbook.core.checks import (
    check_drill,
    check_levels,
    check_partial,
    check_references,
    check_template_files,
    format_path,
)

# Re-exported: callers (status templates, drill scripts) have always found them here.
from playbook.core.checks import confined as confined
from playbook.core.checks import drill_script_path as drill_script_path
from playbook.core.checks import template_root as template_root
from playbook.core.model import Playbook
from playbook.core.text import first_unpaired
from playbook.errors import ExitCode, PlaybookError

MAX_BYTES = 1024 * 1024
"""A playbook larger than this is refused before it is parsed."""
MAX_DEPTH = 64
"""Nesting deeper than this is refused before a node tree is built."""
MAX_NODES = 200_000
"""Values built from one file, aliases expanded; past this the file is refused."""

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:timestamp",
}
_TRUE_FALSE = {"true", "false"}

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a playbook, where it is, and what to do."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PlaybookInvalid(PlaybookError):
    """A playbook file that cannot be used, with every problem found in it."""

    exit_code = ExitCode.PLAYBOOK_FAILED

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        count = len(problems)
        super().__init__(
            f"{file}: {count} problem{'s' if count != 1 else ''}",
            "\n".join(str(p) for p in problems),
        )


@dataclass(frozen=True)
class LoadedPlaybook:
    """A valid playbook, where it came from, and a digest of its bytes."""

    playbook: Playbook
    path: Path
    sha256: str

    @property
    def template_dir(self) -> Path:
        """The status templates' folder, inside the playbook's own (see :func:`confined`).

        Raises:
            PlaybookInvalid: ``template_dir`` leads outside (a file edited since it loaded).
        """
        wanted = self.playbook.communications.template_dir
        try:
            return confined(template_root(self.path), self.path.parent, wanted)
        except ValueError as why:
            where = Problem(str(self.path), 1, 1, "communications.template_dir", str(why))
            raise PlaybookInvalid(str(self.path), [where]) from None


@dataclass
class _Source:
    """Positions and raw scalars of one parsed file, by key path."""

    file: str
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    raw: dict[Path_, tuple[str, str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    nodes: int = 0
    refused: set[str] = field(default_factory=set)
    """Key paths the model refused (a missing key's own path, not its parent's)."""

    def where(self, path: Path_, key: bool = False) -> tuple[int, int]:
        """The closest known position: the path itself, else its nearest parent."""
        table = self.key_marks if key else self.marks
        probe = path
        while True:
            if probe in table:
                return table[probe]
            if probe in self.marks:
                return self.marks[probe]
            if not probe:
                return (1, 1)
            probe = probe[:-1]

    def add(self, path: Path_, message: str, key: bool = False) -> None:
        line, col = self.where(path, key)
        self.problems.append(Problem(self.file, line, col, format_path(path), message))


class _TooBig(Exception):
    pass


def _prescan(text: str, src: _Source) -> bool:
    """Walk the event stream (iterative, no recursion) to cap depth before composing."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line, col = event.start_mark.line + 1, event.start_mark.column + 1
                    src.problems.append(
                        Problem(
                            src.file,
                            line,
                            col,
                            "",
                            f"nested more than {MAX_DEPTH} levels deep; a playbook never needs this",
                        )
                    )
                    return False
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        _yaml_problem(exc, src)
        return False
    except yaml.reader.ReaderError as exc:
        _reader_problem(exc, text, src)
        return False
    return True


def _reader_problem(exc: yaml.reader.ReaderError, text: str, src: _Source) -> None:
    """A character YAML refuses to read (a NUL byte, another C0 control): where it is.

    PyYAML's reader is the authority on which characters a YAML stream may hold; it
    gives a position in the text, which becomes a line and a column here.
    """
    position = max(0, min(exc.position, len(text)))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    code = exc.character if isinstance(exc.character, int) else 0
    src.problems.append(
        Problem(
            src.file,
            line,
            column,
            "",
            f"character U+{code:04X} is not allowed in YAML ({exc.reason}); "
            "remove it or write it as an escape in a double-quoted string",
        )
    )


def _yaml_problem(exc: yaml.MarkedYAMLError, src: _Source) -> None:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    what = " ".join(part for part in (exc.context, exc.problem) if part) or "not valid YAML"
    src.problems.append(Problem(src.file, line, col, "", f"YAML syntax: {what}"))


def _build(node: yaml.Node, path: Path_, src: _Source) -> Any:
    """Turn a composed node into plain Python values, recording where each came from."""
    src.nodes += 1
    if src.nodes > MAX_NODES:
        raise _TooBig
    src.marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if node.tag not in _PLAIN_TAGS:
        src.add(path, f"tag {node.tag!r} is not allowed in a playbook; only plain YAML values are")
        return None
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                src.add(path, "merge keys (<<) are not supported; write the keys out")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                src.add(path, "a key must be a plain string")
                continue
            key = key_node.value
            child = (*path, key)
            unpaired = _unpaired(key)
            if unpaired is not None:
                src.add(path, f"a key {unpaired}")
                continue
            if key in out:
                first = src.key_marks.get(child, (0, 0))
                src.problems.append(
                    Problem(
                        src.file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        format_path(child),
                        f"duplicate key {key!r} (first at line {first[0]}); the second "
                        "would silently replace the first",
                    )
                )
                continue
            src.key_marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _build(value_node, child, src)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), src) for i, item in enumerate(node.value)]
    return _scalar(node, path, src)


_constructor = yaml.constructor.SafeConstructor()


def _unpaired(text: str) -> str | None:
    """Why ``text`` (a scalar or a key) cannot be used, when it holds a lone surrogate."""
    at = first_unpaired(text)
    if at is None:
        return None
    return (
        f"holds \\u{ord(text[at]):04x} (character {at + 1}), a lone UTF-16 surrogate, which is "
        "not a character and cannot be recorded, exported or shown; write the character "
        "itself (or, in a double-quoted string, a \\U escape of it)"
    )


def _scalar(node: yaml.ScalarNode, path: Path_, src: _Source) -> Any:
    src.raw[path] = (node.value, node.tag)
    unpaired = _unpaired(node.value)
    if unpaired is not None:  # YAML's "\ud800" escape makes one; UTF-8 cannot hold it
        src.add(path, f"the value {unpaired}")
        return None
    if node.style is not None and node.style != "":
        return node.value  # quoted or block scalars are strings, as written
    tag = node.tag
    if tag == "tag:yaml.org,2002:bool" and node.value.lower() not in _TRUE_FALSE:
        src.add(
            path,
            f"{node.value!r} is read as a boolean by YAML 1.1 and as text by YAML 1.2; "
            f"write true or false, or quote it if you mean the text {node.value!r}",
        )
        return None
    if tag in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:str"):
        return node.value  # dates stay text: the model decides what they mean
    try:
        return _constructor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError) as exc:
        src.add(path, f"cannot read value {node.value!r}: {exc}")
        return None


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (an empty or null value)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _resolve_loc(data: Any, loc: tuple[Any, ...]) -> Path_:
    """Map a pydantic error location onto the data, dropping union tags it inserts."""
    path: list[str | int] = []
    current = data
    for part in loc:
        if (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        ):
            path.append(part)
            current = current[part]
        elif isinstance(current, dict | list):
            # A union tag, or a key that is missing: keep missing keys, skip tags.
            if isinstance(current, dict) and isinstance(part, str) and not _is_tag(current, part):
                path.append(part)
                current = None
        else:
            break
    return tuple(path)


_UNION_TAGS = {
    "function-before",
    "function-after",
    "ChecklistItem",
    "schedule-word",
    "schedule-list",
    "schedule-audiences",
}
"""Tags pydantic puts in an error's location that are not keys of the data."""
_DISCRIMINATORS = ("kind", "operation")
"""Keys whose value picks a member of a union (a diagnostic's ``kind``, an action's
``operation``): pydantic puts that value in the location too."""


def _is_tag(mapping: dict[Any, Any], part: str) -> bool:
    return part in _UNION_TAGS or any(mapping.get(key) == part for key in _DISCRIMINATORS)


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types an annotation may hold (through Annotated, unions, Optional)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _fields_at(path: Path_, data: Any, root: type[BaseModel] = Playbook) -> list[str]:
    """The keys the model allows at a mapping path, for "did you mean" suggestions."""
    candidates: list[Any] = [root]
    current = data
    for part in path:
        nxt: list[Any] = []
        for cand in candidates:
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                info = cand.model_fields.get(str(part))
                if info is not None:
                    nxt.extend(_unwrap(info.annotation))
                continue
            origin = typing.get_origin(cand)
            args = typing.get_args(cand)
            if origin is list and isinstance(part, int):
                nxt.extend(_unwrap(args[0]))
            elif origin is dict and isinstance(part, str):
                nxt.extend(_unwrap(args[1]))
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
        else:
            current = None
        # Discriminated unions: keep the member whose `kind` matches the data.
        kinds = [
            c
            for c in nxt
            if isinstance(c, type)
            and issubclass(c, BaseModel)
            and "kind" in c.model_fields
            and isinstance(current, dict)
            and current.get("kind") in typing.get_args(c.model_fields["kind"].annotation)
        ]
        candidates = kinds or nxt
    names: list[str] = []
    for cand in candidates:
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            for name, info in cand.model_fields.items():
                names.append(info.alias or name)
    return names


def _pydantic_problems(
    exc: ValidationError, data: Any, src: _Source, root: type[BaseModel] = Playbook
) -> None:
    already = {p.path for p in src.problems}
    for err in exc.errors(include_url=False):
        path = _resolve_loc(data, tuple(err["loc"]))
        src.refused.add(format_path(path))
        if format_path(path) in already:
            continue  # the YAML reading already said what is wrong here
        kind = err["type"]
        value = err.get("input")
        if kind == "extra_forbidden":
            key = path[-1] if path else ""
            allowed = _fields_at(path[:-1], data, root)
            hint = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            message = f"unknown key {key!r}"
            message += f" (did you mean {hint[0]!r}?)" if hint else ""
            if allowed:
                message += f"; allowed here: {', '.join(sorted(allowed))}"
            src.add(path, message, key=True)
            continue
        if kind == "missing":
            src.add(path[:-1], f"missing required key {path[-1]!r}" if path else "missing key")
            continue
        if kind == "union_tag_invalid":
            key, message = _unknown_tag(err.get("ctx", {}), value, path, root)
            src.add((*path, key), message)
            continue
        message = err["msg"]
        if kind.endswith("_type") or kind in ("literal_error", "int_from_float"):
            message = f"{message}, got {_describe(value)}"
            raw = src.raw.get(path)
            if raw is not None and raw[1] != "tag:yaml.org,2002:str" and kind == "string_type":
                message += f"; quote it to keep it as written: {raw[0]!r}"
        src.add(path, message)


def _unknown_tag(
    ctx: dict[str, Any], value: Any, path: Path_, root: type[BaseModel]
) -> tuple[str, str]:
    """The key and the message for a value that picks no member of a union: an unknown
    diagnostic or action kind (named with the installed ones), or operation."""
    key = str(ctx.get("discriminator", "'kind'")).strip("'")
    tag = value.get(key) if isinstance(value, dict) else value
    expected = ctx.get("expected_tags", "") or "none"
    helps: Any = getattr(root, "kinds_help", {})
    if key != "kind" or len(path) != 2 or path[0] not in helps:
        return key, f"unknown {key} {tag!r}; expected one of {expected}"
    why = getattr(root, "unavailable", {}).get(tag) if isinstance(tag, str) else None
    if why:
        return key, (
            f"kind {tag!r} is installed but cannot be used: {why}; the kinds that can be "
            f"used are {expected}"
        )
    return key, f"unknown kind {tag!r}; the installed kinds are {expected} ({helps[path[0]]})"


M = typing.TypeVar("M", bound=BaseModel)


def _read_document(
    text: str, file: str, model: type[M], what: str, keys: str
) -> tuple[M | None, Any, _Source]:
    """YAML text read defensively and validated as ``model``: the model (None if it is
    invalid), the plain data, and the source with every problem found so far."""
    src = _Source(file)
    if not _prescan(text, src):
        raise PlaybookInvalid(file, src.problems)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        _yaml_problem(exc, src)
        raise PlaybookInvalid(file, src.problems) from None
    if node is None:
        src.problems.append(Problem(file, 1, 1, "", "the file is empty"))
        raise PlaybookInvalid(file, src.problems)
    try:
        data = _build(node, (), src)
    except _TooBig:
        src.problems.append(
            Problem(file, 1, 1, "", f"expands to more than {MAX_NODES} values (aliases?)")
        )
        raise PlaybookInvalid(file, src.problems) from None
    if not isinstance(data, dict):
        src.add((), f"{what} is a mapping of keys ({keys}, …)")
        raise PlaybookInvalid(file, src.problems)
    found: M | None = None
    try:
        found = model.model_validate(data)
    except ValidationError as exc:
        _pydantic_problems(exc, data, src, model)
    return found, data, src


def _raise_problems(src: _Source) -> None:
    if src.problems:
        src.problems.sort(key=lambda p: (p.line, p.column))
        raise PlaybookInvalid(src.file, src.problems)


def parse_model(text: str, file: str, model: type[M], what: str) -> M:
    """Any YAML document of ours (a drill script, …) validated as ``model``, with the
    same file, line and key in every problem as a playbook gets."""
    keys = ", ".join(list(model.model_fields)[:3])
    found, _data, src = _read_document(text, file, model, what, keys)
    _raise_problems(src)
    assert found is not None
    return found


def parse(
    text: str, file: str = "<playbook>", base: Path | None = None, *, model: type[Playbook]
) -> Playbook:
    """Validate playbook text against ``model`` (a :func:`playbook.core.model.playbook_model`,
    which knows the kinds); raise :class:`PlaybookInvalid` listing every problem."""
    playbook, data, src = _read_document(text, file, model, "a playbook", "version, id, title")
    if playbook is not None:
        check_references(playbook, data, src)
        check_levels(playbook, src)
        check_drill(playbook, src, base)
        if base is not None:
            check_template_files(playbook, base, src)
    else:  # one run shows every problem: the references of the parts the model accepts
        check_partial(model, data, src, src.refused, base)
    _raise_problems(src)
    assert playbook is not None
    return playbook


def read_text(path: Path) -> tuple[str, bytes]:
    """A file's text and bytes, refused past MAX_BYTES or when not UTF-8."""
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise PlaybookInvalid(
                name,
                [Problem(name, 1, 1, "", f"{size:,} bytes is over the {MAX_BYTES:,}-byte limit")],
            )
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise PlaybookInvalid(
            name, [Problem(name, 1, 1, "", f"cannot read: {exc.strerror}")]
        ) from None
    if len(raw) > MAX_BYTES:
        raise PlaybookInvalid(name, [Problem(name, 1, 1, "", f"over the {MAX_BYTES:,}-byte limit")])
    try:
        return raw.decode("utf-8"), raw
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PlaybookInvalid(name, [Problem(name, line, 1, "", "not UTF-8 text")]) from None


def load(path: Path | str, model: type[Playbook]) -> LoadedPlaybook:
    """Read and validate a playbook file against ``model`` (see :func:`parse`)."""
    path = Path(path)
    text, raw = read_text(path)
    playbook = parse(text, str(path), base=path, model=model)
    return LoadedPlaybook(playbook, path.resolve(), hashlib.sha256(raw).hexdigest())
