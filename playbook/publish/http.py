"""The one HTTP client every publisher uses (the standard library's ``http.client``).

What it promises, whatever a destination or the network does:

- TLS verified against the system's trust store (``ssl.create_default_context``); plain
  ``http`` only to a loopback address (a local stand-in), so a token never crosses a
  network in clear;
- a timeout on connecting and on every read, and a watchdog that ends the whole
  exchange at :data:`TIMEOUT` (an answer trickled a byte at a time resets a read's
  timeout with every byte; the watchdog shuts the socket down);
- once the request has gone out, no answer (a dropped connection, the watchdog) is
  :class:`~playbook.publish.base.MaybeSent`, not a failure: the destination may have it;
- a response read up to :data:`MAX_RESPONSE` bytes, no more;
- no redirect followed: a 3xx is a failure naming the status (a redirect to another host
  would carry the token there);
- 420 and 429 retried after ``Retry-After`` (capped by :data:`MAX_WAIT`), at most
  :data:`RETRIES` times; and at most one request a second to each host and credential
  (Statuspage's limit: "1 request / second" per API token), waited for here.
- Errors quote neither the URL's path nor the body: both may carry the token; every
  message passes through :func:`playbook.redaction.scrub` besides.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from playbook import redaction
from playbook.publish.base import MaybeSent, PublishFailed

TIMEOUT = 10.0
MAX_RESPONSE = 1024 * 1024
RETRIES = 3
MAX_WAIT = 30.0
BUDGET = 30.0
"""Longest one message may wait on a destination's rate limit in all, retries included:
past it, the 420/429 stands (not sent), and the responder decides when to try again."""
MIN_INTERVAL = 1.0

_last: dict[tuple[str, str], float] = {}
_lock = threading.Lock()

sleep: Callable[[float], None] = time.sleep
"""How the client waits (a test may count the waits)."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _pace(host: str, credential: str) -> None:
    """At most one request a second per host and credential (the credential itself is
    not kept: its hash is)."""
    slot = (host, str(hash(credential)))  # host:port
    with _lock:
        wait = _last.get(slot, 0.0) + MIN_INTERVAL - time.monotonic()
        if wait > 0:
            sleep(wait)
        _last[slot] = time.monotonic()


def _retry_after(value: str | None) -> float:
    try:
        seconds = float(value) if value is not None else 1.0
    except ValueError:
        seconds = 1.0
    return max(0.0, min(seconds, MAX_WAIT))


def request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: Any = None,
    *,
    credential: str = "",
    what: str = "the destination",
) -> Response:
    """Send one JSON request and return the response (any status but 420/429).

    Raises:
        PublishFailed: not https (unless loopback), unreachable, a timeout, a redirect,
            a response over the size cap, or still rate-limited after the retries.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, parts.port, timeout=TIMEOUT, context=ssl.create_default_context()
        )
    elif parts.scheme == "http" and _loopback(host):
        conn = http.client.HTTPConnection(host, parts.port, timeout=TIMEOUT)
    else:
        raise PublishFailed(
            f"{what}: refused to send to a {parts.scheme or 'schemeless'} URL.",
            "Use https (plain http only to a local address).",
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
    sent_headers = {"Accept": "application/json", "User-Agent": "playbook", **headers}
    if data is not None:
        sent_headers["Content-Type"] = "application/json"
    gives_up = time.monotonic() + BUDGET
    try:
        for attempt in range(RETRIES + 1):
            _pace(parts.netloc.rpartition("@")[2], credential)
            try:
                conn.close()  # a fresh connection for every attempt
                conn.connect()
            except (OSError, http.client.HTTPException) as exc:  # TimeoutError is an OSError
                conn.close()
                raise PublishFailed(
                    f"{what}: could not reach {host} ({type(exc).__name__}).",
                    redaction.scrub(str(exc)),
                ) from None
            raw, payload = _exchange(conn, method, path, data, sent_headers, what, host)
            if len(payload) > MAX_RESPONSE:
                if 200 <= raw.status < 300:  # accepted; what it said is past reading
                    raise MaybeSent(
                        f"{what}: accepted (HTTP {raw.status}), with an answer over "
                        f"{MAX_RESPONSE:,} bytes that was not read.",
                        "It arrived; what it made there is unknown: look before sending "
                        "again (--resend).",
                    )
                raise PublishFailed(f"{what}: the answer was over {MAX_RESPONSE:,} bytes.")
            answer = Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, payload)
            if raw.status in (420, 429) and attempt < RETRIES:
                wait = _retry_after(answer.headers.get("retry-after"))
                if time.monotonic() + wait > gives_up:
                    raise PublishFailed(
                        f"{what}: still rate-limited (HTTP {raw.status}); waiting "
                        f"{wait:g} s more would pass the {BUDGET:g} s one message may wait.",
                        "Nothing was sent. Publish it again in a minute.",
                    )
                sleep(wait)
                continue
            if 300 <= raw.status < 400:
                raise PublishFailed(
                    f"{what}: answered {raw.status} (a redirect); not followed.",
                    "Check the destination's URL in your playbook.toml.",
                )
            return answer
        raise PublishFailed(f"{what}: still rate-limited after {RETRIES} retries.")
    finally:
        conn.close()


def _exchange(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    data: bytes | None,
    headers: Mapping[str, str],
    what: str,
    host: str,
) -> tuple[http.client.HTTPResponse, bytes]:
    """Send the request on ``conn`` (connected) and read the answer, all within
    :data:`TIMEOUT`.

    Raises:
        MaybeSent: once connected, anything but a whole answer: a request cut off on
            its way may still have reached the destination whole (the last bytes out,
            then a reset), so only a failure to connect counts as "not sent".
    """
    stopped = threading.Event()

    def cut() -> None:
        stopped.set()
        if conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked on it

    watchdog = threading.Timer(TIMEOUT, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request(method, path, body=data, headers=dict(headers))
        raw = conn.getresponse()
        payload = raw.read(MAX_RESPONSE + 1)
    except (OSError, http.client.HTTPException) as exc:  # TimeoutError is an OSError
        conn.close()
        why = f"no whole answer within {TIMEOUT:g} s" if stopped.is_set() else type(exc).__name__
        raise MaybeSent(
            f"{what}: the request went to {host}, and no answer came back ({why}).",
            "It may have arrived: look at the destination before sending it again "
            f"(--resend). {redaction.scrub(str(exc))}".strip(),
        ) from None
    finally:
        watchdog.cancel()
    if stopped.is_set():  # an answer ended by the watchdog is not the answer
        raise MaybeSent(
            f"{what}: the request went to {host}, and no whole answer came back within "
            f"{TIMEOUT:g} s.",
            "It may have arrived: look at the destination before sending it again (--resend).",
        )
    return raw, payload


def accepted(answer: Response, what: str) -> None:
    """Raise unless the destination took the message: any 2xx is taken, whatever its
    body says after (an answer cannot unsend it); anything else is refused.

    Raises:
        PublishFailed: not a 2xx (not sent, as the destination says).
    """
    if not 200 <= answer.status < 300:
        raise fail(answer, what)


def made_record(answer: Response, ident: object, what: str) -> str:
    """The id of the record a first post made (a Statuspage incident, an OpenStatus
    report), from an answer :func:`accepted` took.

    Raises:
        MaybeSent: the answer does not say (not JSON, cut, empty, a 202 or 204): the
            record exists and its id is unknown, so it is looked up or held, never made
            a second time.
    """
    if ident is None or ident == "":
        raise MaybeSent(
            f"{what}: accepted (HTTP {answer.status}), but its answer does not say which "
            "record it made.",
            "Look at the destination before sending again (--resend).",
        )
    return str(ident)


def fail(answer: Response, what: str) -> PublishFailed:
    """The error for an answer that is not a success: its body scrubbed whole, then cut
    (:func:`playbook.redaction.shortened`). Cut first, a secret echoed across the cut
    lost its last characters and no longer matched: all but one of them were shown and
    stored (attacker round K)."""
    detail = answer.body.decode("utf-8", "replace")
    return PublishFailed(
        f"{what}: answered HTTP {answer.status}.", redaction.shortened(detail, 300)
    )
