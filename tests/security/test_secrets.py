"""Secrets, in every form a target can hold them, grepped for in every output.

The secret is built so that any piece of it is found: every fragment between the
characters that break URIs (``/ # @ : ?``, a space, ``%``) holds ``LEAK``. Each form is
run against a working server, an unreachable one and one that refuses the login, and
``LEAK`` is looked for in the CLI's output (plain and ``--json``), the SQLite log's bytes,
the evidence files, both exports, the timeline and ``show``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import mongomock
import pytest
from conftest import Cli
from helpers import ROOT
from pgserver import PostgresServer, postgres_server
from security_support import everything, write_playbook
from servers import RedisServer, free_port, redis_server

from playbook import redaction
from playbook.adapters.base import Sink
from playbook.adapters.mongo.reader import MongoAdapter
from playbook.errors import PlaybookError
from playbook.targets import expand, redact

NASTY = "LEAKa/LEAKb#LEAKc@LEAKd:LEAKe?LEAKf LEAKg%41LEAKh"
"""A password holding / # @ : ? a space and a % that could be read as an escape."""
MARK = "LEAK"


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts as a new process would: knowing no secret yet."""
    redaction._forget_all()
    monkeypatch.setenv("NASTY_PW", NASTY)
    yield
    redaction._forget_all()


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    from psycopg import sql

    with postgres_server() as server, server.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE reader LOGIN PASSWORD {}").format(sql.Literal(NASTY)))
        yield server


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server, contextlib.closing(server.client()) as admin:
        admin.execute_command("ACL", "SETUSER", "leaky", "on", f">{NASTY}", "~*", "+@all")
        admin.execute_command("ACL", "SETUSER", "default", f">{NASTY}")  # a second password
        yield server


class _Api(BaseHTTPRequestHandler):
    """An endpoint that wants ops:NASTY (or ?token=NASTY) and, when refused, echoes the
    credentials it was sent back in its error page, as a hostile server would."""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        token = parse_qs(parts.query).get("token", [""])[0]
        auth = self.headers.get("Authorization", "")
        sent = base64.b64decode(auth.removeprefix("Basic ")).decode() if auth else ""
        if sent == f"ops:{NASTY}" or token == NASTY:
            body = {"count": 3}
            if parts.path == "/echo":
                body["echo"] = f"you are ops, password {NASTY}"
            self._send(200, json.dumps(body).encode(), "application/json")
        else:
            self._send(401, f"denied {sent!r} for {self.path}".encode(), "text/plain")

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def api() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def mongo_standin(monkeypatch: pytest.MonkeyPatch) -> None:
    """MongoDB cannot be started here: a login that works is played by mongomock."""
    client: Any = mongomock.MongoClient()
    client.app.users.insert_many([{"_id": 1}, {"_id": 2}])
    monkeypatch.setattr(MongoAdapter, "client_factory", staticmethod(lambda _u, _c: client))


# --------------------------------------------------------------------------- the forms


@dataclass(frozen=True)
class Form:
    """One way of writing a secret into a target: ``{port}`` and ``{user}`` are filled
    in per situation; ``given`` is "config" (the responder's playbook.toml) or "flag"."""

    target: str
    diagnostic: str
    template: str
    given: str = "config"


FORMS = {
    "pg-uri-userinfo": Form(
        "db", "pg-one", "postgresql://{user}:${{NASTY_PW}}@127.0.0.1:{port}/postgres"
    ),
    "pg-keyvalue-env": Form(
        "db",
        "pg-one",
        "host=127.0.0.1 port={port} user={user} password=${{NASTY_PW}} dbname=postgres",
    ),
    "pg-keyvalue-literal": Form(
        "db",
        "pg-one",
        f"host=127.0.0.1 port={{port}} user={{user}} password='{NASTY}' dbname=postgres",
    ),
    "pg-query-password": Form(
        "db", "pg-one", "postgresql://{user}@127.0.0.1:{port}/postgres?password=${{NASTY_PW}}"
    ),
    "pg-query-sslpassword": Form(
        "db",
        "pg-one",
        "postgresql://{user}:${{NASTY_PW}}@127.0.0.1:{port}/postgres"
        "?sslmode=disable&sslpassword=${{NASTY_PW}}",
    ),
    "pg-flag-percent-encoded": Form(
        "db",
        "pg-one",
        f"postgresql://{{user}}:{quote(NASTY, safe='')}@127.0.0.1:{{port}}/postgres",
        "flag",
    ),
    "redis-default-user": Form("cache", "redis-size", "redis://:${{NASTY_PW}}@127.0.0.1:{port}/0"),
    "redis-acl-user": Form(
        "cache", "redis-size", "redis://{user}:${{NASTY_PW}}@127.0.0.1:{port}/0"
    ),
    "redis-flag-percent-encoded": Form(
        "cache",
        "redis-size",
        f"redis://{{user}}:{quote(NASTY, safe='')}@127.0.0.1:{{port}}/0",
        "flag",
    ),
    "mongo-userinfo": Form(
        "docs",
        "mongo-count",
        "mongodb://{user}:${{NASTY_PW}}@127.0.0.1:{port}/app?authSource=admin",
    ),
    "http-userinfo": Form("api", "api-status", "http://{user}:${{NASTY_PW}}@127.0.0.1:{port}"),
    "http-token": Form("api", "api-status", "http://127.0.0.1:{port}/?token=${{NASTY_PW}}"),
    "http-echoed-back": Form("api", "api-echo", "http://{user}:${{NASTY_PW}}@127.0.0.1:{port}"),
}
USERS = {"db": ("reader", "ghost"), "cache": ("leaky", "ghost"), "api": ("ops", "ghost")}
NEEDS_A_REAL_MONGODB = ("mongo-userinfo", "refused")
CASES = [
    (form, situation)
    for form in FORMS
    for situation in ("works", "unreachable", "refused")
    if (form, situation) != NEEDS_A_REAL_MONGODB
]


def own_config(text: str) -> None:
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "playbook"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "playbook.toml").write_text(text)


@pytest.mark.parametrize(("form", "situation"), CASES)
def test_no_form_of_the_secret_appears_in_any_output(
    request: pytest.FixtureRequest, cli: Cli, tmp_path: Path, form: str, situation: str
) -> None:
    spec = FORMS[form]
    ports = {"db": "pg", "cache": "redis", "api": "api"}
    if situation == "unreachable":
        port = free_port()
    elif spec.target == "docs":
        request.getfixturevalue("mongo_standin")
        port = 27017
    else:
        server = request.getfixturevalue(ports[spec.target])
        port = server if isinstance(server, int) else server.port
    good, bad = USERS.get(spec.target, ("app", "app"))
    uri = spec.template.format(port=port, user=bad if situation == "refused" else good)
    if situation == "refused" and "{user}" not in spec.template:
        uri = uri.replace("${NASTY_PW}", "${NASTY_PW}x")  # a secret the server does not know
    flags: list[str] = []
    if spec.given == "flag":
        flags = ["--target", f"{spec.target}={uri}"]
    else:
        own_config(f"[targets]\n{spec.target} = {json.dumps(uri)}\n")  # a TOML basic string
    incident = json.loads(
        cli("open", str(write_playbook(tmp_path / "rb")), "-t", "x", "--json").output
    )["id"]

    plain = cli("diag", "run", incident, spec.diagnostic, *flags)
    as_json = cli("diag", "run", incident, spec.diagnostic, *flags, "--json")
    expected = 0 if situation == "works" else 8
    assert plain.exit_code == expected, plain.output
    assert as_json.exit_code == expected, as_json.output
    verdict = json.loads(as_json.stdout)["verdict"] if as_json.stdout.strip() else None
    assert verdict == ("pass" if situation == "works" else "error")

    outputs = [plain.output, as_json.output]
    for args in (
        ("export", incident, "--format", "markdown"),
        ("export", incident, "--format", "json"),
        ("timeline", incident),
        ("show", incident),
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    seen = everything(cli.home, *outputs)
    assert "diagnostic_run" in seen  # the runs were recorded: there was something to grep
    assert MARK not in seen  # nor any fragment, raw or encoded: each one holds the mark


def test_a_real_process_from_an_empty_start_leaks_nothing_on_a_refused_login(
    pg: PostgresServer, tmp_path: Path
) -> None:
    """The CLI as a responder runs it: a fresh process, stdout and stderr apart."""
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "playbook"
    config.mkdir(parents=True, exist_ok=True)
    (config / "playbook.toml").write_text(
        f"[targets]\ndb = 'host=127.0.0.1 port={pg.port} user=ghost password=${{NASTY_PW}}'\n"
    )
    home = tmp_path / "home"
    env = {**os.environ, "PLAYBOOK_HOME": str(home), "NASTY_PW": NASTY}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "playbook", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=ROOT,
            check=False,
        )

    opened = run("open", str(write_playbook(tmp_path / "rb")), "-t", "x", "--json")
    incident = json.loads(opened.stdout)["id"]
    done = run("diag", "run", incident, "pg-one")
    assert done.returncode == 8
    assert "ghost" in done.stdout + done.stderr  # the refusal is explained…
    exported = run("export", incident, "--format", "json")
    seen = everything(home, done.stdout, done.stderr, exported.stdout, exported.stderr)
    assert MARK not in seen  # …without the password


# --------------------------------------------------------------------------- redact()


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("postgresql://u:pw-x1@h:5432/db", "postgresql://u:***@h:5432/db"),
        (
            "postgresql://u@h/db?password=pw-x1&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),
        ("postgresql://u:a@h/db?sslpassword=pw-x1", "postgresql://u:***@h/db?sslpassword=***"),
        ("postgresql://u:pw-x1@h1:5432,h2:5433/db", "postgresql://u:***@h1:5432,h2:5433/db"),
        # rebuilt by libpq's own quoting, in libpq's order
        ("host=db user=u password=pw-x1 dbname=app", "user=u password=*** dbname=app host=db"),
        ("host=db password='it''s a pw-x1' user=u", "***"),  # libpq cannot read it: nothing shown
        ("host=db password='pw x1\\'q' sslpassword=pw-x2", "password=*** host=db sslpassword=***"),
        ("redis://:pw-x1@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:pw-x1@h:6379/0?password=pw-x2", "redis://user:***@h:6379/0?password=***"),
        ("redis://h:6379/0?password=pw-x1", "redis://h:6379/0?password=***"),
        (
            "mongodb://u:pw-x1@h1,h2/app?authSource=admin",
            "mongodb://u:***@h1,h2/app?authSource=admin",
        ),
        ("mongodb+srv://u:pw-x1@cluster.example/app", "mongodb+srv://u:***@cluster.example/app"),
        (
            "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:pw-x1",
            "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=***",
        ),
        (
            "https://u:pw-x1@api.example/x?token=pw-x2&v=1",
            "https://u:***@api.example/x?token=***&v=***",
        ),
        ("https://api.example/hook#access_token=pw-x1", "https://api.example/hook#***"),
        ("redis://:pa#ss@h:6379/0", "***"),  # a literal # the driver cannot read
        ("mongodb://u:p@ss@h/", "***"),  # pymongo refuses an unescaped @
        ("not a connection string", "***"),
    ],
)
def test_redact_masks_what_the_drivers_parser_calls_secret(uri: str, shown: str) -> None:
    assert redact(uri) == shown
    assert "pw-x" not in redact(uri)


DELIMITED = [
    "LEAKpart#tail99",
    "LEAKpart?tail99",
    "LEAKpart/tail99",
    "LEAKpart@tail99",
    "LEAKpart#tail99?quer/slash@atsign",
]
"""Passwords holding what URI syntax splits at; libpq reads each whole."""


def _delimited_forms(secret: str) -> list[str]:
    raw = quote(secret, safe="#?")  # libpq takes # and ? in the userinfo as they are
    return [
        f"postgresql://u:{raw}@db.internal:5432/app",
        f"postgresql://u:{raw}@db.internal:5432/app?sslmode=require",
        f"postgresql://u:{quote(secret, safe='')}@db.internal/app",
        f"postgresql://u@db.internal/app?password={quote(secret, safe='')}",
        f"host=db.internal user=u password='{secret}' dbname=app",
    ]


@pytest.mark.parametrize("secret", DELIMITED)
def test_a_password_holding_uri_delimiters_is_masked_whole_as_libpq_reads_it(
    secret: str,
) -> None:
    from psycopg.conninfo import conninfo_to_dict

    pieces = {secret, quote(secret, safe=""), "LEAKpart", "tail99", "quer", "slash", "atsign"}
    for uri in _delimited_forms(secret):
        assert conninfo_to_dict(uri)["password"] == secret, uri  # the authority's reading
        shown = redact(uri)
        assert "db.internal" in shown and "***" in shown, shown
        assert not [p for p in pieces if p in shown], (uri, shown)
        quoted = f"connect {uri} failed; password {secret!r} ({quote(secret, safe='')}) refused"
        scrubbed = redaction.scrub(quoted, uri)
        assert not [p for p in pieces if p in scrubbed], (uri, scrubbed)


def test_a_password_equal_to_another_part_is_masked_there_too() -> None:
    assert "hunter22" not in redact("postgresql://hunter22:hunter22@db/hunter22")


def test_libpq_says_which_keywords_are_secret() -> None:
    assert {"password", "sslpassword"} <= redaction.libpq_secret_keys()
    assert "host" not in redaction.libpq_secret_keys()


# --------------------------------------------------------------------------- ${ENV}


@pytest.mark.parametrize(
    ("template", "driver"),
    [
        ("postgresql://u:${P}@h:5432/db", "postgres"),
        ("postgresql://u@h/db?password=${P}", "postgres"),
        ("host=h user=u password=${P}", "postgres"),
        ("host=h user=u password='${P}'", "postgres"),
        ("redis://:${P}@h:6379/0", "redis"),
        ("mongodb://u:${P}@h/app", "mongo"),
    ],
)
@pytest.mark.parametrize(
    "value",
    [NASTY, "a/b", "a#b", "a@b:c", "?x=1&y=2", 'it\'s \\ "quoted"', "100%", "%41%42", " spaced "],
)
def test_an_env_value_reaches_the_driver_whole_whatever_it_holds(
    template: str, driver: str, value: str
) -> None:
    uri = expand(template, {"P": value}, "test")
    if driver == "postgres":
        from psycopg.conninfo import conninfo_to_dict

        assert conninfo_to_dict(uri)["password"] == value
    elif driver == "redis":
        from redis.connection import parse_url

        assert parse_url(uri)["password"] == value
    else:
        from pymongo import uri_parser

        assert uri_parser.parse_uri(uri)["password"] == value
    assert value.strip() not in redact(uri) or len(value.strip()) < 3


@pytest.mark.parametrize("value", ["evil.example/x", "evil.example?x", "evil@example", "h#x"])
def test_an_env_value_that_would_move_the_host_is_refused_unshown(value: str) -> None:
    with pytest.raises(PlaybookError) as caught:
        expand("postgresql://u:pw@${HOST}:5432/db", {"HOST": value}, "targets.db")
    assert value not in str(caught.value) and "targets.db" in caught.value.title


def test_a_whole_url_in_one_variable_is_used_as_it_is() -> None:
    value = "postgresql://u:pw-long-1@db/app"
    assert expand("${DATABASE_URL}", {"DATABASE_URL": value}, "t") == value
    assert "pw-long-1" not in PlaybookError(f"could not connect to {value}").title


# --------------------------------------------------------------------------- by value


def test_every_expanded_value_is_masked_in_errors_rows_and_events(tmp_path: Path) -> None:
    expand("redis://:${P}@h:6379/0", {"P": NASTY}, "t")
    error = PlaybookError(f"server said: {NASTY!r} / {quote(NASTY, safe='')}")
    assert MARK not in str(error)
    sink = Sink(tmp_path / "rows.jsonl", redact=True)  # as evidence is written
    sink.add({"echo": NASTY, NASTY: 1})
    sink.add_line(json.dumps({"quoted": NASTY}, ensure_ascii=True))
    sink.add_bytes(json.dumps({"raw": NASTY}).encode())
    sink.add_block(b"\n".join(json.dumps({"n": i, "s": NASTY}).encode() for i in range(3)), 3)
    sink.close()
    written = (tmp_path / "rows.jsonl").read_text()
    assert MARK not in written and MARK not in json.dumps(sink.rows)
    first = written.splitlines()[0]
    assert json.loads(first) == {"echo": "***", "***": 1}


def test_short_and_numeric_values_are_not_hunted_in_free_text() -> None:
    expand("postgresql://u:${P}@${H}:${PORT}/db", {"P": "pw", "H": "db", "PORT": "5432"}, "t")
    assert PlaybookError("rows: 5432, host db, pw").title == "rows: 5432, host db, pw"


def test_the_playbooks_own_snapshot_keeps_a_name_that_is_also_an_env_value(
    service: Any, tmp_path: Path
) -> None:
    from playbook.adapters.plugins import load_playbook as load

    expand("postgresql://${U}:pw@db/app", {"U": "reports_reader"}, "t")
    playbook = write_playbook(tmp_path / "rb")
    playbook.write_text(
        playbook.read_text().replace(
            "SELECT 1 AS one", "SELECT 1 AS one WHERE 'reports_reader' <> ''"
        )
    )
    state = service.open(load(playbook), "reports_reader cannot log in")
    assert state.title == "*** cannot log in"  # what the responder typed is scrubbed
    sql = service.playbook_of(state).diagnostics["pg-one"].query.sql
    assert "'reports_reader'" in sql  # what the diagnostics run from is the file, as it was


def test_a_backup_keeps_a_value_that_equals_a_secret_so_rollback_restores_it(
    tmp_path: Path,
) -> None:
    expand("postgresql://${U}:pw@db/app", {"U": "reports_reader"}, "t")
    backup = Sink(tmp_path / "backup.jsonl", keep=0)  # as guarded actions write backups
    backup.add({"staff_username": "reports_reader"})
    backup.close()
    assert json.loads((tmp_path / "backup.jsonl").read_text()) == {
        "staff_username": "reports_reader"
    }


def test_a_local_shell_target_holds_no_secret_so_its_name_stays_readable() -> None:
    # `local:` is neither a URI nor libpq's key=value: nothing in it can be a password,
    # and hunting for the whole string masked every message that said "local:".
    redaction.remember_uri("local:")
    assert redaction.scrub("shell target local: runs here") == "shell target local: runs here"
