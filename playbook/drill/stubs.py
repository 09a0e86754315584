"""A local HTTP stub: what stands in for a drill's ``http`` target.

A route is either a fixed JSON body (``serve``) or a function asked at each request
(``answer``, built by :mod:`playbook.drill.routes` from the sandbox's state). Requests
are served by :class:`~http.server.ThreadingHTTPServer` in threads of its own, never the
app's: a route that reads a database blocks only the request that asked, and the
diagnostic waiting on it runs in a worker with its own deadline.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """What a route asked at request time sends."""

    status: int
    body: bytes
    """JSON."""
    reason: str = ""
    """The status line's reason phrase: the one line of an error a client that reads no
    body still shows (the HTTP reader quotes it). One line of printable ASCII."""


Answer = Callable[[], Reply]
"""A route asked at request time."""


class HttpStub:
    """A local HTTP server answering GET with the JSON a drill gave each path."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes | Answer] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404)
                    return
                reply = Reply(200, route) if isinstance(route, bytes) else route()
                body = reply.body
                self.send_response(reply.status, _reason(reply.reason) or None)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # the app owns the terminal
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="playbook-drill-http-stub", daemon=True
        )
        self.thread.start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, routes: Mapping[str, Any]) -> None:
        """Serve each path's JSON body as it is, from now on."""
        for path, body in routes.items():
            self.routes[_path(path)] = json.dumps(body).encode()

    def answer(self, routes: Mapping[str, Answer]) -> None:
        """Answer each path by asking its function at every request, from now on."""
        for path, ask in routes.items():
            self.routes[_path(path)] = ask

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _path(path: str) -> str:
    return "/" + path.lstrip("/")


def _reason(text: str) -> str:
    """``text`` as a reason phrase: printable ASCII on one line (the status line is
    Latin-1 and ends at the first line break), at most 200 characters."""
    kept = "".join(c if " " <= c <= "~" else " " for c in text)
    return " ".join(kept.split())[:200]
