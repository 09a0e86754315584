"""The one place status messages are rendered.

(Over 600 lines: the sandbox's budget is one mechanism — the rewritten loops, the
intercepted calls and the size checks share one counter and one deadline — and splitting
it would spread one promise over several files.)

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
  methods refuse a width or count past :data:`MAX_OUTPUT` before building the value;
* **a single C-level call cannot run long**, because no filter, method, operator, output
  or ``~`` is applied to a value larger than :data:`MAX_SIZE` characters or items, and
  ``+`` and ``*`` refuse to build one, all checked *before* the call. The size counted is
  the value's logical size, memoised per object, so ``[a] * 3000`` of a 1,000-item ``a``
  counts 3,000,000 even though it holds 3,000 references (its ``|sum(start=[])`` then
  ran 40 s in one call, past every check between operations). ``range()`` stops at
  :data:`MAX_ITERATIONS`; integers stop at :data:`MAX_INT_BITS` bits;
* any other error a template raises (``1/0``, ``[[1]]|unique``, ``"x"|wordwrap(0)``) is a
  :class:`~playbook.errors.TemplateError` naming the template, never an internal error.

The budget costs a counter and a clock read per loop iteration and per call, and a size
walk (memoised) per value a call touches: a few microseconds for the shipped templates.
It is enforced inside the process that renders. :func:`render_isolated` (what the
service uses) runs that process apart and ends it at a hard deadline, for what these
checks would still miss (:mod:`playbook.render.template_worker`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache, wraps
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.loaders import split_template_path
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from playbook.core.text import first_unpaired, has_control, inline
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
MAX_SIZE = 10_000
"""Characters or items (counted through nested lists and dicts) of a value that a filter,
method, operator or output may touch: one C call on it then does at most about
``MAX_SIZE ** 2`` steps (a separator joined between as many items), a fraction of a
second. A status message is at most :data:`MAX_OUTPUT` characters anyway."""
MAX_INT_BITS = 14_000
"""Bits an integer may have (about 4,200 digits; Python prints at most 4,300)."""


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
    sizes: dict[int, tuple[Any, int]] = field(default_factory=dict)
    """Logical sizes by ``id``, each with its object (kept alive so that no id is reused
    during the render): values in the immutable sandbox never change."""

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


_CONTAINERS = (list, tuple, dict, set, frozenset)


def _flat_size(value: object) -> int | None:
    """The size of a value that holds no other values; None for a container."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, int):
        return value.bit_length() // 3 + 1  # about its decimal digits
    if isinstance(value, _CONTAINERS):
        return None
    return 1  # numbers, None, Undefined, macros, namespaces: opaque, small


def _members(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield item
    else:
        yield from value


def logical_size(value: object) -> int:
    """``value``'s characters and items, counted through nested containers as often as
    they are referenced, stopping past :data:`MAX_SIZE`. Iterative (a deeply nested value
    cannot exhaust the stack) and memoised for the render, so a value built by sharing
    (``[[a, a], [a, a]]``, doubled thirty times) is measured in time proportional to the
    distinct containers in it, not to its logical size."""
    flat = _flat_size(value)
    if flat is not None:
        return flat
    budget = _BUDGET.get()
    memo = budget.sizes if budget is not None else {}
    if id(value) in memo:
        return memo[id(value)][1]
    over = MAX_SIZE + 1
    stack: list[tuple[Any, Iterator[Any], int]] = [(value, _members(value), 1)]
    open_ids = {id(value)}
    steps = 0
    while stack:
        container, members, total = stack[-1]
        descended = False
        for member in members:
            steps += 1
            if budget is not None and steps % 1024 == 0:
                budget.check_time()
            size = _flat_size(member)
            if size is None:
                known = memo.get(id(member))
                if known is not None:
                    size = known[1]
                elif id(member) in open_ids:
                    size = over  # only a mutable value can hold itself: refuse it
                else:
                    stack[-1] = (container, members, total)
                    stack.append((member, _members(member), 1))
                    open_ids.add(id(member))
                    descended = True
                    break
            total += size
            if total > MAX_SIZE:
                for open_container, _m, _t in stack:
                    memo[id(open_container)] = (open_container, over)
                return over
        if descended:
            continue
        stack.pop()
        open_ids.discard(id(container))
        memo[id(container)] = (container, total)
        if stack:
            parent, members, parent_total = stack[-1]
            parent_total += total
            if parent_total > MAX_SIZE:
                for open_container, _m, _t in stack:
                    memo[id(open_container)] = (open_container, over)
                return over
            stack[-1] = (parent, members, parent_total)
    return memo[id(value)][1]


def _refuse_large(what: str, values: Iterable[object]) -> None:
    """Refuse to apply ``what`` to a value past :data:`MAX_SIZE` (before the call)."""
    for value in values:
        if logical_size(value) > MAX_SIZE:
            raise SecurityError(
                f"{what} a value of more than {MAX_SIZE:,} characters or items "
                "(counted through the lists in it)"
            )


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
        _refuse_large(f"the filter {name!r} on", [*args, *kwargs.values()])
        if name in ("replace", "join", "indent"):  # (eval_ctx or env, value, …)
            value, *rest = [*args[1:], *kwargs.values()] or [""]
            _refuse_string_growth(name, value, rest)
        budget = _BUDGET.get()
        if budget is not None:
            budget.check_time()
        result = func(*args, **kwargs)
        if budget is not None and isinstance(result, str) and len(result) > MAX_OUTPUT:
            raise _OverBudget(f"the filter {name!r} built {len(result):,} characters")
        return result

    return run


def _sized(value: Any, what: str = "printing") -> Any:
    """``value``, once it is known to be small enough for ``what`` (``{{ }}``, ``~``, a
    comparison, a dictionary key: each is one C call over the whole value)."""
    _refuse_large(what, [value])
    return value


def _budgeted_test(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A Jinja test (``is eq``, ``is in``, …) refusing values past :data:`MAX_SIZE`."""

    @wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        _refuse_large(f"the test {name!r} on", [*args, *kwargs.values()])
        return func(*args, **kwargs)

    return run


def _range(*args: int) -> range:
    """``range()`` of at most :data:`MAX_ITERATIONS` items (Jinja's own sandbox allows
    100,000 and raises an ``OverflowError`` that reads like a crash)."""
    made = range(*args)
    if len(made) > MAX_ITERATIONS:
        raise SecurityError(f"range() of {len(made):,} items; the limit is {MAX_ITERATIONS:,}")
    return made


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's ``lipsum()``, refused past :data:`MAX_SIZE` words (it is Python code that
    loops outside the template's loops: ``lipsum(8000, false, 7999, 8000)`` ran for
    minutes)."""
    if not all(isinstance(x, int) for x in (n, min, max)) or n * max > MAX_SIZE:
        raise SecurityError(f"lipsum() of more than {MAX_SIZE:,} words")
    return str(jinja2.utils.generate_lorem_ipsum(n=n, html=html, min=min, max=max))


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with a budget (see the module's docstring)."""

    intercepted_binops = frozenset({"+", "*", "**", "%", "//", "/", "-"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_sized, **options)
        self.filters = {name: _budgeted_filter(name, func) for name, func in self.filters.items()}
        self.tests = {name: _budgeted_test(name, func) for name, func in self.tests.items()}
        self.globals["range"] = _range
        self.globals["lipsum"] = _lipsum

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Parse, then wrap every loop's iterable in the render's budget, and in the size
        check every value that Python walks whole in one C call without asking the
        sandbox: the operands of ``~`` (``str()``), of comparisons (``==`` of two shared-
        reference trees walks their logical size) and dictionary keys (``hash()``)."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(
                nodes.EnvironmentAttribute("budgeted"), [loop.iter], [], None, None
            )

        def checked(expr: nodes.Expr, what: str) -> nodes.Expr:
            check = nodes.EnvironmentAttribute("sized")
            return nodes.Call(check, [expr, nodes.Const(what)], [], None, None)

        for concat in tree.find_all(nodes.Concat):
            concat.nodes = [checked(operand, "joining with '~'") for operand in concat.nodes]
        for compare in tree.find_all(nodes.Compare):
            compare.expr = checked(compare.expr, "comparing")
            for operand in compare.ops:
                operand.expr = checked(operand.expr, "comparing")
        for pair in tree.find_all(nodes.Pair):
            pair.key = checked(pair.key, "hashing")
        return tree

    def getitem(self, obj: Any, argument: Any) -> Any:
        _refuse_large("looking up with", [argument])  # a key is hashed whole
        return super().getitem(obj, argument)

    sized = staticmethod(_sized)

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
        _refuse_large(f"'{operator}' on", [left, right])
        _refuse_growth(operator, left, right)
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
        if __obj is _sized or getattr(__obj, "__func__", None) is _Sandbox.budgeted:
            return super().call(__context, __obj, *args, **kwargs)  # ours: they check
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(method, "__self__", None)
        name = getattr(method, "__name__", "a function")
        _refuse_large(f"{name}() on", [owner, *args, *kwargs.values()])
        if isinstance(owner, str):
            _refuse_string_growth(name, owner, args)
            what = f"{name}()"
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


def _refuse_growth(operator: str, left: object, right: object) -> None:
    """Refuse ``+``, ``*`` and ``**`` whose result would pass :data:`MAX_SIZE` or
    :data:`MAX_INT_BITS`, before Python builds it."""
    if _grown_size(operator, left, right) > MAX_SIZE:
        raise SecurityError(f"'{operator}' would build a value of more than {MAX_SIZE:,} items")
    if _grown_bits(operator, left, right) > MAX_INT_BITS:
        raise SecurityError(f"'{operator}' would build a number of more than {MAX_INT_BITS:,} bits")


def _grown_size(operator: str, left: object, right: object) -> int:
    sequences = str | list | tuple
    if operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
        return logical_size(left) + logical_size(right)
    if operator == "*" and isinstance(left, sequences) and isinstance(right, int):
        return logical_size(left) * max(right, 0)
    if operator == "*" and isinstance(right, sequences) and isinstance(left, int):
        return logical_size(right) * max(left, 0)
    return 0


def _grown_bits(operator: str, left: object, right: object) -> int:
    if not (isinstance(left, int) and isinstance(right, int)):
        return 0
    if operator == "*":
        return left.bit_length() + right.bit_length()
    if operator == "**" and right > 0 and abs(left) > 1:
        return left.bit_length() * right
    return 0


def _refuse_string_growth(name: str, value: object, args: Sequence[object]) -> None:
    """Refuse, before it runs, a call of a string method or filter whose result would
    pass :data:`MAX_SIZE` though its inputs do not: ``replace`` (of ``""``, it puts the new
    text between every two characters), ``join`` (the separator between every two
    items) and ``indent`` and ``expandtabs`` (a width on every line or tab)."""
    grown = 0
    first = args[0] if args else None
    if name == "replace" and len(args) >= 2 and isinstance(value, str):
        old, new = args[0], args[1]
        if isinstance(old, str) and isinstance(new, str):
            grown = len(value) + value.count(old) * (len(new) - len(old))
    elif name == "join":
        separator, items = (value, first) if isinstance(value, str) else (first, value)
        if isinstance(separator, str) and isinstance(items, Sized):
            grown = len(separator) * len(items)
    elif name == "indent" and isinstance(value, str):
        width = first if first is not None else 4
        step = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        grown = len(value) + (value.count("\n") + 1) * step
    elif name == "expandtabs" and isinstance(value, str):
        tab = first if isinstance(first, int) else 8
        grown = len(value) + value.count("\t") * tab
    if grown > MAX_SIZE:
        raise SecurityError(f"{name}() would build more than {MAX_SIZE:,} characters")


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
    except (RecursionError, MemoryError) as exc:  # ((((… nested past the parser's depth
        raise TemplateError(
            f"Template {name!r} cannot be read: {type(exc).__name__} (nested too deeply?)."
        ) from None


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
    except TemplateError:
        raise
    except Exception as exc:  # 1/0, [[1]]|unique, "x"|wordwrap(0), 10**400 printed, …
        raise TemplateError(
            f"Template {name!r} failed: {type(exc).__name__}: {inline(str(exc))[:300]}",
            "The template computes something Python refuses; fix the template.",
        ) from None
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


def variable_lines(template_dir: Path, name: str) -> dict[str, int]:
    """The variables template ``name`` reads from its context, each with the first line
    that reads it. Jinja's own parser decides (``meta.find_undeclared_variables`` in the
    sandbox that renders it): a name the template sets itself (``{% set %}``, a loop
    variable, a macro's argument) is not one of them.

    Raises:
        TemplateError: the template is missing or cannot be parsed.
    """
    found = required_variables(template_dir, name)
    env = environment(template_dir)
    source, _filename, _uptodate = env.loader.get_source(env, name)  # type: ignore[union-attr]
    lines: dict[str, int] = {}
    for node in env.parse(source).find_all(nodes.Name):
        if node.name in found and node.ctx == "load":
            lines[node.name] = min(lines.get(node.name, node.lineno), node.lineno)
    return {variable: lines.get(variable, 1) for variable in sorted(found)}
