"""The run's deadline is wall-clock for the whole run, every host of a multi-host URI
included, and cancel ends a connect in progress.

libpq and psycopg give each host the whole ``connect_timeout``: a URI naming four silent
hosts took four times its deadline. The silent hosts are local listeners that accept
and never answer; each assertion compares the run's own elapsed time with its deadline.
"""

from __future__ import annotations

import threading
import time

import pytest
from servers import PASSWORD, SilentServer

from playbook.adapters.base import Cancelled, DeadlineExceeded, RunContext, RunRequest, Sink
from playbook.adapters.postgres.reader import PostgresAdapter

READER = "reader"


@pytest.mark.parametrize(
    ("timeout", "connect_timeout"),
    [
        (2.0, 2.0),  # libpq's least connect_timeout: the case that multiplied most
        (1.0, 1.0),  # below libpq's least: the watchdog, not libpq, ends it
        (6.0, 2.0),  # the connect deadline comes first
    ],
)
def test_silent_hosts_of_a_multi_host_uri_share_one_deadline(
    timeout: float, connect_timeout: float
) -> None:
    """libpq and psycopg give each host the whole connect_timeout: four silent hosts
    would take four times the run's deadline."""
    servers = [SilentServer() for _ in range(4)]
    try:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in servers)
        uri = f"postgresql://{READER}:{PASSWORD}@{hosts}/postgres"
        ctx = RunContext(timeout, connect_timeout)
        deadline = ctx.connect_timeout
        request = RunRequest("d", {"sql": "SELECT 1"}, uri, options={"target": {}})
        with pytest.raises(DeadlineExceeded) as caught:
            try:
                PostgresAdapter().run(request, ctx, Sink(None))
            finally:
                ctx.finish()
        elapsed = ctx.elapsed()
        assert elapsed < deadline * 1.5 + 0.5, f"{elapsed:.1f} s for a {deadline:g} s deadline"
        assert servers[0].spoken.is_set()
        assert PASSWORD not in f"{caught.value.title} {caught.value.message}"
    finally:
        for server in servers:
            server.close()


def test_cancel_ends_a_connect_in_progress() -> None:
    with SilentServer() as silent, SilentServer() as second:
        uri = f"postgresql://{READER}:{PASSWORD}@127.0.0.1:{silent.port},127.0.0.1:{second.port}/db"
        ctx = RunContext(60, 60)
        outcome: list[BaseException] = []

        def go() -> None:
            try:
                PostgresAdapter().run(RunRequest("d", {"sql": "SELECT 1"}, uri), ctx, Sink(None))
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=go)
        worker.start()
        assert silent.spoken.wait(10)  # the connect is under way, and blocked
        cancelled = time.monotonic()
        ctx.cancel()
        worker.join(10)
        ctx.finish()
        assert not worker.is_alive()
        assert (time.monotonic() - cancelled) < ctx.timeout * 0.05
        assert len(outcome) == 1 and isinstance(outcome[0], Cancelled)
        assert not second.spoken.is_set()  # no further host was tried after the cancel
