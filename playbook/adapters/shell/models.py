"""What a playbook may say of a shell diagnostic: its program, environment and network.

A shell diagnostic's fields sit beside the common ones (``argv:``, not ``query: {argv:}``),
so :class:`~playbook.adapters.shell.adapter.ShellAdapter` contributes the whole
diagnostic model rather than a query model. Nothing here needs the sandbox.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from playbook.adapters.shell.extract_models import RESERVED, Extract
from playbook.core.model import DiagnosticBase, ParamRef


def parse_endpoint(text: object) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for an IPv6 address) as (host, port), by the
    standard library's URL authority parser.

    Raises:
        ValueError: not a host and a port from 1 to 65535.
    """
    from urllib.parse import urlsplit

    if not isinstance(text, str) or not text or any(c in text for c in "/?#@ \t"):
        raise ValueError("write host:port, e.g. db.internal:5432")
    parts = urlsplit(f"//{text}")
    port = parts.port  # ValueError when it is not a number from 0 to 65535
    if not parts.hostname or port is None or port == 0:
        raise ValueError("write host:port, e.g. db.internal:5432")
    return parts.hostname, port


def _endpoint(value: object) -> object:
    parse_endpoint(value)
    return value


Endpoint = Annotated[
    str,
    BeforeValidator(_endpoint),
    WithJsonSchema({"type": "string", "examples": ["db.internal:5432", "[::1]:6379"]}),
]
"""A network destination a shell diagnostic may reach: ``host:port``."""


def _not_reserved(name: str) -> str:
    if name in ("PATH", "HOME", "TMPDIR"):
        raise ValueError(
            f"{name} is set by playbook for every run (HOME and TMPDIR are the "
            "run's private folder)"
        )
    return name


EnvName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128),
    AfterValidator(_not_reserved),
]
"""An environment variable's name; PATH, HOME and TMPDIR are playbook's own."""


class ShellDiagnostic(DiagnosticBase):
    """A program run from an argument list (never a shell string) inside the kernel's
    sandbox: it reads the installed system but not homes or temporary folders, writes
    only a private folder of its own, reaches only the ports in `network`, signals only
    its own processes, and gets none of the responder's environment."""

    kind: Literal["shell"]
    drill_service: ClassVar[bool] = False  # it runs here: a drill has nothing to give it
    argv: list[str | ParamRef] = Field(min_length=1)
    """The program and its arguments. ``{$param: name}`` is one argument whatever its
    value; a value starting with `-` is refused unless the parameter is an `option`."""
    env: dict[EnvName, str | ParamRef] = {}
    """Environment variables besides PATH, LANG and TZ (the program gets no other of the
    responder's): text or ``{$param: name}``. HOME and TMPDIR are the run's private
    folder and cannot be set; never put a secret here, it would be in the playbook."""
    network: list[Endpoint] = []
    """``host:port`` the program may connect to over TCP; empty means no network. The
    kernel enforces the port, not the host: any host on a listed port is reachable.
    Declaring one also lets the program use UDP (so the host name resolves)."""
    exit_codes: list[Annotated[int, Field(ge=0, le=255)]] = Field([0], min_length=1)
    """Exit statuses that mean the program ran as intended (``[0, 1]`` for grep, whose
    1 means "no match"); any other status gives the verdict error."""
    extract: Extract | None = None
    """How stdout becomes rows with named columns, and which are numbers for `expect`
    (``regex``, ``columns`` or ``json``; see README "Numbers from shell output").
    Without it the rows are the output's lines."""

    def result_metrics(self) -> frozenset[str]:
        """The numbers this diagnostic's run can give (for ``playbook validate``): the
        run's own (:data:`RUN_METRICS`) and, with ``extract``, each number column's
        (:func:`playbook.core.diagnostics.column_metric_names`, the names the run's
        ``column_numbers`` gives)."""
        from playbook.core.diagnostics import column_metric_names

        names = set(RUN_METRICS)
        if self.extract is not None:
            numbers = [n for n, f in self.extract.fields.items() if f.as_ == "number"]
            names |= column_metric_names(numbers)
        return frozenset(names)


RUN_METRICS = RESERVED - {"line"}
"""The numbers a shell run sets itself (``line`` is a row's column, no number): the
names a column may not take, so the two lists are one."""
