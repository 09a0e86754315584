"""A drill's sandbox: one service per target the drill names, in one folder.

A real ``redis-server`` and PostgreSQL from :mod:`playbook.drill.servers`, the MongoDB
stand-in of :mod:`playbook.adapters.mongo.standin`, a local HTTP stub. The folder and servers
are removed by :meth:`DrillSandbox.stop`, and by the guardian process if this one dies
first (Ctrl+C, a crash, a kill -9).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from playbook.drill import servers
from playbook.drill.stubs import HttpStub
from playbook.errors import ExitCode, PlaybookError
from playbook.targets import SANDBOX, Target

Say = Callable[[str], None]
SETUP_LOGIN = "drill"
"""The Redis ACL user and the PostgreSQL role a drill's set-up steps run as."""


class DrillError(PlaybookError):
    """A drill could not be set up (a service would not start, a step failed)."""

    exit_code = ExitCode.SANDBOX


class DrillSandbox:
    """One service per target the drill names, in one folder, gone with this process."""

    def __init__(self, services: Mapping[str, str], say: Say | None = None) -> None:
        started = time.monotonic()
        say = say or (lambda _line: None)
        self.folder = Path(tempfile.mkdtemp(prefix="playbook-drill-"))
        self.folder.chmod(0o755)  # PostgreSQL may run as another user below it
        self.guardian = servers.Guardian(self.folder)
        self.targets: dict[str, Target] = {}
        self.labels: dict[str, str] = {}
        self.kinds = dict(services)
        self._servers: dict[str, Any] = {}
        self._logins: dict[str, Any] = {}
        """The set-up login of each Redis (user, password) and PostgreSQL (URI) target."""
        try:
            for name, kind in services.items():
                say(f"starting {kind} for target {name}")
                self._start(name, kind)
        except BaseException:
            self.stop()
            raise
        self.seconds = time.monotonic() - started

    def _start(self, name: str, kind: str) -> None:
        import secrets

        if kind == "redis":
            try:
                server: Any = servers.RedisServer(secrets.token_hex(16), str(self.folder))
            except RuntimeError as exc:
                raise DrillError(f"Could not start redis-server for {name!r}.", str(exc)) from None
            self.guardian.watch(server.proc.pid)
            with contextlib.closing(server.client()) as client:
                version = client.info("server").get("redis_version", "?")
            self.labels[name] = f"redis-server {version} (sandbox, 127.0.0.1:{server.port})"
            login = (SETUP_LOGIN, secrets.token_hex(16))
            server.add_data_user(*login)
            self._logins[name] = login
        elif kind == "postgres":
            try:
                server = servers.PostgresServer(secrets.token_hex(16), str(self.folder))
            except RuntimeError as exc:
                raise DrillError(f"Could not start PostgreSQL for {name!r}.", str(exc)) from None
            self.guardian.watch(server.pid)
            with server.connect() as conn:
                row = conn.execute("SHOW server_version").fetchone()
            version = str(row[0]).split()[0] if row else "?"
            self.labels[name] = f"PostgreSQL {version} (sandbox, 127.0.0.1:{server.port})"
            # The drill's data, set-up steps and runbook all work as an ordinary role that
            # owns the drill's database; the superuser stays with the sandbox.
            self._logins[name] = server.add_owner(SETUP_LOGIN, secrets.token_hex(16), "drill")
        elif kind == "mongo":
            from playbook.adapters.mongo import standin

            server = standin.new_uri(name.replace("-", "_"))
            standin.client(server)  # fails now, with advice, if mongomock is missing
            self.labels[name] = standin.LABEL
        elif kind == "http":
            server = HttpStub()
            self.labels[name] = f"HTTP stub (sandbox, 127.0.0.1:{server.port})"
        elif kind == "local":
            from playbook.drill.localfs import LocalFolder

            try:
                server = LocalFolder(name)
            except RuntimeError as exc:
                raise DrillError(*exc.args) from None
            self.labels[name] = f"this machine, a tmpfs at {server.path} (sandbox)"
        else:  # the model allows no other kind
            raise DrillError(f"Unknown service kind {kind!r} for {name!r}.")
        self._servers[name] = server
        uri = server if isinstance(server, str) else server.uri
        if kind == "postgres":
            uri = self._logins[name]
        self.targets[name] = Target(name, uri, SANDBOX)

    @contextlib.contextmanager
    def handle(self, name: str, superuser: bool = False) -> Iterator[Any]:
        """What a step, a generator or a fingerprint works on: a redis-py client, a
        psycopg connection (autocommit), a mongomock database or the HTTP stub.

        A Redis client logs in as an ACL user that may run data commands only, and a
        PostgreSQL connection as an ordinary role that owns the drill's database: a
        drill's ``load`` and ``fault`` steps come from its runbook, which is not trusted,
        and the sandbox servers run as the responder on the responder's machine. The
        servers refuse ``CONFIG SET dir`` + ``SAVE``, ``COPY … TO PROGRAM`` and the like.
        ``superuser`` is for installed generators that declare ``needs_superuser``
        (never a runbook's own SQL): a PostgreSQL connection to the drill's database as
        the sandbox's superuser.
        """
        kind, server = self.kinds[name], self._servers[name]
        if kind == "redis":
            with contextlib.closing(server.client(*self._logins[name])) as client:
                yield client
        elif kind == "postgres":
            uri = self._logins[name]
            if superuser:  # an installed generator that needs it (drill/replication.py)
                uri = server.superuser_uri.rsplit("/", 1)[0] + "/drill"
            with server.connect(uri) as conn:
                yield conn
        elif kind == "mongo":
            from playbook.adapters.mongo import standin

            yield standin.client(server).get_default_database()
        elif kind == "local":
            yield server.path
        else:
            yield server

    def trust(self, name: str, functions: tuple[str, ...]) -> None:
        """Let the drill's target reach ``functions``, which installed set-up code made."""
        if functions:
            import dataclasses

            target = self.targets[name]
            self.targets[name] = dataclasses.replace(
                target, functions=(*target.functions, *functions)
            )

    def stop(self) -> None:
        """Stop every service and remove the folder (the guardian makes sure of it)."""
        for name, server in self._servers.items():
            with contextlib.suppress(Exception):
                if isinstance(server, str):
                    from playbook.adapters.mongo import standin

                    standin.forget(server)
                else:
                    server.stop()
            self.kinds.pop(name, None)
        self._servers.clear()
        self.guardian.close()
