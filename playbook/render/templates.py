"""The one place status messages are rendered.

One immutable sandboxed Jinja environment per template directory, with
StrictUndefined: a template cannot reach Python internals or mutate values, a
missing variable is an error that names it (never a blank in a published message),
and a value containing ``{{ }}`` is printed as written because values are never
themselves rendered. Output and values are size-capped. Templates are read from their
folder only: a name or a symlink that leads outside it is refused.

A template is code from a runbook repository, which is not trusted, so rendering runs
under a budget enforced *while* it renders, through Jinja's own hooks, never by
looking at the result afterwards:

* every ``{% for %}`` loop's iterable is wrapped (the parsed template is rewritten before
  it is compiled) so that each iteration counts against :data:`MAX_ITERATIONS` and checks
  the deadline (:data:`MAX_SECONDS`): nested loops that would run for hours stop within
  the budget, even when they print nothing;
* every call the sandbox intercepts (macros, methods, ``loop(...)`` of a recursive loop)
  checks the deadline, and a macro or recursive loop nested deeper than
  :data:`MAX_DEPTH` is an error naming the template, not a ``RecursionError``;
* every template loaded during one render (``include``, ``import``, ``extends``) counts
  against :data:`MAX_TEMPLATES`, so a template that includes itself stops too;
* output is streamed with ``generate()`` and counted as it comes; filters and string
  methods refuse a width or count past :data:`MAX_OUTPUT` before building the value.

The budget costs a counter and a clock read per loop iteration and per call: a few
microseconds for the shipped templates.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache, wraps
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.loaders import split_template_path
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from playbook.core.text import first_unpaired, has_control
from playbook.errors import TemplateError

MAX_OUTPUT = 8_000
"""Characters a status message may have; status pages cap far lower."""
MAX_VALUE = 2_000
"""Characters one variable's value may have."""
MAX_SECONDS = 1.0
"""Time one render may take; the shipped templates take well under a millisecond."""
MAX_ITERATIONS = 100_000
"""Loop iterations one render may make, all loops together."""
MAX_DEPTH = 32
"""How deeply macros (or a recursive loop) may call each other."""
MAX_TEMPLATES = 32
"""Templates one render may load (itself, includes, imports, parents)."""


class _OverBudget(Exception):
    """A render went past its budget; the message says which part."""


@dataclass
class _Budget:
    """What one render has spent so far."""

    deadline: float
    iterations: int = 0
    depth: int = 0
    templates: int = 0
    output: int = 0

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise _OverBudget(f"it ran for more than {MAX_SECONDS:g} s")

    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.iterations += 1
            if self.iterations > MAX_ITERATIONS:
                raise _OverBudget(f"its loops ran more than {MAX_ITERATIONS:,} times")
            self.check_time()
            yield item


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)
"""The budget of the render running in this thread (None outside :func:`render`)."""

_WIDTH = re.compile(r"%[-+ #0]*(\d+)|\{[^{}]*:[^{}]*?(\d+)[^{}]*\}")
"""A width in a ``%`` or ``str.format`` format string."""


def _too_wide(fmt: str) -> bool:
    """True when a format string asks for a width past the output cap."""
    widths = [w for pair in _WIDTH.findall(fmt) for w in pair if w]
    return any(len(w) > 5 or int(w) > MAX_OUTPUT for w in widths)


def _refuse_big_numbers(what: str, args: Iterable[object]) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_OUTPUT:
            raise SecurityError(f"{what} with {arg} would build too large a value")


def _budgeted_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` refusing a count or width past the output cap, and a result past it."""

    @wraps(func)  # keeps Jinja's pass_context / pass_environment marks
    def run(*args: Any, **kwargs: Any) -> Any:
        # Always, not only under a budget: Jinja folds constant filter calls while it
        # compiles (`validate` and the variable check compile too), and
        # ``"x"|center(100000000)`` would otherwise build 100 MB there.
        _refuse_big_numbers(f"the filter {name!r}", [*args[1:], *kwargs.values()])
        budget = _BUDGET.get()
        if budget is not None:
            budget.check_time()
        result = func(*args, **kwargs)
        if budget is not None and isinstance(result, str) and len(result) > MAX_OUTPUT:
            raise _OverBudget(f"the filter {name!r} built {len(result):,} characters")
        return result

    return run


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with a budget (see the module's docstring)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _budgeted_filter(name, func) for name, func in self.filters.items()}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Parse, then wrap every loop's iterable in the render's budget."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(
                nodes.EnvironmentAttribute("budgeted"), [loop.iter], [], None, None
            )
        return tree

    def budgeted(self, iterable: Iterable[Any]) -> Iterable[Any]:
        """A loop's iterable, counted against the render's budget (see :meth:`_parse`)."""
        budget = _BUDGET.get()
        return iterable if budget is None else budget.iterate(iterable)

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: object, right: object
    ) -> object:
        if operator == "%" and isinstance(left, str) and _too_wide(left):
            raise SecurityError("'%' with a width this large would build too large a value")
        if operator == "**" or (isinstance(left, str | list) or isinstance(right, str | list)):
            big = right if isinstance(right, int) else left
            if isinstance(big, int) and abs(big) > MAX_OUTPUT:
                raise SecurityError(f"'{operator}' with {big} would build too large a value")
        return super().call_binop(context, operator, left, right)

    def call(
        __self,  # Jinja's own signature: any keyword argument passes through
        __context: jinja2.runtime.Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        budget = _BUDGET.get()
        if budget is None:
            return super().call(__context, __obj, *args, **kwargs)
        budget.check_time()
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):
            what = f"{getattr(method, '__name__', 'a string method')}()"
            _refuse_big_numbers(what, args)
            if what in ("format()", "format_map()") and _too_wide(owner):
                raise SecurityError(f"{what} with a width this large would build too large a value")
        if not isinstance(__obj, Macro | LoopContext):
            return super().call(__context, __obj, *args, **kwargs)
        budget.depth += 1
        try:
            if budget.depth > MAX_DEPTH:
                name = getattr(__obj, "name", None) or "a recursive loop"
                raise _OverBudget(f"{name} was called more than {MAX_DEPTH} deep (recursion?)")
            if isinstance(__obj, LoopContext) and args:
                args = (budget.iterate(args[0]), *args[1:])
            return super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1

    def _load_template(self, name: str, globals: Mapping[str, Any] | None) -> jinja2.Template:
        budget = _BUDGET.get()
        if budget is not None:
            budget.templates += 1
            if budget.templates > MAX_TEMPLATES:
                raise _OverBudget(
                    f"it loaded more than {MAX_TEMPLATES} templates (an include of itself?)"
                )
        return super()._load_template(name, globals)


class _ConfinedLoader(jinja2.BaseLoader):
    """Templates from one folder and nowhere else.

    Jinja's ``FileSystemLoader`` refuses a ``..`` in a template's name (its
    ``split_template_path``) but follows a symlink wherever it points, so a runbooks
    repository could ship ``templates/x -> ~/.ssh/id_ed25519`` and have it rendered into a
    status message. This loader resolves the path and refuses what lands outside.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        pieces = split_template_path(template)  # raises TemplateNotFound on ".."
        path = self.folder.joinpath(*pieces).resolve()
        if not path.is_relative_to(self.folder):
            raise SecurityError(f"template {template!r} leads outside {self.folder}")
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise jinja2.TemplateNotFound(template) from None
        return source, str(path), lambda: True


@lru_cache(maxsize=16)
def environment(template_dir: Path) -> ImmutableSandboxedEnvironment:
    """The sandboxed environment for one template directory (built once)."""
    return _Sandbox(
        loader=_ConfinedLoader(template_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        auto_reload=False,
    )


def required_variables(template_dir: Path, name: str) -> set[str]:
    """Names the template uses, found by parsing it (not by rendering)."""
    env = environment(template_dir)
    try:
        source, _filename, _uptodate = env.loader.get_source(env, name)  # type: ignore[union-attr]
        return set(meta.find_undeclared_variables(env.parse(source)))
    except jinja2.TemplateNotFound:
        raise TemplateError(f"Template {name!r} not found in {template_dir}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"Template {name!r} has a syntax error at line {exc.lineno}", exc.message or ""
        ) from None
    except SecurityError as exc:
        raise TemplateError(f"Refused: {exc}.") from None


def check_values(values: Mapping[str, str]) -> None:
    """Refuse values that would corrupt a published message (give it only the values
    the template uses: :func:`render` does)."""
    for key, value in values.items():
        if not isinstance(value, str):
            raise TemplateError(f"Variable {key!r} must be text, not {type(value).__name__}")
        if len(value) > MAX_VALUE:
            raise TemplateError(
                f"Variable {key!r} is {len(value):,} characters; the limit is {MAX_VALUE:,}."
            )
        if has_control(value.replace("\n", "").replace("\t", "")):
            raise TemplateError(
                f"Variable {key!r} contains control characters (terminal escapes?); "
                "a status message must be plain text."
            )


def render(
    template_dir: Path, name: str, values: Mapping[str, str], label: str | None = None
) -> str:
    """Render template ``name`` with ``values``.

    Raises:
        TemplateError: a variable is missing or empty, a value is unsafe, the template
            is broken or tries something the sandbox forbids, or the output is too long.
    """
    needed = required_variables(template_dir, name)
    # Only what the template prints can corrupt it: an incident variable it never uses
    # (a title with a control character, recorded by an older version) must not block it.
    check_values({k: v for k, v in values.items() if k in needed})
    missing = sorted(v for v in needed if v not in values)
    empty = sorted(v for v in needed if v in values and not values[v].strip())
    if missing or empty:
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(missing))
        if empty:
            parts.append("empty: " + ", ".join(empty))
        raise TemplateError(
            f"Cannot render {label or name!r}: {'; '.join(parts)}",
            "Give each a value (on the command line: --set NAME=VALUE); a status message "
            "never goes out with a blank.",
        )
    env = environment(template_dir)
    budget = _Budget(deadline=time.monotonic() + MAX_SECONDS)
    token = _BUDGET.set(budget)
    parts: list[str] = []
    try:
        template = env.get_template(name)
        for part in template.generate(dict(values)):
            budget.output += len(part)
            if budget.output > MAX_OUTPUT:
                raise TemplateError(
                    f"The rendered message is over {MAX_OUTPUT:,} characters (the limit is "
                    f"{MAX_OUTPUT:,}); rendering stopped there."
                )
            budget.check_time()
            parts.append(part)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"Cannot render {name!r}: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateError(f"Template {name!r} tried something unsafe: {exc}") from None
    except _OverBudget as exc:
        raise TemplateError(
            f"Template {name!r} was stopped: {exc}.",
            "A status message template should be a few lines with a few loops; "
            f"rendering has a budget of {MAX_SECONDS:g} s and {MAX_ITERATIONS:,} loop "
            "iterations.",
        ) from None
    except RecursionError:
        raise TemplateError(
            f"Template {name!r} was stopped: it recursed too deeply.",
            "A macro or include that calls itself must stop.",
        ) from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"Template {name!r} failed: {exc}") from None
    finally:
        _BUDGET.reset(token)
    text = "".join(parts)
    at = first_unpaired(text)
    if at is not None:
        # A string escape ("\ud800") or a format filter can make one; no event, export or
        # terminal can hold it, so the message is refused here, naming the template.
        raise TemplateError(
            f"Template {name!r} produced \\u{ord(text[at]):04x} at character {at + 1}, a lone "
            "UTF-16 surrogate, which is not text; nothing was recorded.",
            "Write the character itself in the template.",
        )
    return text


def unpaired_literals(template_dir: Path, name: str) -> list[tuple[int, str]]:
    """Lone surrogates written as string escapes in template ``name``: (line, how it is
    shown) for each, found by parsing (`playbook validate` reports them before a render
    would refuse them).

    Raises:
        TemplateError: the template is missing or has a syntax error.
    """
    env = environment(template_dir)
    try:
        source, _filename, _uptodate = env.loader.get_source(env, name)  # type: ignore[union-attr]
        tree = env.parse(source)
    except jinja2.TemplateNotFound:
        raise TemplateError(f"Template {name!r} not found in {template_dir}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"Template {name!r} has a syntax error at line {exc.lineno}", exc.message or ""
        ) from None
    found: list[tuple[int, str]] = []
    for const in tree.find_all(nodes.Const):
        if isinstance(const.value, str):
            at = first_unpaired(const.value)
            if at is not None:
                found.append((const.lineno, f"\\u{ord(const.value[at]):04x}"))
    return found
