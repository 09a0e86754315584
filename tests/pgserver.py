"""The tests' PostgreSQL: :class:`playbook.drill.servers.PostgresServer` with the marker password.

The password is :data:`servers.PASSWORD`, which the secret-leak tests grep every output
for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from servers import PASSWORD

from playbook.drill import servers as sandbox
from playbook.drill.servers import postgres_bindir

__all__ = ["PostgresServer", "postgres_bindir", "postgres_server"]


class PostgresServer(sandbox.PostgresServer):
    def __init__(self, password: str = PASSWORD) -> None:
        super().__init__(password)


@contextlib.contextmanager
def postgres_server(password: str = PASSWORD) -> Iterator[PostgresServer]:
    server = PostgresServer(password)
    try:
        yield server
    finally:
        server.stop()
