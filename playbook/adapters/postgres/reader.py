"""PostgreSQL diagnostics: one read, enforced by PostgreSQL itself, bounded, parameters bound.

Each wall is an authority's, not a list of ours:

1. **The parser.** :func:`~playbook.adapters.postgres.sql.check_sql` reads the SQL with
   PostgreSQL's own parser (pglast) before anything connects: exactly one statement, and
   only a read (SELECT without INTO, locking or a data-modifying CTE; VALUES; TABLE;
   SHOW; EXPLAIN without ANALYZE).
2. **The protocol.** The statement is always sent with the extended query protocol (a
   server-side cursor, or an unnamed prepared statement), in which the server itself
   refuses a second statement, whatever a comment or a quote made of the text. The text
   sent is the text the parser read (placeholders as ``$n``, psycopg's raw cursors).
3. **The session.** The first statement after connecting, and the only one before the
   session is read only, sets ``default_transaction_read_only``,
   ``standard_conforming_strings`` (so the server lexes strings as the parser did), the
   output styles the evidence is read in, ``statement_timeout``, ``lock_timeout`` and
   ``idle_in_transaction_session_timeout``, after anything a URI's ``options`` or an
   ``ALTER DATABASE … SET`` asked for. It calls nothing but ``pg_catalog.set_config``,
   by its qualified name, so nothing a database owner can create runs in it. Everything
   else runs in ``BEGIN READ ONLY``, which is rolled back.
4. **The role.** In that transaction, a superuser, a replication role or a member of the
   server-file roles is refused unless the responder marked the target ``privileged``
   (:func:`~playbook.adapters.postgres.calls.check_role`).
5. **The catalog.** Then every function the statement could reach (by name, behind an
   operator or a cast, through a type it can produce, inside a view, a policy or a
   domain check) is resolved on the server and must be IMMUTABLE or STABLE in
   ``pg_catalog``, on a short allowlist of volatile reads, or named by the responder for
   this target (:func:`~playbook.adapters.postgres.calls.check_calls`).
6. **Parameters** are bound by the driver (``%(name)s`` in the playbook), never pasted in.
7. **Size.** The server refuses to send a row whose text is over :data:`MAX_RESULT`
   (the statement is wrapped in a query of ours that measures each row before it
   leaves), rows arrive one at a time (libpq's single-row mode, over ``FETCH``), and the
   evidence stops at :data:`MAX_RESULT`: no result is ever held whole.

Rows go into the :class:`Sink` as JSON-ready dicts (times ISO 8601, decimals as numbers,
bytes as hex). The numbers are ``rows`` and every numeric column of the first row; a
time column becomes seconds since the epoch and also ``<column>_age_seconds``. The
deadline and cancel reach every stage: a connect in progress (each host of a multi-host
URI gets only what is left of the connect timeout), and a query, which gets a cancel
request and then has its connection cut.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any

from playbook.adapters.base import (
    Adapter,
    DeadlineExceeded,
    Refused,
    RunContext,
    RunError,
    RunRequest,
    Sink,
    scrub,
)
from playbook.adapters.postgres.calls import TargetOptions, check_calls, check_role
from playbook.adapters.postgres.models import PostgresAction, PostgresDiagnostic, unique_names
from playbook.adapters.postgres.sql import Statement, check_sql, placeholders
from playbook.core.values import ObjectIdValue

__all__ = ["PostgresAdapter", "check_sql", "connect", "placeholders"]

APPLICATION_NAME = "playbook diagnostic"
FETCH = 500
"""Rows fetched from the server-side cursor per round trip (they arrive one at a time)."""
CURSOR = "playbook_diagnostic"
MAX_RESULT = 64 * 2**20
"""The largest row the server may send (its text, in bytes), and the most evidence a
run writes (characters of JSON): the Redis adapter's cap on one reply, for the same
reason. A 200 MB value took 1 GB of memory when rows were fetched 500 at a time."""
ROW_TOO_LARGE = "playbook: a row larger than the cap"
"""Text of the error the size check makes the server raise (see :func:`capped`)."""
CANCEL_TIMEOUT = 1.0
"""Seconds the cancel request may take before the connection is cut regardless."""


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
    interval in seconds, a time as epoch seconds plus ``<column>_age_seconds``
    (:func:`playbook.core.diagnostics.age_metrics`: a time dated more than a few seconds
    ahead of this machine's clock gives ``<column>_ahead_seconds`` instead)."""
    from playbook.core.diagnostics import age_metrics

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
            # ahead of this machine's clock beyond a small skew: no age, by how much
            out.update(age_metrics(f"{name}_", seconds, now))
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


class _Connecting:
    """One connect, host after host, in a thread of its own so the run can walk away.

    psycopg's ``connect`` blocks, and gives every host of a multi-host URI the whole
    ``connect_timeout``: eight silent hosts cost eight timeouts. Here the hosts come from
    the driver's own parser (``conninfo_attempts``: the URI's hosts and ports, and every
    address a name resolves to), each attempt gets only what is left of the run's
    connect time (libpq's minimum of 2 s aside), and the run waits on an event that its
    watchdog also sets: at the deadline or at cancel the run returns at once, and the
    attempt still under way closes whatever it gets. Its cost: one short-lived thread
    per connect.
    """

    def __init__(self, params: dict[str, Any], until: float, kwargs: dict[str, Any]) -> None:
        self.params = params
        self.until = until
        self.kwargs = kwargs
        self.done = threading.Event()
        self.conn: Any = None
        self.errors: list[Exception] = []
        self._lock = threading.Lock()
        self._abandoned = False
        threading.Thread(target=self._run, name="playbook-pg-connect", daemon=True).start()

    def _run(self) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_attempts, make_conninfo

        try:
            for attempt in conninfo_attempts(self.params):  # resolves names: may block too
                left = self.until - time.monotonic()
                if self._abandoned or left <= 0:
                    return
                try:
                    conn = psycopg.connect(
                        make_conninfo("", **attempt),
                        connect_timeout=max(2, math.ceil(left)),
                        **self.kwargs,
                    )
                except psycopg.Error as exc:
                    self.errors.append(exc)
                    continue
                with self._lock:
                    if not self._abandoned:
                        self.conn = conn
                        return
                conn.close()  # the run has gone: nobody will use it
                return
        except Exception as exc:  # no host resolved, or a driver's surprise: said below
            self.errors.append(exc)
        finally:
            self.done.set()

    def abandon(self) -> None:
        """The run stopped waiting: close the connection if it came, or when it comes."""
        with self._lock:
            self._abandoned = True
            conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def connect(uri: str, ctx: RunContext, application_name: str, *, autocommit: bool = False) -> Any:
    """A psycopg connection within the run's connect time, every host included.

    Raises:
        RunError: no host could be reached or the server refused the login (text
            scrubbed); the run's stop error at the deadline or at cancel.
    """
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    ctx.check()
    try:
        params = conninfo_to_dict(uri)
    except (psycopg.Error, ValueError) as exc:  # its message may quote the URI
        raise RunError(
            f"The target's URI is not a PostgreSQL URI: {_first_line(scrub(str(exc), uri))}"
        ) from None
    until = ctx.started + ctx.connect_timeout
    kwargs = {"autocommit": autocommit, "application_name": application_name[:63]}
    connecting = _Connecting(params, until, kwargs)
    ctx.on_stop(connecting.done.set)
    try:
        connecting.done.wait()
    except BaseException:  # Ctrl-C while waiting: whatever comes is closed
        connecting.abandon()
        raise
    if ctx.stopped or connecting.conn is None:
        connecting.abandon()
        if ctx.stopped:
            raise ctx.stop_error()
        if not connecting.errors:  # the time ran out between two hosts
            raise DeadlineExceeded(
                f"No host answered within the connect timeout of {ctx.connect_timeout:g} s.",
                "Check the target's address and that the server is up and not overloaded.",
            )
        last = _first_line(scrub(str(connecting.errors[-1]), uri))
        tried = len(connecting.errors)
        raise RunError(
            f"PostgreSQL could not be reached: {last}"
            + (f" ({tried} hosts tried; this is the last one's answer)" if tried > 1 else ""),
            f"Check the target and that the server answers within {ctx.connect_timeout:g} s.",
        )
    ctx.connected()
    return connecting.conn


SESSION_SETTINGS = (
    ("default_transaction_read_only", "on"),
    ("standard_conforming_strings", "on"),
    # The evidence is read in these: a database's own settings could make psycopg
    # misread a date or an interval, or print a float with fewer digits than it has.
    ("DateStyle", "ISO"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
    ("client_encoding", "UTF8"),
    # A notice or a warning is never read; a huge one would still be held whole.
    ("client_min_messages", "error"),
    # Compiling the catalog check (a few recursive CTEs the planner thinks costly) took
    # 3 s of a 0.05 s check; a diagnostic is a small read, and gains nothing from it.
    ("jit", "off"),
)


def session_limits(conn: Any, ctx: RunContext) -> int:
    """Read only and bounded for the whole session, set after connecting so that no
    URI ``options=-c …`` or ``ALTER DATABASE/ROLE … SET`` undoes it; the statement
    cannot undo it either (SET is not a read, and ``set_config`` is VOLATILE).
    ``standard_conforming_strings`` makes the server read backslashes in strings as the
    parser that checked the text did.

    This is the first statement of the session and the only one before it is read only:
    it names one function, schema-qualified (no operator, no type, nothing a search path
    could resolve to a database owner's object). Call in autocommit: a SET inside a
    transaction that is rolled back is undone.
    """
    ms = str(max(1, int(ctx.remaining() * 1000)))
    fixed = ", ".join(
        f"pg_catalog.set_config('{name}', '{value}', false)" for name, value in SESSION_SETTINGS
    )
    conn.execute(
        f"SELECT {fixed},"
        " pg_catalog.set_config('statement_timeout', %(ms)s, false),"
        " pg_catalog.set_config('lock_timeout', %(ms)s, false),"
        " pg_catalog.set_config('idle_in_transaction_session_timeout', %(ms)s, false)",
        {"ms": ms},
    )
    return int(ms)


def set_timeouts(conn: Any, ctx: RunContext) -> int:
    """``statement_timeout`` and ``lock_timeout`` for this transaction: the time left."""
    ms = max(1, int(ctx.remaining() * 1000))
    conn.execute(
        "SELECT pg_catalog.set_config('statement_timeout', %(ms)s, true),"
        " pg_catalog.set_config('lock_timeout', %(ms)s, true)",
        {"ms": str(ms)},
    )
    return ms


def capped(body: str) -> str:
    """``body`` (one SELECT, VALUES or TABLE) wrapped so that the server refuses to send
    a row whose text is over :data:`MAX_RESULT`: one more column, last, that is NULL or
    an error (a cast of our marker text, which PostgreSQL reports with the text). It is
    evaluated as the row is produced, before it is sent.

    ``(playbook_row.*)`` is the whole row even when the statement has a column of that
    name; the error's operand depends on the row, so it cannot be folded to an error
    when the query is planned; the new lines end a trailing ``--`` comment. The body is
    the statement as the parser delimited it, so the parentheses hold exactly it.
    """
    row = "(playbook_row.*)::pg_catalog.text"
    return (
        f"SELECT playbook_row.*, CASE WHEN pg_catalog.octet_length({row})"
        f" OPERATOR(pg_catalog.>) {MAX_RESULT}"
        f" THEN ('{ROW_TOO_LARGE}' OPERATOR(pg_catalog.||) pg_catalog.left({row}, 0))"
        "::pg_catalog.int4 END AS playbook_cap"
        f" FROM (\n{body}\n) AS playbook_row"
    )


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
    if isinstance(exc, e.InvalidTextRepresentation) and ROW_TOO_LARGE in str(exc):
        return ResultTooLarge(
            f"PostgreSQL did not send a row larger than {MAX_RESULT // 2**20} MB (as text); "
            "the run stopped there.",
            "The result is partial. Select fewer or shorter columns (left(col, 1000), "
            "length(col)).",
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


class ResultTooLarge(RunError):
    """A row, or the evidence, passed :data:`MAX_RESULT`; the run stopped there."""


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["(no message)"])[0][:300]


# --------------------------------------------------------------------------- the adapter


class PostgresAdapter(Adapter):
    """Reads PostgreSQL with psycopg 3: one statement PostgreSQL's parser calls a read,
    sent on the extended protocol, in a read-only session, after the server has said
    what it would call."""

    kind = "postgres"
    description = "PostgreSQL (psycopg 3): one read-only SQL statement, parameters bound"
    diagnostic_model = PostgresDiagnostic
    action_model = PostgresAction

    def check(self, request: RunRequest) -> None:
        self._checked(request)
        TargetOptions.of(request.options)

    def _checked(self, request: RunRequest) -> Statement:
        sql = request.query.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            raise Refused("Refused: a postgres diagnostic needs its SQL (query.sql).")
        statement = check_sql(sql)
        params = dict(request.options.get("params") or {})
        missing = sorted(statement.names - set(params))
        if missing:
            raise Refused(
                f"Refused: the SQL uses {', '.join(missing)}, which the diagnostic does "
                "not declare as parameters.",
                "Declare each %(name)s under the diagnostic's params.",
            )
        return statement

    def run(self, request: RunRequest, ctx: RunContext, sink: Sink) -> dict[str, Any]:
        import psycopg

        statement = self._checked(request)
        target = TargetOptions.of(request.options)
        given = request.options.get("params") or {}
        # In $n order: the raw cursors send the text as the parser read it, untouched.
        params = [_bound(given[name]) for name in statement.order] if statement.order else None
        conn = connect(request.uri, ctx, APPLICATION_NAME, autocommit=True)
        interrupt = Interrupt(conn)
        ctx.on_stop(interrupt)
        declared = None
        try:
            session_limits(conn, ctx)  # first: nothing else runs before it is read only
            conn.autocommit = False
            conn.read_only = True  # psycopg begins with BEGIN READ ONLY
            check_role(conn, target)
            ctx.check()
            check_calls(conn, statement.calls, target)
            ctx.check()
            sent = statement.sent or statement.text
            if statement.kind == "SELECT":
                # DECLARE … CURSOR FOR goes out as Parse/Bind/Execute: one statement.
                declared = psycopg.RawServerCursor(conn, CURSOR)
                declared.execute(capped(statement.body or sent), params)
                names = [c.name for c in declared.description or []][:-1]
                rows = self._fetched(conn, request.limit)
                return self._stream(rows, lambda: names, 1, ctx, sink)
            # SHOW and EXPLAIN cannot be a cursor's query: an unnamed prepared statement
            reader = psycopg.RawCursor(conn)
            rows = _at_most(reader.stream(sent, params), request.limit)
            described = lambda: [c.name for c in reader.description or []]  # noqa: E731
            return self._stream(rows, described, 0, ctx, sink)
        except psycopg.Error as exc:
            raise run_error(exc, ctx, request.uri, "the query") from None
        finally:
            with contextlib.suppress(Exception):
                if not conn.closed and not ctx.stopped:
                    conn.rollback()  # never commit: there is nothing to keep
            interrupt.close()
            if declared is not None:
                declared.close()  # the connection is closed: nothing more is sent

    @staticmethod
    def _fetched(conn: Any, limit: int) -> Iterator[tuple[Any, ...]]:
        """The cursor's rows, ``FETCH`` by ``FETCH``, each read in single-row mode: libpq
        holds one row at a time, never a whole batch (psycopg's own fetchmany would)."""
        import psycopg

        reader = psycopg.RawCursor(conn)
        left = limit
        while left > 0:
            want = min(FETCH, left)
            got = 0
            with contextlib.closing(reader.stream(f"FETCH FORWARD {want} FROM {CURSOR}")) as batch:
                for row in batch:
                    got += 1
                    yield row
            left -= got
            if got < want:
                return

    def _stream(
        self,
        rows: Iterator[tuple[Any, ...]],
        names: Callable[[], list[str]],
        extra: int,
        ctx: RunContext,
        sink: Sink,
    ) -> dict[str, Any]:
        """Rows into the sink, the last ``extra`` columns (ours) left out; ``names()``
        gives the column names once the first row is there. ``rows`` holds at most the
        run's limit and is read to its end, so no stream is left half read; past
        :data:`MAX_RESULT` of evidence, :class:`ResultTooLarge`."""
        columns: list[str] = []
        metrics: dict[str, Any] = {}
        count = 0
        written = 0
        with contextlib.closing(rows):  # on an error, a stream is cancelled here
            for values in rows:
                if count == 0:
                    columns = unique_names(names())  # as models.column_metrics names them
                row = dict(zip(columns, values[: len(values) - extra], strict=False))
                if count == 0:
                    metrics.update(first_row_numbers(row))
                ready = {k: json_ready(v) for k, v in row.items()}
                line = json.dumps(ready, ensure_ascii=False, separators=(",", ":"), default=str)
                written += len(line) + 1
                if written > MAX_RESULT:
                    raise ResultTooLarge(
                        f"The result passed {MAX_RESULT // 2**20} MB of evidence after "
                        f"{count} rows; the run stopped there.",
                        "The result is partial. Select fewer rows or shorter columns.",
                    )
                sink.add_line(line, ready)
                count += 1
                if count % FETCH == 0:
                    ctx.check()
                    ctx.progress(count, None, "rows read")
        ctx.check()
        metrics["rows"] = count
        return metrics


def _at_most(rows: Iterator[Any], limit: int) -> Iterator[Any]:
    """The first ``limit`` rows; the rest are read and dropped (a SHOW or an EXPLAIN:
    a few rows), so that the stream ends as the server ended it."""
    for n, row in enumerate(rows):
        if n < limit:
            yield row
