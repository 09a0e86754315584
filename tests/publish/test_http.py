"""The one HTTP client: paced, retried after Retry-After on 429, never redirected,
capped, and never in clear text to another machine."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from playbook.publish import http
from playbook.publish.base import PublishFailed


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    script: list[tuple[int, dict[str, str], bytes]] = []
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.path)
            status, headers, body = script.pop(0) if script else (200, {}, b"ok")
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    waits: list[float] = []
    monkeypatch.setattr(http, "sleep", waits.append)
    monkeypatch.setattr(http, "_last", {})
    yield f"http://127.0.0.1:{srv.server_address[1]}", script, seen, waits
    srv.shutdown()
    srv.server_close()


def test_a_429_is_retried_after_the_time_it_names(server) -> None:
    base, script, seen, waits = server
    script.append((429, {"Retry-After": "2"}, b"{}"))
    answer = http.request("POST", f"{base}/x", {}, {"a": 1}, credential="k")
    assert answer.status == 200 and len(seen) == 2
    assert 2.0 in waits


def test_two_requests_with_one_credential_are_a_second_apart(server) -> None:
    base, _script, seen, waits = server
    http.request("POST", f"{base}/a", {}, {}, credential="k")
    http.request("POST", f"{base}/b", {}, {}, credential="k")
    assert len(seen) == 2 and waits and 0 < waits[-1] <= 1.0


def test_a_redirect_is_not_followed(server) -> None:
    base, script, seen, _waits = server
    script.append((302, {"Location": "https://elsewhere.example/steal"}, b""))
    with pytest.raises(PublishFailed, match="redirect"):
        http.request("POST", f"{base}/x", {}, {})
    assert seen == ["/x"]


def test_an_answer_over_the_cap_is_refused(server, monkeypatch) -> None:
    base, script, _seen, _waits = server
    monkeypatch.setattr(http, "MAX_RESPONSE", 1000)
    script.append((200, {}, json.dumps({"x": "y" * 5000}).encode()))
    with pytest.raises(PublishFailed, match="over"):
        http.request("POST", f"{base}/x", {}, {})


def test_plain_http_to_another_machine_is_refused_before_connecting() -> None:
    with pytest.raises(PublishFailed, match="refused to send"):
        http.request("POST", "http://hooks.example.com/services/T/B/token", {}, {})
