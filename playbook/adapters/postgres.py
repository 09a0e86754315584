"""PostgreSQL diagnostics: one SQL statement, read only, bounded, parameters bound.

Three walls stand between a diagnostic and a write:

1. :func:`check_sql` refuses, before anything connects, any text that is not a single
   statement starting with SELECT, WITH, VALUES, TABLE, SHOW or EXPLAIN (without
   ANALYZE), and any that writes from inside a read (``WITH x AS (DELETE …)``,
   ``SELECT … INTO``, ``FOR UPDATE``) or calls a function that signals other backends,
   reads server files, takes a blocking lock or changes settings. Strings, quoted names,
   dollar quotes and comments are skipped, so ``'DELETE'`` as data refuses nothing.
2. The statement runs inside ``BEGIN READ ONLY`` with ``statement_timeout`` set to
   what is left of the deadline: whatever slipped past the check fails in the server.
3. Parameters are bound by the driver by name (``%(name)s``), never pasted into the text.

Rows stream through a server-side cursor into the :class:`Sink` as JSON-ready dicts
(times ISO 8601, decimals as numbers, bytes as hex). The numbers are ``rows`` and every
numeric column of the first row; a time column becomes seconds since the epoch and also
``<column>_age_seconds``. The deadline and cancel send the server a cancel request and
cut the connection, so a long query or a silent server ends when the run does.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any

from playbook.adapters.base import (
    Adapter,
    DeadlineExceeded,
    RunContext,
    RunError,
    RunRequest,
    Sink,
    scrub,
)
from playbook.adapters.readonly import Refused
from playbook.core.values import ObjectIdValue

APPLICATION_NAME = "playbook diagnostic"
FETCH = 500
"""Rows fetched from the server-side cursor per round trip."""
CANCEL_TIMEOUT = 1.0
"""Seconds the cancel request may take before the connection is cut regardless."""

READ_STARTS = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN"})
"""The words a diagnostic's statement may start with."""

WRITE_WORDS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "TRUNCATE", "COPY"})
"""Words that write from inside a read (``WITH x AS (DELETE …)``, ``SELECT … INTO t``,
``FOR UPDATE``); refused wherever they appear outside strings and quoted names."""

DENIED_FUNCTIONS = frozenset(
    {
        # signal or reconfigure the server
        "pg_cancel_backend",
        "pg_terminate_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_promote",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_backup_start",
        "pg_backup_stop",
        "set_config",
        "pg_notify",
        # read or write files on the server
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "pg_stat_file",
        "pg_file_write",
        "lo_import",
        "lo_export",
        "lo_unlink",
        "lo_create",
        "lo_from_bytea",
        "lo_put",
        # reach other servers
        "dblink",
        "dblink_exec",
        "dblink_connect",
        # wait for someone else
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_advisory_xact_lock",
        "pg_advisory_xact_lock_shared",
    }
)
"""Functions refused even in a read: they act on the server, not on data."""

_PLACEHOLDER = re.compile(r"%\((?P<name>[A-Za-z_][A-Za-z0-9_]*)\)s|%%|%(?P<other>.?)", re.S)


# --------------------------------------------------------------------------- the check


def _tokens(sql: str) -> list[tuple[str, str, int]]:
    """``(kind, text, offset)`` of the statement's tokens; strings, quoted names and
    comments are one token each (or none), so what they hold is never read as SQL.

    Raises:
        Refused: a string, quoted name or comment is not closed.
    """
    out: list[tuple[str, str, int]] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            depth, i = 1, i + 2
            while depth and i < n:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            if depth:
                raise Refused("Refused: a /* comment */ is not closed.")
        elif c == "'":
            escapes = bool(out) and out[-1][1].upper() == "E" and out[-1][2] + 1 == i
            start, i = i, i + 1
            while True:
                if i >= n:
                    raise Refused("Refused: a quoted string is not closed.")
                if escapes and sql[i] == "\\":
                    i += 2
                elif sql[i] == "'":
                    if sql.startswith("''", i):
                        i += 2
                    else:
                        i += 1
                        break
                else:
                    i += 1
            out.append(("string", sql[start:i], start))
        elif c == '"':
            end = i + 1
            while True:
                end = sql.find('"', end)
                if end < 0:
                    raise Refused('Refused: a "quoted name" is not closed.')
                if sql.startswith('""', end):
                    end += 2
                    continue
                break
            out.append(("name", sql[i : end + 1], i))
            i = end + 1
        elif c == "$" and (tag := re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", sql[i:])):
            close = sql.find(tag.group(0), i + len(tag.group(0)))
            if close < 0:
                raise Refused("Refused: a $$ dollar-quoted string is not closed.")
            end = close + len(tag.group(0))
            out.append(("string", sql[i:end], i))
            i = end
        elif c.isalpha() or c == "_":
            word = re.match(r"[A-Za-z_\x80-\uffff][A-Za-z0-9_$\x80-\uffff]*", sql[i:])
            assert word is not None
            out.append(("word", word.group(0), i))
            i += len(word.group(0))
        else:
            out.append(("punct", c, i))
            i += 1
    return out


def check_sql(sql: str) -> str:
    """The statement without a trailing semicolon, if it is one bounded read.

    Raises:
        Refused: a second statement, a statement that is not a read, EXPLAIN ANALYZE,
            a write inside a read, or a function that acts on the server.
    """
    tokens = _tokens(sql)
    semis = [pos for pos, t in enumerate(tokens) if t[0] == "punct" and t[1] == ";"]
    if len(semis) > 1 or (semis and semis[0] != len(tokens) - 1):
        raise Refused(
            "Refused: the SQL holds more than one statement.",
            "A diagnostic runs exactly one statement; nothing was sent.",
        )
    text = sql[: tokens[semis[0]][2]] if semis else sql
    body = tokens[: semis[0]] if semis else tokens
    first = next((t for t in body if t[1] != "("), None)
    if first is None or first[0] != "word":
        raise Refused("Refused: the SQL holds no statement.")
    start = first[1].upper()
    if start not in READ_STARTS:
        raise Refused(
            f"Refused: a diagnostic's statement starts with "
            f"{', '.join(sorted(READ_STARTS))}; this one starts with {start}.",
            "Diagnostics only read; a change to data is a guarded action. Nothing was sent.",
        )
    words = [(k, t.upper(), at) for k, t, at in body if k == "word"]
    if start == "EXPLAIN" and any(w in ("ANALYZE", "ANALYSE") for _, w, _ in words):
        raise Refused(
            "Refused: EXPLAIN ANALYZE runs the statement it explains.",
            "Use EXPLAIN without ANALYZE; nothing was sent.",
        )
    for _, word, _ in words:
        if word in WRITE_WORDS:
            raise Refused(
                f"Refused: {word} inside the statement writes or locks rows.",
                "Diagnostics only read; nothing was sent.",
            )
    for pos, (kind, word, _) in enumerate(body):
        follows = body[pos + 1][1] if pos + 1 < len(body) else ""
        if kind == "word" and follows == "(" and word.lower() in DENIED_FUNCTIONS:
            raise Refused(
                f"Refused: {word.lower()}() acts on the server, not on data.",
                "Diagnostics only read; nothing was sent.",
            )
    return text


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


def _bound(value: object) -> object:
    """A typed parameter value as psycopg binds it."""
    if isinstance(value, ObjectIdValue):
        return value.hex
    if isinstance(value, list):
        return [_bound(v) for v in value]
    return value


# --------------------------------------------------------------------------- values


def json_ready(value: Any) -> Any:
    """A value read from PostgreSQL as JSON: times ISO 8601, decimals as numbers,
    bytes as hex, intervals as seconds; anything else unknown as text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def epoch(value: datetime) -> float:
    """Seconds since the epoch; a time without zone (``timestamp``) is read as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def first_row_numbers(row: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """The numbers a first row gives: numeric and true/false columns as they are, an
    interval in seconds, a time as epoch seconds plus ``<column>_age_seconds``."""
    now = time.time() if now is None else now
    out: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, bool | int):
            out[name] = value
        elif isinstance(value, float | Decimal):
            if math.isfinite(value):
                out[name] = json_ready(value)
        elif isinstance(value, datetime):
            seconds = epoch(value)
            out[name] = seconds
            out[f"{name}_age_seconds"] = round(now - seconds, 3)
        elif isinstance(value, timedelta):
            out[name] = value.total_seconds()
    return out


# --------------------------------------------------------------------------- connections


class Interrupt:
    """Stops a connection's work from another thread: a cancel request to the server,
    then the socket cut, so a blocked read returns even from a server that went silent.

    It holds its own duplicate of the socket, so cutting it never touches a file
    descriptor the driver has closed and the system handed to someone else.
    """

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._lock = threading.Lock()
        self._closed = False
        fd = conn.pgconn.socket
        self._sock: socket.socket | None = socket.socket(fileno=os.dup(fd))

    def __call__(self) -> None:
        """The stopper for :meth:`RunContext.on_stop`: returns at once, works behind."""
        threading.Thread(target=self._stop, name="playbook-pg-cancel", daemon=True).start()

    def _stop(self) -> None:
        with self._lock:
            if self._closed:
                return
            with contextlib.suppress(Exception):  # a dead server cannot be told; cut below
                self.conn.cancel_safe(timeout=CANCEL_TIMEOUT)
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close the connection (the caller's thread, once its work is over)."""
        self.detach()
        with contextlib.suppress(Exception):
            self.conn.close()

    def detach(self) -> None:
        """Stand down and leave the connection open (a lock that outlives its stage)."""
        with self._lock:
            self._closed = True
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def connect(uri: str, ctx: RunContext, application_name: str, **kwargs: Any) -> Any:
    """A psycopg connection within the run's connect timeout (libpq's minimum is 2 s).

    Raises:
        RunError: the server could not be reached or refused the login (text scrubbed).
    """
    import psycopg

    ctx.check()
    try:
        conn = psycopg.connect(
            uri,
            connect_timeout=max(2, math.ceil(ctx.connect_timeout)),
            application_name=application_name[:63],
            **kwargs,
        )
    except psycopg.Error as exc:
        if ctx.stopped:
            raise ctx.stop_error() from None
        raise RunError(
            f"PostgreSQL could not be reached: {_first_line(scrub(str(exc), uri))}",
            f"Check the target and that the server answers within {ctx.connect_timeout:g} s.",
        ) from None
    except ValueError as exc:  # a malformed URI: psycopg's message may quote it
        raise RunError(
            f"The target's URI is not a PostgreSQL URI: {scrub(str(exc), uri)}"
        ) from None
    ctx.connected()
    return conn


def set_timeouts(conn: Any, ctx: RunContext) -> int:
    """``statement_timeout`` and ``lock_timeout`` for this transaction: the time left."""
    ms = max(1, int(ctx.remaining() * 1000))
    conn.execute(
        "SELECT set_config('statement_timeout', %(ms)s, true),"
        " set_config('lock_timeout', %(ms)s, true)",
        {"ms": str(ms)},
    )
    return ms


def run_error(exc: Exception, ctx: RunContext, uri: str, doing: str) -> RunError:
    """The :class:`RunError` for a psycopg error, with the URI and password scrubbed."""
    import psycopg.errors as e

    if ctx.stopped:
        return ctx.stop_error()
    if isinstance(exc, e.QueryCanceled):
        return DeadlineExceeded(
            "PostgreSQL stopped the statement at its time limit (the run's deadline).",
            "The result is partial. Narrow the query or raise the timeout.",
        )
    if isinstance(exc, e.ReadOnlySqlTransaction):
        return RunError(
            f"PostgreSQL refused to write: the statement tried to change data inside a "
            f"read-only transaction ({_first_line(scrub(str(exc), uri))}).",
            "Nothing was changed. Diagnostics only read; a change is a guarded action.",
        )
    if isinstance(exc, e.OperationalError):
        return RunError(
            f"PostgreSQL stopped answering while {doing}: {_first_line(scrub(str(exc), uri))}",
            "Check the server; the result is partial.",
        )
    return RunError(f"PostgreSQL refused {doing}: {_first_line(scrub(str(exc), uri))}")


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["(no message)"])[0][:300]


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


# --------------------------------------------------------------------------- the adapter


class PostgresAdapter(Adapter):
    """Reads PostgreSQL with psycopg 3, in a read-only transaction under a time limit."""

    kind = "postgres"
    description = "PostgreSQL (psycopg 3): one read-only SQL statement, parameters bound"

    def check(self, request: RunRequest) -> None:
        sql = request.query.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            raise Refused("Refused: a postgres diagnostic needs its SQL (query.sql).")
        check_sql(sql)
        params = dict(request.options.get("params") or {})
        missing = sorted(placeholders(sql) - set(params))
        if missing:
            raise Refused(
                f"Refused: the SQL uses {', '.join(missing)}, which the diagnostic does "
                "not declare as parameters.",
                "Declare each %(name)s under the diagnostic's params.",
            )

    def run(self, request: RunRequest, ctx: RunContext, sink: Sink) -> dict[str, Any]:
        import psycopg

        self.check(request)
        sql = check_sql(request.query["sql"])
        names = placeholders(sql)
        given = request.options.get("params") or {}
        params = {k: _bound(v) for k, v in given.items() if k in names} if names else None
        conn = connect(request.uri, ctx, APPLICATION_NAME, autocommit=False)
        interrupt = Interrupt(conn)
        ctx.on_stop(interrupt)
        cursor = None
        try:
            conn.read_only = True  # psycopg begins with BEGIN READ ONLY
            set_timeouts(conn, ctx)
            ctx.check()
            start = check_start(sql)
            if start in ("SHOW", "EXPLAIN"):
                cursor = conn.cursor()
            else:
                cursor = conn.cursor(name="playbook_diagnostic")
            cursor.execute(sql, params)
            return self._stream(cursor, request.limit, ctx, sink)
        except psycopg.Error as exc:
            raise run_error(exc, ctx, request.uri, "the query") from None
        finally:
            with contextlib.suppress(Exception):
                if not conn.closed and not ctx.stopped:
                    conn.rollback()  # never commit: there is nothing to keep
            interrupt.close()
            if cursor is not None:
                cursor.close()  # the connection is closed: nothing more is sent

    def _stream(self, cursor: Any, limit: int, ctx: RunContext, sink: Sink) -> dict[str, Any]:
        columns = _unique([c.name for c in cursor.description or []])
        metrics: dict[str, Any] = {}
        rows = 0
        while rows < limit:
            batch = cursor.fetchmany(min(FETCH, limit - rows))
            if not batch:
                break
            for values in batch:
                row = dict(zip(columns, values, strict=False))
                if rows == 0:
                    metrics.update(first_row_numbers(row))
                sink.add({k: json_ready(v) for k, v in row.items()})
                rows += 1
            ctx.check()
            ctx.progress(rows, None, "rows read")
        metrics["rows"] = rows
        return metrics


def check_start(sql: str) -> str:
    """The first word of a checked statement, upper-cased."""
    first = next(t for t in _tokens(sql) if t[1] != "(")
    return first[1].upper()
