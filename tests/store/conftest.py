"""The stores under test: memory, SQLite, and a real PostgreSQL started for the session.

The PostgreSQL database belongs to an ordinary role (``team``: no superuser), as a team's
would; its schema is made by :func:`playbook.store.postgres.init`, as ``playbook store
init`` does. Each test starts from empty tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pgserver import PostgresServer, postgres_server
from servers import PASSWORD

from playbook.store.memory import MemoryStore
from playbook.store.postgres import PostgresStore, init
from playbook.store.sqlite import SQLiteStore


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg_team(pg: PostgresServer) -> str:
    """The URL of the team's database, its schema set up."""
    url = pg.add_owner("team", PASSWORD, "team")  # the marker: never shown
    assert init(url) == [1, 2]
    return url


@pytest.fixture
def pg_url(pg: PostgresServer, pg_team: str) -> str:
    """The team's database, emptied for this test (the server may have been stopped by
    the previous one: it is started again)."""
    if pg.proc is None or pg.proc.poll() is not None:
        pg.proc = None
        pg.start()
    with pg.connect(pg_team) as conn:
        conn.execute("TRUNCATE playbook.events, playbook.presence")
    return pg_team


StoreMaker = Callable[[], object]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(
    store_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[StoreMaker]:
    """Opens stores on one log: another process's view of it (a new connection), except
    for the memory store, which only one process can see (the same object)."""
    opened: list = []
    memory = MemoryStore()
    url = request.getfixturevalue("pg_url") if store_kind == "postgres" else ""

    def make():
        if store_kind == "memory":
            return memory
        made = SQLiteStore(tmp_path / "s") if store_kind == "sqlite" else PostgresStore(url)
        opened.append(made)
        return made

    yield make
    for made in opened:
        made.close()


@pytest.fixture
def store(make_store: StoreMaker):
    return make_store()
