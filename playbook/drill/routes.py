"""A drill's live HTTP answers: a stub route whose body depends on the sandbox when asked.

A fixed ``serve:`` body says the same thing for ever: the Prometheus stand-in of the
postgres-replication drill kept saying replica-2 was 412 s behind after the responder had
dropped its slot, so the verify and the scorecard said the repair had failed. An
``answer:`` route reads a drill service at each request instead, and picks its body by
what the read returns, as the real system would.

The drill file is not trusted, so its SQL gets exactly what a playbook's diagnostic gets:
:class:`~playbook.adapters.postgres.reader.PostgresAdapter` (PostgreSQL's parser, the
extended protocol, a read-only session and transaction, the role and catalog checks,
the deadline), as the drill's own login, with the target's options as the sandbox holds
them at that moment. A refusal or a failed read is answered with HTTP 500 and the
reader's message: the diagnostic asking sees an error, never the faulty or the healthy
body on a read that did not happen. Bodies are data: ``{$row: column}`` is replaced by a
value, structurally; no text is built from the rows and no template engine runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from playbook.core.model import LiveAnswer
from playbook.drill.stubs import Answer, Reply
from playbook.errors import PlaybookError
from playbook.targets import Target

ROW = "$row"
"""The key of a body's placeholder for a column of the first row: ``{$row: column}``."""
CONNECT_TIMEOUT = 5.0
"""Seconds a route's read may take to connect (never more than its own deadline)."""


class MissingColumn(ValueError):
    """A body names a column the SQL did not return."""


def live(path: str, spec: LiveAnswer, target: Callable[[], Target]) -> Answer:
    """The stub route for ``spec``; ``target`` gives the service's target at request
    time (the sandbox may widen what it trusts after a later set-up step)."""
    # Both bodies must be JSON before the drill starts, not at the first request.
    json.dumps(spec.rows)
    json.dumps(spec.no_rows)

    def answer() -> Reply:
        return ask(path, spec, target())

    return answer


def ask(path: str, spec: LiveAnswer, target: Target) -> Reply:
    """Read ``spec.sql`` on ``target`` now, with the diagnostics' reader, and reply."""
    # Imported here: the drill's other services need no PostgreSQL driver.
    from playbook.adapters.base import DeadlineExceeded, RunContext, RunRequest, Sink, scrub
    from playbook.adapters.postgres.reader import PostgresAdapter

    reader = PostgresAdapter()
    request = RunRequest(
        f"drill answer {path}",
        {"sql": spec.sql},
        target.uri,
        limit=1,  # whether a row exists, and the first one's columns: nothing more is read
        options={"params": {}, "target": target.options},
    )
    ctx = RunContext(float(spec.timeout), min(CONNECT_TIMEOUT, float(spec.timeout)))
    sink = Sink(None, keep=1)
    try:
        reader.check(request)
        reader.run(request, ctx, sink)
    except DeadlineExceeded as exc:  # its advice is a diagnostic's; this is the drill's
        return failed(path, f"{exc.title} Raise the answer's timeout, or read less.")
    except PlaybookError as exc:
        return failed(path, exc.title + (f" {exc.message}" if exc.message else ""))
    except Exception as exc:  # a driver's surprise: still an answer, its URI scrubbed
        return failed(path, scrub(f"{type(exc).__name__}: {exc}", target.uri))
    finally:
        ctx.finish()
    if sink.count == 0:
        return Reply(200, json.dumps(spec.no_rows).encode())
    try:
        body = filled(spec.rows, sink.rows[0])
    except MissingColumn as exc:
        return failed(path, str(exc))
    return Reply(200, json.dumps(body).encode())


def failed(path: str, message: str) -> Reply:
    """HTTP 500 saying why, in the status line and in a JSON body shaped like the
    Prometheus API's errors (``status``, ``errorType``, ``error``), which a plain HTTP
    client reads as well."""
    said = f"The drill's answer for {path} could not be read: {message}"
    body = {"status": "error", "errorType": "drill_answer", "error": said}
    return Reply(500, json.dumps(body).encode(), said)


def filled(body: Any, row: dict[str, Any]) -> Any:
    """``body`` with each ``{$row: column}`` replaced by that column of ``row``.

    Raises:
        MissingColumn: a placeholder names a column ``row`` does not have.
    """
    if isinstance(body, dict):
        if set(body) == {ROW} and isinstance(body[ROW], str):
            column = body[ROW]
            if column not in row:
                have = ", ".join(row) or "none"
                raise MissingColumn(
                    f"the body names column {column!r}, which the SQL does not return "
                    f"(it returns: {have})"
                )
            return row[column]
        return {key: filled(value, row) for key, value in body.items()}
    if isinstance(body, list):
        return [filled(value, row) for value in body]
    return body
