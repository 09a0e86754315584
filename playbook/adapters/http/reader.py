"""HTTP diagnostics: one GET of a JSON endpoint, a few numbers picked out of the answer.

Seed 002's bot restored from ``GET /get_discord_data_backup`` a backup whose
``timestamp`` was an hour older than the newest write. A diagnostic that picks
``timestamp`` gets it as seconds since the epoch and its age, and the playbook compares
those with what the responder knows.

What a responder can rely on:

* **Read only, same host.** Only ``http``/``https`` targets and only GET. The query's
  ``path`` is appended to the target's URL and may not name another host (a path
  starting with ``//``, holding a scheme, or turning the host into something else is
  refused before anything is sent). Redirects are followed at most
  :data:`MAX_REDIRECTS` times, and only within the target's scheme, host and port.
* **Bounded.** Connecting and the first answer are bounded by the connect timeout,
  the whole run by the deadline: the body is read in chunks with the deadline checked
  between them, and the socket is shut down by the run's watchdog, so a silent or
  trickling server ends the run on time and a cancel ends it at once. The body is
  capped at :data:`MAX_BODY` bytes.
* **Small, safe evidence.** The one row holds ``status``, ``bytes`` and the picked
  values, never the whole body (it may be huge or hold secrets). Credentials come from
  the URI's userinfo and are sent as Basic auth; they, and any token in the URI's query
  string, never appear in an error or a row.

``http.client`` and ``ssl`` are imported when a diagnostic runs (12 ms), not with this
module: the playbook model reads :class:`HttpAdapter` on every load.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urljoin, urlsplit

from playbook.adapters.base import Adapter, Refused, RunContext, RunError, RunRequest, Sink, scrub
from playbook.adapters.http.models import RESERVED, HttpDiagnostic
from playbook.adapters.http.numbers import declared_number
from playbook.redaction import basic_credentials, shortened
from playbook.redaction import scrub as scrub_text

if TYPE_CHECKING:
    import http.client

MAX_BODY = 16 * 1024 * 1024
"""Most bytes of an answer read; a bigger answer is an error, not a truncated parse."""
MAX_REDIRECTS = 3
"""Redirects followed (same scheme, host and port only)."""
CHUNK = 64 * 1024
"""Bytes asked of the socket at a time; the deadline is checked between chunks."""
SHOWN = 80
"""Characters of a non-JSON answer (or a picked string) quoted back, escaped."""

_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
_NON_ASCII = re.compile(r"[^\x21-\x7e]")
# ASCII digits only: in a str pattern \d is any Unicode digit, which int() then reads
# ("٣" is 3), so a path or a time spelt in other digits would mean something else.
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(?:$|[T ][0-9]{2}:[0-9]{2})")
_INDEX = re.compile(r"^-?[0-9]+\Z")
_SECRET_NAME = re.compile(r"(?i)pass|pwd|secret|token|key|auth|sig")


@dataclass(frozen=True)
class _Url:
    scheme: str
    host: str
    port: int
    target: str
    """What goes on the request line: path and query."""

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def _split(uri: str) -> Any:
    """``urlsplit`` of an http(s) URL with a host, or Refused (the URI is never echoed)."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise Refused("Refused: the target is not a valid URL.") from None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise Refused(
            "Refused: an http diagnostic needs an http:// or https:// target with a host.",
            "Set the target to the service's base URL, e.g. https://api.example.com.",
        )
    return parts


def _origin_of(parts: Any) -> tuple[str, str, int]:
    scheme = parts.scheme.lower()
    return (scheme, parts.hostname.lower(), parts.port or _DEFAULT_PORTS[scheme])


def _request_target(path: str, query: str) -> str:
    target = (path or "/") + (f"?{query}" if query else "")
    if not target.startswith("/"):
        target = "/" + target
    return _NON_ASCII.sub(lambda m: quote(m.group()), target)


def build_url(uri: str, path: str) -> _Url:
    """The URL a diagnostic GETs: the target's URL with ``path`` appended.

    ``path``'s own query string is joined to the target's with ``&``; a ``/`` that would
    be doubled where the two meet is dropped.

    Raises:
        Refused: the target is not http(s), or the path could change the host.
    """
    parts = _split(uri)
    if not isinstance(path, str):
        raise Refused("Refused: the path of an http diagnostic must be text.")
    if path.startswith("//") or _SCHEME.match(path) or "://" in path:
        raise Refused(
            "Refused: the path names a host of its own; an http diagnostic reads only its target.",
            "Write the path from the target's root, e.g. /get_discord_data_backup.",
        )
    if _UNSAFE.search(path):
        raise Refused("Refused: the path contains spaces or control characters.")
    try:  # appended as plain text, would the host change? (``@evil``, ``.evil``, ``:99``)
        naive = urlsplit(uri + path)
        same = _origin_of(naive) == _origin_of(parts) if naive.hostname else False
    except ValueError:
        same = False
    if not same:
        raise Refused(
            "Refused: the path would change the host; an http diagnostic reads only its target.",
            "Start the path with / or ?.",
        )
    rel = urlsplit(path)
    base_path, rel_path = parts.path, rel.path
    if base_path.endswith("/") and rel_path.startswith("/"):
        rel_path = rel_path[1:]
    query = "&".join(q for q in (parts.query, rel.query) if q)
    scheme, host, port = _origin_of(parts)
    return _Url(scheme, host, port, _request_target(base_path + rel_path, query))


def _secrets(uri: str, path: str) -> set[str]:
    """Everything an error must not show: the password, its Basic-auth form, and the
    values of secret-looking query parameters (``token=``, ``api_key=``, …)."""
    out: set[str] = set()
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return out
    if password:
        out |= {password, unquote(password)}
    credentials = basic_credentials(uri)
    if credentials is not None:
        out.add(_basic(credentials))
    for query in (parts.query, urlsplit(path).query if isinstance(path, str) else ""):
        for name, value in parse_qsl(query, keep_blank_values=True):
            if _SECRET_NAME.search(name) and len(value) >= 3:
                out |= {value, quote(value, safe=""), quote(value)}
    return {s for s in out if s}


def _basic(credentials: str) -> str:
    """The Authorization header's token for ``user:password`` (from
    :func:`playbook.redaction.basic_credentials`, which also has every base64 form of it
    hunted in all that leaves: a server may echo the header back)."""
    return base64.b64encode(credentials.encode("utf-8")).decode("ascii")


def _escaped(value: str, limit: int = SHOWN) -> str:
    """Server text made safe to show: control characters escaped, cut at ``limit``."""
    value = scrub_text(value)  # before the cut, which would leave a secret's first characters
    text = repr(value[:limit])[1:-1]
    return text + ("…" if len(value) > limit else "")


# --------------------------------------------------------------------------- picking


def pick_value(doc: Any, path: str) -> tuple[bool, Any]:
    """``(found, value)`` at a dotted ``path`` (``a.b.0.c``; ``-1`` is a list's last item;
    a final ``#`` is a list's or object's length)."""
    node = doc
    parts = path.split(".")
    for i, part in enumerate(parts):
        if part == "#" and i == len(parts) - 1:
            if isinstance(node, list | dict):
                return True, len(node)
            return False, None
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and _INDEX.match(part) and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def epoch_seconds(text: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 time, or None if ``text`` is not one.

    A time without a zone (seed 002's ``2025-10-31T09:27:49.002580``) is taken as UTC;
    a date alone is its midnight, UTC.
    """
    if not _ISO_DATE.match(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _row_value(value: Any) -> Any:
    """A picked value as the row shows it: scalars as they are, text cut, containers
    summarised (the row is evidence, not a copy of the body)."""
    if isinstance(value, str):
        return shortened(value, 200)
    if isinstance(value, list):
        return f"(a list of {len(value)})"
    if isinstance(value, dict):
        return f"(an object with {len(value)} keys)"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # 1e400 parses as inf, which is no JSON
    return value


def _no_constant(name: str) -> None:
    """NaN and Infinity are not JSON; a value written so is no number."""
    return None


# --------------------------------------------------------------------------- adapter


class HttpAdapter(Adapter):
    """GETs a JSON endpoint of the target; numbers are picked out of the answer by path."""

    kind = "http"
    description = "A JSON endpoint over HTTP(S), GET only; numbers and time ages picked by path"
    diagnostic_model = HttpDiagnostic
    schemes = frozenset({"http", "https"})

    max_body: int = MAX_BODY

    def check(self, request: RunRequest) -> None:
        query = request.query
        method = str(query.get("method", "GET")).upper()
        if method != "GET":
            raise Refused(f"Refused: an http diagnostic only reads (GET), not {method[:20]}.")
        build_url(request.uri, query.get("path", ""))
        pick = query.get("pick", {})
        if not isinstance(pick, dict) or not all(
            isinstance(k, str) and k and _pick_path(v) for k, v in pick.items()
        ):
            raise RunError(
                "The pick of an http diagnostic maps number names to paths (text), or to "
                "{path: …, as: number}."
            )
        taken = sorted(set(pick) & set(RESERVED))
        if taken:
            raise RunError(
                f"The pick name {taken[0]!r} is taken: the run sets it itself.",
                "Choose another name.",
            )

    def run(self, request: RunRequest, ctx: RunContext, sink: Sink) -> dict[str, Any]:
        self.check(request)
        call = _Call(request, ctx, self.max_body)
        try:
            status, body = call.fetch()
        finally:
            call.close()
        return _numbers(request, status, body, call.content_type, call.clean, sink)


def _numbers(
    request: RunRequest,
    status: int,
    body: bytes,
    content_type: str,
    clean: Callable[[str], str],
    sink: Sink,
) -> dict[str, Any]:
    try:
        doc = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError too
        # cleaned before it is cut, so a secret straddling the cut is still found whole
        begins = clean(_escaped(clean(body[: SHOWN + 1024].decode("utf-8", "replace"))))
        raise RunError(
            f"The answer is not JSON (content type {clean(_escaped(content_type or 'not given'))}, "
            f"{len(body):,} bytes); it begins: {begins or '(nothing)'}",
            "Check the diagnostic's path: it may reach a login page, an error page or the "
            "wrong endpoint.",
        ) from None
    from playbook.core.diagnostics import age_metrics

    now = time.time()
    metrics: dict[str, Any] = {"status": status, "bytes": len(body)}
    row: dict[str, Any] = {"status": status, "bytes": len(body)}
    missing: dict[str, str] = {}
    for name, spec in (request.query.get("pick") or {}).items():
        path = _pick_path(spec)
        found, value = pick_value(doc, path)
        if not found:
            missing[name] = path
            continue
        if isinstance(spec, dict):  # declared a number: converted, or the run is an error
            value = declared_number(name, value, spec.get("strip") or "", clean)
        row[name] = _row_value(value)
        if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
            metrics[name] = value
        elif isinstance(value, str) and (moment := epoch_seconds(value)) is not None:
            # A time ahead of this machine's clock has no age, beyond a small skew:
            # the age is then absent and `<name>_ahead_seconds` says by how much.
            ages = age_metrics(f"{name}_", moment, now)
            metrics[name] = moment
            metrics.update(ages)
            row.update(ages)
    if missing:
        row["missing"] = missing
    sink.add(row)
    return metrics


def _pick_path(spec: object) -> str:
    """The path of a pick: the text itself, or a declared pick's ``path`` ("" if neither)."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict) and spec.get("as") == "number":
        path = spec.get("path")
        return path if isinstance(path, str) else ""
    return ""


class _Call:
    """One run's connections: opened, followed through redirects, shut down on stop.

    Also the client of :mod:`playbook.adapters.prometheus.reader`, which subclasses it
    (as :data:`Call`) to read the bodies of the errors its API documents."""

    def __init__(self, request: RunRequest, ctx: RunContext, max_body: int) -> None:
        path = request.query.get("path", "")
        self.uri = request.uri
        self.ctx = ctx
        self.max_body = max_body
        self.url = build_url(request.uri, path)
        credentials = basic_credentials(request.uri)
        self.auth = _basic(credentials) if credentials is not None else None
        self.secrets = sorted(_secrets(request.uri, path), key=len, reverse=True)
        self.content_type = ""
        self.sockets: list[socket.socket] = []
        self.handles: list[socket.socket] = []
        """Duplicates of the sockets' descriptors, for the stop to shut them down by."""
        self.connections: list[http.client.HTTPConnection] = []
        self.responses: list[http.client.HTTPResponse] = []
        ctx.on_stop(self._shut_down)

    def clean(self, text: str) -> str:
        """``text`` without the URI's secrets (longest first, so none is left in part)."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return scrub(text, self.uri)

    # ------------------------------------------------------------------ network

    def fetch(self) -> tuple[int, bytes]:
        """The status and body of the GET, after same-host redirects."""
        try:
            response = self._follow()
            return response.status, self._body(response)
        except RunError:
            raise
        except Exception as exc:  # a socket shut down under a read fails in many ways
            self.ctx.check()  # stopped or past the deadline: say so, not the symptom
            raise self._failure(exc) from None

    def _follow(self) -> http.client.HTTPResponse:
        url = self.url
        for hop in range(MAX_REDIRECTS + 1):
            response = self._get(url)
            if response.status not in _REDIRECT_CODES:
                return self._ok(response)
            if hop == MAX_REDIRECTS:
                raise RunError(
                    f"The server redirected more than {MAX_REDIRECTS} times.",
                    "Point the diagnostic's path at where the answer really is.",
                )
            url = self._redirect(url, response.getheader("Location") or "")
        raise AssertionError("unreachable")  # pragma: no cover

    def _redirect(self, url: _Url, location: str) -> _Url:
        if not location:
            raise RunError("The server answered with a redirect but did not say where to.")
        here = f"{url.scheme}://{url.host}:{url.port}{url.target}"
        try:
            parts = urlsplit(urljoin(here, location))
            origin = (
                _origin_of(parts) if parts.hostname and parts.scheme in _DEFAULT_PORTS else None
            )
        except ValueError:
            origin = None
        if origin != url.origin:
            raise RunError(
                "The server redirected to another host, scheme or port; "
                "playbook follows redirects only within the target.",
                "Set the target to where the endpoint really lives.",
            )
        if _UNSAFE.search(parts.path + parts.query):
            raise RunError("The server redirected to an address with spaces or control characters.")
        return _Url(*origin, _request_target(parts.path, parts.query))

    def _ok(self, response: http.client.HTTPResponse) -> http.client.HTTPResponse:
        status = response.status
        if 200 <= status < 300:
            return response
        reason = self.clean(_escaped(self.clean(response.reason or ""), 100))
        hint = {
            401: "Check the credentials in the target's URI.",
            403: "Check that the target's credentials may read this endpoint.",
            404: "Check the diagnostic's path against the service's API.",
        }.get(status, "A 5xx answer means the service itself is failing: that is a finding.")
        raise RunError(f"The server answered {status} {reason}".rstrip() + ".", hint)

    def _get(self, url: _Url) -> http.client.HTTPResponse:
        import http.client  # deferred: see the module's docstring
        import ssl

        self.ctx.check()
        conn: http.client.HTTPConnection
        if url.scheme == "https":
            conn = http.client.HTTPSConnection(
                url.host,
                url.port,
                timeout=self.ctx.connect_timeout,
                context=ssl.create_default_context(),
            )
        else:
            conn = http.client.HTTPConnection(url.host, url.port, timeout=self.ctx.connect_timeout)
        # http.client opens its socket through this attribute (set in __init__): ours
        # registers the socket first, so a stop shuts down even a connect in progress.
        conn._create_connection = self._open  # type: ignore[attr-defined]
        self.connections.append(conn)
        headers = {"Accept": "application/json", "User-Agent": "playbook-diagnostic"}
        if self.auth is not None:
            headers["Authorization"] = f"Basic {self.auth}"
        conn.request("GET", url.target, headers=headers)
        response = conn.getresponse()
        self.responses.append(response)  # it may own the socket now: closed in close()
        self.ctx.connected()
        self.content_type = response.getheader("Content-Type") or ""
        return response

    def _open(
        self, address: tuple[str, int], timeout: float, source_address: Any = None
    ) -> socket.socket:
        host, port = address
        failure: OSError | None = None
        for family, kind, proto, _, addr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            self._watch(sock)
            sock.settimeout(min(timeout, self.ctx.remaining()))
            try:
                sock.connect(addr)
            except OSError as exc:
                sock.close()
                self.ctx.check()
                failure = exc
                continue
            sock.settimeout(self.ctx.remaining())  # the watchdog ends it sooner
            return sock
        raise failure or OSError(f"no address for {host}")

    def _watch(self, sock: socket.socket) -> None:
        """Have a stop shut ``sock`` down; if the run already stopped, stop now.

        The stop uses a duplicate of the descriptor: TLS takes the socket object over
        (the original is detached while the handshake runs), and shutting down a
        duplicate shuts down the connection itself. The duplicate stays open until
        :meth:`close`, so a stop never reaches a descriptor number since reused.
        """
        self.sockets.append(sock)
        self.handles.append(sock.dup())
        if self.ctx.stopped:  # the stop may have missed it: it was not on the list yet
            self._shut_down()
            raise self.ctx.stop_error()

    def _body(self, response: http.client.HTTPResponse) -> bytes:
        declared = response.getheader("Content-Length")
        # isdigit() alone takes "²" (a latin-1 header byte), which int() refuses.
        length = int(declared) if declared and declared.isascii() and declared.isdigit() else None
        if length is not None and length > self.max_body:
            raise self._too_big(f"says it is {length:,} bytes")
        chunks: list[bytes] = []
        got = 0
        while True:
            self.ctx.check()
            chunk = response.read1(CHUNK)
            if not chunk:
                break
            got += len(chunk)
            if got > self.max_body:
                raise self._too_big(f"went past {self.max_body:,} bytes")
            chunks.append(chunk)
            self.ctx.progress(got, length, "bytes read")
        self.ctx.check()  # a shut-down socket reads as the end of the body
        if length is not None and got < length:
            raise RunError(
                f"The connection closed after {got:,} of {length:,} bytes; the answer is partial."
            )
        return b"".join(chunks)

    def _too_big(self, how: str) -> RunError:
        mb = self.max_body // (1024 * 1024)
        return RunError(
            f"The answer {how}; playbook reads at most {mb} MB "
            f"({self.max_body:,} bytes) of an HTTP answer.",
            "Point the diagnostic at a smaller endpoint (a summary, a page, a filter).",
        )

    def _failure(self, exc: Exception) -> RunError:
        import ssl

        where = f"{self.url.host}:{self.url.port}"
        if isinstance(exc, ConnectionRefusedError):
            return RunError(
                f"Nothing is listening at {where} (connection refused).",
                "Check the target's address and that the service is up.",
            )
        if isinstance(exc, socket.gaierror):
            return RunError(f"The host name of the target ({self.url.host}) could not be resolved.")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return RunError(
                f"The TLS certificate of {where} was not accepted: "
                f"{self.clean(_escaped(exc.verify_message or '', 200))}."
            )
        if isinstance(exc, ssl.SSLError):
            return RunError(
                f"TLS with {where} failed: {self.clean(_escaped(str(exc.reason or exc), 200))}.",
                "Check that the target speaks https on this port (or use http://).",
            )
        detail = self.clean(_escaped(self.clean(f"{type(exc).__name__}: {exc}"), 200))
        return RunError(f"The request to {where} failed: {detail}")

    def _shut_down(self) -> None:
        """The watchdog's stop: shut every socket down so a blocked call returns.

        Only shut down, never closed here: the run's own thread closes them.
        """
        for handle in list(self.handles):
            with contextlib.suppress(OSError):
                handle.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for response in self.responses:
            with contextlib.suppress(Exception):
                response.close()
        for conn in self.connections:
            with contextlib.suppress(Exception):
                conn.close()
        for sock in [*self.sockets, *self.handles]:
            with contextlib.suppress(OSError):
                sock.close()


# The pieces the prometheus reader reuses, so there is one HTTP client with one set of
# promises (GET only, same-host redirects, the body cap, the deadline, no secret shown).
Call = _Call
escaped = _escaped
no_constant = _no_constant
