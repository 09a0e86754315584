"""A secret in the shapes it takes on the wire and back: HTTP Basic's base64, percent-
encoding by another language's rules, JSON and ``repr`` escapes; and a target whose
driver cannot parse it, whose parser's message quotes the password.

Each test looks where the secret would land (the CLI's output, the SQLite log's bytes,
the evidence files, both exports) and decodes what it finds there: every base64 run at
every offset, every percent escape, every backslash escape. The secret must not come back
out of any of them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote

import pytest
from conftest import Cli
from security_support import everything, write_playbook

from playbook import redaction

USER = "svc"
PASSWORD = "Zq81/LEAK#x y!(z)'é_q9"
"""Needs escaping in every scheme: / # space ! ( ) ' and a non-ASCII letter."""
PAIR = f"{USER}:{PASSWORD}"


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts as a new process would: knowing no secret yet."""
    redaction._forget_all()
    monkeypatch.setenv("HTTP_PW", PASSWORD)
    yield
    redaction._forget_all()


def _b64(data: str, urlsafe: bool = False) -> str:
    raw = data.encode()
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()


def _mixed_case(text: str) -> str:
    """Percent escapes alternately in upper and lower case."""
    count = iter(range(10_000))
    return re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower() if next(count) % 2 else m[0], text)


def echoes(header: str) -> dict[str, str]:
    """What a hostile endpoint sends back, given the Authorization header it received:
    each a form the secret takes when another program encodes it."""
    token = header.removeprefix("Basic ")
    password = base64.b64decode(token).decode().partition(":")[2] if token else ""
    return {
        "header": header,
        "bare": token,
        "unpadded": token.rstrip("="),
        "urlsafe": _b64(PAIR, urlsafe=True),
        "urlsafe_unpadded": _b64(PAIR, urlsafe=True).rstrip("="),
        "password_b64": _b64(password),  # a Kubernetes Secret's data field
        "inside_b64": _b64(json.dumps({"user": USER, "password": password, "n": 1})),
        "lower_hex": re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), quote(password, safe="")),
        "mixed_hex": _mixed_case(quote(password, safe="")),
        "javascript": quote(password, safe="!'()*~"),  # encodeURIComponent's safe set
        "form": quote_plus(password),
        "twice": quote(quote(password, safe=""), safe=""),
        "php_slash": password.replace("/", "\\/"),
        "u_escapes": "".join(f"\\u{ord(c):04x}" for c in password),
        "repr": repr(password),
    }


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"n": 1, **echoes(self.headers.get("Authorization", ""))}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def own_config(text: str) -> None:
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "playbook"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "playbook.toml").write_text(text)


# --------------------------------------------------------------------------- decoding


_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{6,}={0,2}")


def decoded_views(text: str) -> list[bytes]:
    """``text`` and everything hidden in it: each base64 run decoded at each of its four
    offsets in both alphabets, and the whole text with percent escapes undone (once and
    twice) and backslash escapes undone."""
    views = [text.encode("utf-8", "replace")]
    for match in _BASE64_RUN.finditer(text):
        run = match.group(0).rstrip("=")
        for start in range(4):
            chunk = run[start:]
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            for alphabet in (b"+/", b"-_"):
                with contextlib.suppress(binascii.Error, ValueError):
                    views.append(base64.b64decode(chunk.encode(), altchars=alphabet))
    once = unquote(text)
    unescaped = [text]
    for _level in range(2):  # a JSON file holding an escaped string escapes it again
        unescaped.append(
            re.sub(
                r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})|\\(.)",
                lambda m: chr(int(m[1] or m[2], 16)) if (m[1] or m[2]) else m[3],
                unescaped[-1],
            )
        )
    views += [v.encode("utf-8", "replace") for v in (once, unquote(once), *unescaped[1:])]
    return views


def reveals(text: str, secret: str) -> list[str]:
    """Which pieces of ``secret`` (any 6 bytes in a row) can be read back out of ``text``."""
    raw = secret.encode()
    pieces = {raw[i : i + 6] for i in range(len(raw) - 5)}
    found = set()
    for view in decoded_views(text):
        found |= {p.decode("utf-8", "replace") for p in pieces if p in view}
    return sorted(found)


def test_the_decoder_finds_each_echoed_form() -> None:
    """The check below cannot pass by not looking: each form, unmasked, is found."""
    header = "Basic " + _b64(PAIR)
    for name, form in echoes(header).items():
        assert reveals(json.dumps({name: form}), PASSWORD), name


# --------------------------------------------------------------------------- break 3


def test_an_echoed_authorization_header_and_every_encoding_land_masked(
    cli: Cli, tmp_path: Path, echo_port: int
) -> None:
    """An http target's Basic credentials, echoed back in 15 encodings, reach neither
    the screen, the log, the evidence nor an export."""
    own_config(f'[targets]\napi = "http://{USER}:${{HTTP_PW}}@127.0.0.1:{echo_port}"\n')
    picks = ", ".join(f"{name}: {name}" for name in echoes(""))
    extra = f"""\
  echo-all:
    kind: http
    title: Echo
    target: api
    timeout: 10s
    query: {{path: /x, pick: {{{picks}}}}}
"""
    playbook = write_playbook(tmp_path / "rb")
    text = playbook.read_text().replace("\ndiagnostics:\n", "\ndiagnostics:\n" + extra, 1)
    playbook.write_text(text)
    opened = cli("open", str(playbook), "-t", "x", "--json")
    incident = json.loads(opened.output)["id"]
    ran = cli("diag", "run", incident, "echo-all", "--json")
    assert ran.exit_code == 0, ran.output
    row = json.loads(ran.stdout)["rows"][0]
    assert set(echoes("")) <= set(row)  # every form was picked and recorded…
    outputs = [ran.output]
    for fmt in ("json", "markdown"):
        exported = cli("export", incident, "--format", fmt)
        assert exported.exit_code == 0, exported.output
        outputs.append(exported.output)
    seen = everything(cli.home, *outputs)
    assert "echo-all" in seen
    assert reveals(seen, PASSWORD) == []  # …and not one piece of the password in any


def test_the_basic_header_the_adapter_sends_is_what_is_hunted() -> None:
    """One source for the header and its redaction: what goes out is masked coming back."""
    from playbook.adapters.http.reader import _basic

    uri = "http://svc:" + quote(PASSWORD, safe="") + "@h/"
    redaction.remember_uri(uri)
    sent = _basic(redaction.basic_credentials(uri) or "")
    assert base64.b64decode(sent).decode() == PAIR
    assert redaction.scrub(f"echo: Basic {sent} / {sent.rstrip('=')}") == "echo: Basic *** / ***"


# --------------------------------------------------------------------------- break 4


UNPARSABLE = {
    # name: (target as written in the responder's config, env, diagnostic, driver)
    "libpq-bare-percent": ("postgresql://u:50%offLEAKpg@127.0.0.1:9/db", {}, "pg-one", "libpq"),
    "libpq-nul": ("postgresql://u:LEAK%00pw@127.0.0.1:9/db", {}, "pg-one", "libpq"),
    "libpq-whole-env": (
        "${DATABASE_URL}",
        {"DATABASE_URL": "postgresql://reader:50%offLEAKpg@127.0.0.1:9/reports"},
        "pg-one",
        "libpq",
    ),
    "libpq-slash-reads-as-port": (
        "postgresql://u:LEAKa/LEAKb@127.0.0.1:9/db",
        {},
        "pg-one",
        "libpq",
    ),
    "libpq-second-at": ("postgresql://u:LEAKa@LEAKb@127.0.0.1:9/db", {}, "pg-one", "libpq"),
    "redis-hash": ("redis://:LEAKa#LEAKb@127.0.0.1:9/0", {}, "redis-size", "redis-py"),
    "redis-slash": ("redis://:LEAKa/LEAKb@127.0.0.1:9/0", {}, "redis-size", "redis-py"),
    "redis-question": ("redis://:LEAKa?LEAKb@127.0.0.1:9/0", {}, "redis-size", "redis-py"),
    "mongo-slash": ("mongodb://u:LEAKa/LEAKb@127.0.0.1:9/app", {}, "mongo-count", "pymongo"),
    "http-hash": ("http://u:LEAKa#LEAKb@127.0.0.1:9/", {}, "api-status", "urllib"),
}


@pytest.mark.parametrize("case", sorted(UNPARSABLE))
def test_a_target_its_driver_cannot_parse_is_refused_without_quoting_it(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    uri, env, diagnostic, driver = UNPARSABLE[case]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    target = {"pg-one": "db", "redis-size": "cache", "mongo-count": "docs"}.get(diagnostic, "api")
    own_config(f"[targets]\n{target} = {json.dumps(uri)}\n")
    incident = json.loads(
        cli("open", str(write_playbook(tmp_path / "rb")), "-t", "x", "--json").output
    )["id"]
    ran = cli("diag", "run", incident, diagnostic)
    assert ran.exit_code == 2, ran.output
    assert f"could not be parsed by {driver}" in ran.output
    outputs = [ran.output]
    for fmt in ("json", "markdown"):
        outputs.append(cli("export", incident, "--format", fmt).output)
    seen = everything(cli.home, *outputs)
    assert "LEAK" not in seen


def drivers_message(uri: str) -> str:
    """What the driver itself says about ``uri``, parsing it as the adapter would (libpq
    checks a port's digits before it looks up any host)."""
    try:
        if uri.startswith("postgresql"):
            import psycopg

            psycopg.connect(uri, connect_timeout=2).close()
        elif uri.startswith("redis"):
            from redis.connection import parse_url

            parse_url(uri)
        elif uri.startswith("mongodb"):
            from pymongo import uri_parser

            uri_parser.parse_uri(uri)
        else:
            from urllib.parse import urlsplit

            _ = urlsplit(uri).port
    except Exception as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize("case", sorted(UNPARSABLE))
def test_a_drivers_message_that_quotes_an_unreadable_target_is_masked(case: str) -> None:
    """The net under the refusal: had the driver's own message about the URI been shown
    anyway, the piece of the password it quotes is masked."""
    from playbook.errors import PlaybookError

    uri, env, _diagnostic, _driver = UNPARSABLE[case]
    uri = env.get("DATABASE_URL", uri)
    redaction.remember_uri(uri)
    said = drivers_message(uri)
    assert said  # the driver does refuse it
    assert "LEAK" not in PlaybookError(f"The driver said: {said}").title
    assert "LEAK" not in redaction.redact(uri)


def test_a_token_given_as_the_user_is_masked_in_every_form(
    cli: Cli, tmp_path: Path, echo_port: int
) -> None:
    """``https://TOKEN@host``: Basic auth with the token as the user and no password (as
    many APIs take it). The token is the whole credential, written literally in the
    responder's config."""
    token = "sk_live_Zq81TOKENq9x"
    own_config(f'[targets]\napi = "http://{token}@127.0.0.1:{echo_port}"\n')
    extra = """\
  echo-header:
    kind: http
    title: Echo
    target: api
    timeout: 10s
    query: {path: /x, pick: {header: header, bare: bare, unpadded: unpadded}}
"""
    playbook = write_playbook(tmp_path / "rb")
    text = playbook.read_text().replace("\ndiagnostics:\n", "\ndiagnostics:\n" + extra, 1)
    playbook.write_text(text)
    incident = json.loads(cli("open", str(playbook), "-t", "x", "--json").output)["id"]
    ran = cli("diag", "run", incident, "echo-header", "--json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["rows"][0]["header"].startswith("Basic ")
    exported = [cli("export", incident, "--format", f).output for f in ("json", "markdown")]
    seen = everything(cli.home, ran.output, *exported)
    assert reveals(seen, token) == []
