"""The one place status messages are rendered.

One immutable sandboxed Jinja environment per template directory, with
StrictUndefined: a template cannot reach Python internals or mutate values, a
missing variable is an error that names it (never a blank in a published message),
and a value containing ``{{ }}`` is printed as written because values are never
themselves rendered. Output and values are size-capped.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from playbook.core.text import has_control
from playbook.errors import TemplateError

MAX_OUTPUT = 8_000
"""Characters a status message may have; status pages cap far lower."""
MAX_VALUE = 2_000
"""Characters one variable's value may have."""


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with ``*`` and ``**`` unable to build huge values."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: object, right: object
    ) -> object:
        if operator == "**" or (isinstance(left, str | list) or isinstance(right, str | list)):
            big = right if isinstance(right, int) else left
            if isinstance(big, int) and abs(big) > MAX_OUTPUT:
                raise SecurityError(f"'{operator}' with {big} would build too large a value")
        return super().call_binop(context, operator, left, right)


@lru_cache(maxsize=16)
def environment(template_dir: Path) -> ImmutableSandboxedEnvironment:
    """The sandboxed environment for one template directory (built once)."""
    return _Sandbox(
        loader=jinja2.FileSystemLoader(str(template_dir)),
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
    try:
        text = env.get_template(name).render(dict(values))
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"Cannot render {name!r}: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateError(f"Template {name!r} tried something unsafe: {exc}") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"Template {name!r} failed: {exc}") from None
    if len(text) > MAX_OUTPUT:
        raise TemplateError(
            f"The rendered message is {len(text):,} characters; the limit is {MAX_OUTPUT:,}."
        )
    return text
