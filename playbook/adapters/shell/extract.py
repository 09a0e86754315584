"""A shell diagnostic's output read as a table, by the extractor its playbook declares.

Without ``extract:`` a shell diagnostic's rows are its output lines and the only numbers
are the run's own (exit status, line count): ``df`` at 95 % passes. With it, the output is
cut into rows of named columns (:class:`~playbook.adapters.shell.extract_models.Extract`)
and each number column gives the expectations their numbers
(:func:`playbook.core.diagnostics.column_numbers`: ``c`` for a single row, ``c_min`` and
``c_max`` always).

A number is read strictly (:func:`playbook.core.diagnostics.strict_number`): text that
is not one is an error naming the column, the row and the text, never a pass and never a
float made of garbage.

Cost: the run keeps the whole output (at most the runner's 4 MB cap) in memory until
it is cut, instead of streaming lines to the evidence.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from typing import Any

from playbook.adapters.base import RunContext, RunError
from playbook.core.diagnostics import strict_number
from playbook.redaction import scrub

MAX_MATCHES = 100_000
"""Rows a regex may cut from one output (``(?P<x>a*)`` matches at every position)."""

# The playbook's regex is untrusted, and Python's ``re`` cannot be stopped once a match
# runs (``(a+)+$`` on a 30-character line takes minutes, holding the GIL: no watchdog
# could even run). So it runs in a child interpreter the run's deadline and cancel kill.
# Cost: one interpreter start (about 20 ms, isolated mode, no site) per regex run.
_MATCHER = """
import json, re, sys
spec = json.load(sys.stdin)
rx, rows = re.compile(spec["pattern"]), []
for line in spec["lines"]:
    for match in rx.finditer(line):
        rows.append(match.groupdict())
        if len(rows) > spec["most"]:
            sys.exit(3)
json.dump(rows, sys.stdout)
"""

SHOWN = 60
"""Characters of an offending text quoted back."""


def _shown(text: str) -> str:
    text = scrub(text)  # before the cut, which would leave a secret's first characters
    cut = text[:SHOWN]
    return repr(cut) + ("…" if len(text) > SHOWN else "")


def extract(
    spec: dict[str, Any], lines: list[str], ctx: RunContext
) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of ``lines`` cut by ``spec`` (the ``extract:`` block as a dict), and the
    names of the number columns.

    Raises:
        RunError: a line does not have the declared columns, a number column's text is no
            number, or the JSON output is not JSON or lacks the path.
    """
    fields: dict[str, dict[str, Any]] = spec.get("fields") or {}
    numbers = [name for name, f in fields.items() if f.get("as") == "number"]
    if spec.get("json") is not None:
        raw = _json_rows(spec["json"].get("path", ""), "\n".join(lines), fields)
    else:
        body = lines[int(spec.get("skip") or 0) :]
        if spec.get("regex") is not None:
            raw = _regex_rows(spec["regex"], body, ctx)
        else:
            raw = _column_rows(spec["columns"], body, int(spec.get("skip") or 0))
    rows = [_typed(row, fields, n) for n, row in enumerate(raw, 1)]
    return rows, numbers


def _regex_rows(pattern: str, lines: list[str], ctx: RunContext) -> list[dict[str, Any]]:
    """Every match of ``pattern`` in each line, matched in a child the deadline kills.

    Raises:
        RunError: more than :data:`MAX_MATCHES` matches, or the child failed.
        DeadlineExceeded | Cancelled: the run's deadline passed or it was cancelled
            while matching (a pattern that backtracks without end).
    """
    ctx.check()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _MATCHER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    ctx.on_stop(proc.kill)
    order = json.dumps({"pattern": pattern, "lines": lines, "most": MAX_MATCHES})
    try:
        out, err = proc.communicate(order.encode("utf-8", "surrogatepass"), ctx.remaining())
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        ctx.check()  # past the deadline now: says so
        raise RunError("The extractor's regex did not finish before the deadline.") from None
    ctx.check()  # killed by a cancel or the watchdog: say that, not the symptom
    if proc.returncode == 3:
        raise RunError(
            f"The extractor's regex matched more than {MAX_MATCHES:,} times.",
            "Make the pattern match something that is there (not an empty string).",
        )
    if proc.returncode != 0:
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise RunError(f"The extractor's regex failed: {_shown(last[0])}")
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def _column_rows(columns: list[str], lines: list[str], skipped: int) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(lines, skipped + 1):
        if not line.strip():
            continue
        parts = line.split(None, len(columns) - 1)
        if len(parts) < len(columns):
            raise RunError(
                f"Output line {n} has {len(parts)} field(s); the extractor names "
                f"{len(columns)} columns ({', '.join(columns)}): {_shown(line)}",
                "Check the program's output format, or the extractor's `skip` and `columns`.",
            )
        rows.append(dict(zip(columns, (p.strip() for p in parts), strict=True)))
    return rows


def _json_rows(path: str, text: str, fields: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    try:
        doc = json.loads(text, parse_constant=_no_constant, parse_float=_float)
    except (ValueError, RecursionError):
        raise RunError(
            f"The output is not JSON; it begins: {_shown(text)}",
            "The extractor reads one JSON document; check the program's options (e.g. `-o json`).",
        ) from None
    items = _walk([doc], path.split(".") if path else [], path)
    rows = []
    for item in items:
        if fields:
            row: dict[str, Any] = {}
            for name, f in fields.items():
                found = _walk([item], (f.get("path") or name).split("."), f.get("path") or name)
                row[name] = found[0] if found else None
        elif isinstance(item, dict):
            row = {k: v for k, v in item.items() if not isinstance(v, dict | list)}
        else:
            row = {"value": item}
        rows.append(row)
    return rows


def _walk(nodes: list[Any], parts: list[str], path: str) -> list[Any]:
    """Every value at ``parts`` below each of ``nodes``; a missing key is an error for a
    row path (the output is not what the playbook expects)."""
    for part in parts:
        step: list[Any] = []
        for node in nodes:
            if part == "*":
                if isinstance(node, list):
                    step.extend(node)
                elif isinstance(node, dict):
                    step.extend(node.values())
            elif isinstance(node, dict) and part in node:
                step.append(node[part])
            elif (
                isinstance(node, list)
                and re.fullmatch(r"-?[0-9]{1,9}", part)
                and -len(node) <= int(part) < len(node)
            ):
                step.append(node[int(part)])
        nodes = step
    return nodes


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class _Spelt(str):
    """A JSON number past a float's range (``1e999``), kept as the text it was.

    Python reads it as ``inf``: no number of anything, and no event or evidence file
    can hold it (JSON has no infinity). As text it is a row's value like any other;
    in a number column it is an error naming the column.
    """


def _float(text: str) -> float | str:
    number = float(text)
    return number if math.isfinite(number) else _Spelt(text)


def _typed(row: dict[str, Any], fields: dict[str, dict[str, Any]], n: int) -> dict[str, Any]:
    out = dict(row)
    for name, f in fields.items():
        if f.get("as") != "number":
            continue
        value = row.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            continue  # a JSON number is one already (a finite one: see _float)
        number = None
        if isinstance(value, str) and not isinstance(value, _Spelt):
            number = strict_number(value, f.get("strip") or "")
        if isinstance(value, _Spelt):
            raise RunError(
                f"Column {name!r} of row {n} is declared a number, but the output has "
                f"{_shown(str(value))} there, which is not a finite number.",
                "A number past 1.8e308 is no reading; check the program's output.",
            )
        if number is None:
            what = "nothing" if value is None else _shown(str(value))
            raise RunError(
                f"Column {name!r} of row {n} is declared a number, but the output has "
                f"{what} there.",
                "Check the program's output, or the column's `strip` (e.g. \"%\").",
            )
        out[name] = number
    return out
