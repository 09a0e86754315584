"""What a diagnostic's SQL is, as PostgreSQL's own parser reads it.

A hand-written tokenizer disagrees with PostgreSQL exactly where an attacker looks (a
comment one side ends and the other does not, a quoted function name, a Unicode-escaped
identifier). So the text goes through pglast, which embeds PostgreSQL's parser
(libpg_query), and the parse tree decides:

* exactly one statement, and only a read: a SELECT with no ``INTO``, no locking clause
  (``FOR UPDATE``/``SHARE``…) and no data-modifying CTE at any depth, ``VALUES``,
  ``TABLE``, ``SHOW``, or ``EXPLAIN`` without ``ANALYZE`` of such a SELECT;
* what the statement could call on the server, by name: functions (quoted, qualified,
  upper-case, or written as ``row.function``), operators (also those ``IN``, ``LIKE``,
  ``BETWEEN``, ``CASE x WHEN`` and ``ORDER BY … USING`` stand for), the types it names
  (casts, column definition lists, the type ``pg_input_is_valid`` is given as a string)
  and the relations it reads. :mod:`playbook.adapters.postgres.calls` asks the server
  what those names resolve to before the statement runs.

psycopg's ``%(name)s`` placeholders are not SQL: the parser reads a copy in which they
are ``$n`` (:func:`as_sent`), and that copy is what is sent, with the values in ``$n``
order (psycopg's raw cursors), so the server receives exactly the text that was checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from playbook.adapters.base import Refused

READS = "SELECT, VALUES, TABLE, SHOW or EXPLAIN (without ANALYZE)"
"""What a diagnostic may run, as the refusals say it."""

_PLACEHOLDER = re.compile(r"%\((?P<name>[A-Za-z_][A-Za-z0-9_]*)\)s|%%|%(?P<other>.?)", re.S)

_WRITES = {
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "MergeStmt": "MERGE",
}
_LOCKS = {
    "LCS_FORKEYSHARE": "FOR KEY SHARE",
    "LCS_FORSHARE": "FOR SHARE",
    "LCS_FORNOKEYUPDATE": "FOR NO KEY UPDATE",
    "LCS_FORUPDATE": "FOR UPDATE",
}
# BETWEEN is not an operator of its own: the server rewrites it with these.
_BETWEEN = ("<", "<=", ">", ">=")

TYPE_BY_NAME = {"pg_input_is_valid": 2, "pg_input_error_info": 2}
"""Functions of ``pg_catalog`` that take a type *by name*, as text (which argument), and
run that type's input, and so a domain's CHECK, on a value. No catalog column says a
text argument names a type, so these two are listed (a test asks the server that they
exist with a text argument there). The name must be a string literal, which the server
then resolves (``to_regtype`` reads it with the same parser); a value (a parameter, a
column, an expression) could name any type, and is refused. The input functions
themselves (``record_in``, ``domain_in``…, which take a type's OID) are found in the
catalog (``pg_type.typinput``) and refused there."""


@dataclass(frozen=True)
class Calls:
    """Names in a statement that the server resolves to code it runs."""

    functions: tuple[tuple[str | None, str, bool], ...] = ()
    """(schema or None, name, attribute notation): ``f(x)``, ``s.f(x)``, or ``t.f``,
    which PostgreSQL reads as ``f(t)`` when ``t`` has no column ``f``."""
    operators: tuple[tuple[str | None, str], ...] = ()
    types: tuple[str, ...] = ()
    """Types the statement names (casts, column definition lists, ``pg_input_is_valid``'s
    literal), as text ``to_regtype`` reads (``"pg_catalog"."int4"``, ``evil_dom``)."""
    relations: tuple[str, ...] = ()
    """Tables and views read, as quoted names ``to_regclass`` reads."""


@dataclass(frozen=True)
class Statement:
    """One diagnostic statement that PostgreSQL's parser says is a read."""

    text: str
    """The SQL as written, placeholders and all."""
    kind: str
    """``SELECT`` (also VALUES and TABLE: read through a server-side cursor), ``SHOW``
    or ``EXPLAIN``."""
    names: frozenset[str] = frozenset()
    """The ``%(name)s`` placeholders."""
    calls: Calls = field(default_factory=Calls)
    sent: str = ""
    """The text the parser read and the server receives: ``%(name)s`` as ``$n`` and
    ``%%`` as ``%`` when there are placeholders, else the SQL as written."""
    order: tuple[str, ...] = ()
    """The placeholders' names in ``$n`` order: the values are sent in this order."""
    body: str = ""
    """The statement alone, as the parser delimited it in :attr:`sent` (no trailing
    semicolon), for wrapping in a query of our own."""


# --------------------------------------------------------------------------- placeholders


def placeholders(sql: str) -> set[str]:
    """The names of the ``%(name)s`` placeholders in ``sql``.

    Raises:
        Refused: a ``%`` that is neither a named placeholder nor ``%%`` (with
            parameters in use, a literal percent sign is written ``%%``).
    """
    names: set[str] = set()
    uses = "%(" in sql
    for match in _PLACEHOLDER.finditer(sql):
        if match.group("name"):
            names.add(match.group("name"))
        elif match.group(0) != "%%" and uses:
            raise Refused(
                f"Refused: {match.group(0)!r} is not a placeholder; parameters are written "
                "%(name)s.",
                "With parameters in the SQL, write a literal percent sign as %%.",
            )
    return names


def as_sent(sql: str) -> str:
    """The text sent for ``sql`` with parameters: each distinct ``%(name)s`` becomes
    ``$1``, ``$2``… in order of first use, and ``%%`` becomes ``%``, as psycopg itself
    would rewrite it (a test compares them).

    Only called on text :func:`placeholders` accepted, where these are the only ``%``
    forms.
    """
    return _numbered(sql)[0]


def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """:func:`as_sent`'s text, and the names in ``$n`` order."""
    numbers: dict[str, int] = {}

    def one(match: re.Match[str]) -> str:
        name = match.group("name")
        if name is None:
            return "%"
        return f"${numbers.setdefault(name, len(numbers) + 1)}"

    return _PLACEHOLDER.sub(one, sql), tuple(numbers)


# --------------------------------------------------------------------------- the check


def check_sql(sql: str) -> Statement:
    """The statement, if PostgreSQL's parser reads ``sql`` as one read.

    Raises:
        Refused: not exactly one statement, not a read, a write or lock inside a read,
            EXPLAIN ANALYZE, or text the parser cannot read. The message names what
            was found; nothing was sent.
    """
    from pglast import parse_sql
    from pglast.parser import ParseError

    if not sql.strip():
        raise Refused("Refused: a postgres diagnostic needs its SQL (query.sql).")
    if "\x00" in sql:  # the parser and libpq read C strings: both would stop there
        raise Refused(
            "Refused: the SQL holds a NUL character, which PostgreSQL cannot receive.",
            "Nothing was sent.",
        )
    names = placeholders(sql)
    parsed, order = _numbered(sql) if names else (sql, ())
    try:
        statements = parse_sql(parsed)
    except ParseError as exc:
        where = exc.args[1] if len(exc.args) > 1 else None
        at = f" (at character {where})" if isinstance(where, int) else ""
        raise Refused(
            f"Refused: PostgreSQL's parser cannot read the SQL: {exc.args[0]}{at}.",
            "Nothing was sent.",
        ) from None
    except RecursionError:
        raise Refused("Refused: the SQL is nested too deeply to check.") from None
    if not statements:
        raise Refused("Refused: the SQL holds no statement (only comments or semicolons).")
    if len(statements) > 1:
        raise Refused(
            f"Refused: the SQL holds {len(statements)} statements; a diagnostic runs exactly one.",
            "Nothing was sent.",
        )
    raw = statements[0]
    node = raw.stmt
    # pglast gives character offsets; a length of 0 means "to the end of the text".
    start = max(raw.stmt_location, 0)
    body = parsed[start : start + raw.stmt_len] if raw.stmt_len else parsed[start:]
    kind = type(node).__name__
    if kind == "SelectStmt":
        read, what = node, "SELECT"
    elif kind == "VariableShowStmt":
        return Statement(sql, "SHOW", frozenset(names), sent=parsed, order=order, body=body)
    elif kind == "ExplainStmt":
        read, what = _explained(node), "EXPLAIN"
    else:  # WITH … DELETE is named for what it does, the rest by their first word
        name = _WRITES.get(kind) or _first_word(parsed)
        raise Refused(
            f"Refused: this is {_a(name)} statement; a diagnostic runs {READS}.",
            "Diagnostics only read; a change to data is a guarded action. Nothing was sent.",
        )
    return Statement(sql, what, frozenset(names), _calls(read), parsed, order, body)


def calls_in(text: str, *, query: bool) -> Calls:
    """What a definition the server printed could call: a view's query (``query``) or
    an expression (a policy's ``USING``, a domain's ``CHECK``), read by the same parser.

    Raises:
        Refused: the parser cannot read it as one read (it always should).
    """
    from pglast import parse_sql
    from pglast.parser import ParseError

    try:
        statements = parse_sql(text if query else f"SELECT ({text})")
    except ParseError as exc:
        raise Refused(f"Refused: PostgreSQL's parser cannot read it: {exc.args[0]}") from None
    except RecursionError:
        raise Refused("Refused: it is nested too deeply to check.") from None
    if len(statements) != 1 or type(statements[0].stmt).__name__ != "SelectStmt":
        raise Refused("Refused: it is not one SELECT.")
    return _calls(statements[0].stmt)


def _explained(node: Any) -> Any:
    """The SELECT an EXPLAIN explains, if it has no ANALYZE option in any spelling."""
    for option in node.options or ():
        # The parser spells ANALYSE as analyze; even ANALYZE false is refused: the
        # option has no use in a diagnostic, and a value test would be a rule of ours.
        if option.defname == "analyze":
            raise Refused(
                "Refused: EXPLAIN ANALYZE runs the statement it explains.",
                "Use EXPLAIN without ANALYZE; nothing was sent.",
            )
    inner = node.query
    if type(inner).__name__ != "SelectStmt":
        name = _WRITES.get(type(inner).__name__) or type(inner).__name__.removesuffix("Stmt")
        raise Refused(
            f"Refused: EXPLAIN of {_a(name)} statement; the explained statement must be a read.",
            f"A diagnostic runs {READS}. Nothing was sent.",
        )
    return inner


def _a(word: str) -> str:
    return f"an {word}" if word[:1].upper() in "AEIOU" else f"a {word}"


def _first_word(text: str) -> str:
    """The statement's first keyword, as the parser's own scanner reads it."""
    from pglast.parser import scan

    for token in scan(text):
        if not token.name.endswith("COMMENT"):
            return text[token.start : token.end + 1].upper()
    return "empty"


def _walk(root: Any) -> Iterator[tuple[Any, tuple[str, ...]]]:
    """Every node under ``root`` with the type names of its ancestors; iterative, so a
    deep expression cannot exhaust Python's stack."""
    from pglast import ast

    stack: list[tuple[Any, tuple[str, ...]]] = [(root, ())]
    while stack:
        value, above = stack.pop()
        if isinstance(value, ast.Node):
            yield value, above
            here = (*above, type(value).__name__)
            for attr in value:
                if attr != "ancestors":
                    stack.append((getattr(value, attr), here))
        elif isinstance(value, list | tuple):
            stack.extend((item, above) for item in value)


def _strings(nodes: Any) -> list[str]:
    return [n.sval for n in nodes or () if type(n).__name__ == "String"]


def _quoted(parts: list[str]) -> str:
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def _qualified(parts: list[str]) -> tuple[str | None, str]:
    """(schema, name) of ``[name]``, ``[schema, name]`` or ``[db, schema, name]``."""
    return (parts[-2] if len(parts) > 1 else None), parts[-1]


def _type_named(node: Any, name: str) -> str:
    """The type a :data:`TYPE_BY_NAME` call names: a string literal, in its place."""
    args = list(node.args or ())
    where = TYPE_BY_NAME[name]
    literal = None
    if len(args) >= where and not node.func_variadic:
        arg = args[where - 1]
        if not any(type(a).__name__ == "NamedArgExpr" for a in args) and (
            type(arg).__name__ == "A_Const" and type(arg.val).__name__ == "String"
        ):
            literal = arg.val.sval
    if literal is None:
        raise Refused(
            f"Refused: {name}() is not given its type as a string literal in place "
            f"(argument {where}); the type's checks could not be looked at before it runs.",
            f"Write the type as a literal in its place ({name}('…', 'int4')). Nothing was sent.",
        )
    return literal


def _calls(read: Any) -> Calls:
    """Refuse writes and locks anywhere in ``read``; collect what it could call."""
    functions: set[tuple[str | None, str, bool]] = set()
    operators: set[tuple[str | None, str]] = set()
    types: set[str] = set()
    relations: set[str] = set()
    for node, above in _walk(read):
        kind = type(node).__name__
        if kind in _WRITES:
            where = "inside a WITH" if "CommonTableExpr" in above else "inside the statement"
            raise Refused(
                f"Refused: {_a(_WRITES[kind])} {where}: the statement would change data.",
                "Diagnostics only read; a change to data is a guarded action. Nothing was sent.",
            )
        if kind.endswith("Stmt") and kind != "SelectStmt":
            raise Refused(f"Refused: {_a(kind.removesuffix('Stmt'))} inside the statement.")
        if kind == "SelectStmt":
            if node.intoClause is not None:
                raise Refused(
                    "Refused: SELECT … INTO creates a table.",
                    "Diagnostics only read; nothing was sent.",
                )
            for lock in node.lockingClause or ():
                strength = _LOCKS.get(lock.strength.name, "FOR UPDATE")
                raise Refused(
                    f"Refused: {strength} locks the rows it reads.",
                    "Diagnostics only read; remove the locking clause. Nothing was sent.",
                )
        elif kind == "FuncCall":
            schema, name = _qualified(_strings(node.funcname))
            functions.add((schema, name, False))
            if len(node.args or ()) == 1:  # int4(x) may be a cast, not a function
                types.add(_quoted(_strings(node.funcname)[-2:]))
            if name in TYPE_BY_NAME:
                types.add(_type_named(node, name))
        elif kind == "A_Expr":
            names = _strings(node.name)
            if node.kind.name.startswith(("AEXPR_BETWEEN", "AEXPR_NOT_BETWEEN")):
                operators.update((None, op) for op in _BETWEEN)
            elif names:
                operators.add(_qualified(names))
        elif kind == "SubLink":
            names = _strings(node.operName) or (["="] if node.testexpr is not None else [])
            if names:
                operators.add(_qualified(names))
        elif kind == "CaseExpr" and node.arg is not None:
            operators.add((None, "="))
        elif kind == "SortBy" and node.useOp:
            operators.add(_qualified(_strings(node.useOp)))
        elif kind == "TypeName":
            names = _strings(node.names)
            if names:
                types.add(_quoted(names[-2:]))
                if node.arrayBounds:
                    types.add(_quoted(names[-2:]) + "[]")
        elif kind == "RangeVar":
            parts = [p for p in (node.schemaname, node.relname) if p]
            relations.add(_quoted(parts))
        elif kind == "ColumnRef":
            fields = list(node.fields or ())
            if len(fields) > 1 and type(fields[-1]).__name__ == "String":
                functions.add((None, fields[-1].sval, True))
        elif kind == "A_Indirection":
            for name in _strings(node.indirection):
                functions.add((None, name, True))
    return Calls(
        tuple(sorted(functions, key=str)),
        tuple(sorted(operators, key=str)),
        tuple(sorted(types)),
        tuple(sorted(relations)),
    )
