"""HTTP diagnostics against a real local server: seed 002's stale backup endpoint and
servers that fail, lie, redirect away, flood, trickle or never answer."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from helpers import RUNBOOK
from servers import SilentServer, free_port

from playbook.adapters.base import (
    Cancelled,
    DeadlineExceeded,
    Refused,
    RunContext,
    RunError,
    RunRequest,
    Sink,
)
from playbook.adapters.http.reader import HttpAdapter
from playbook.adapters.plugins import load_playbook as load
from playbook.adapters.plugins import playbook_model
from playbook.core.clock import FakeClock
from playbook.core.loader import LoadedPlaybook
from playbook.service import Service
from playbook.store.memory import MemoryStore
from playbook.targets import Target

SECRET = "SECRET-pw-5d1e"
TOKEN = "tok-QUERY-88c2"
SEED_BACKUP = "2025-10-31T09:27:49.002580"
"""Seed 002: the backup the endpoint kept returning, an hour older than the newest write."""
WRITTEN = datetime.now(UTC).replace(microsecond=250_000) - timedelta(hours=2)
"""The backup time this server reports, written without a zone as seed 002's is."""
STAFF = [{"discord_id": str(974994910581256293 + n), "invite_code": f"code{n}"} for n in range(6)]


def backup(timestamp: str) -> dict[str, Any]:
    return {"timestamp": timestamp, "staff_configs": STAFF, "ok": True, "version": 7}


class Handler(BaseHTTPRequestHandler):
    """Routes by path; records what it was sent so tests can check the request."""

    seen: ClassVar[list[tuple[str, str]]] = []
    """(path, Authorization header) of every request."""
    stop = threading.Event()

    def log_message(self, *args: Any) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        route = self.path.split("?")[0].strip("/").replace("-", "_")
        serve = getattr(self, f"route_{route}", None)
        try:
            if serve is None:
                self.send(404, b'{"error": "no such route"}')
            else:
                serve()
        except OSError:
            pass  # the client hung up (the tests that cut an answer short)

    def send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route_get_discord_data_backup(self) -> None:
        self.send(200, json.dumps(backup(WRITTEN.strftime("%Y-%m-%dT%H:%M:%S.%f"))).encode())

    def route_seed(self) -> None:
        self.send(200, json.dumps(backup(SEED_BACKUP)).encode())

    def route_zoned(self) -> None:
        body = {"a": "2025-10-31T11:27:49+02:00", "b": "2025-10-31T09:27:49Z", "c": "soon"}
        self.send(200, json.dumps(body).encode())

    def route_odd(self) -> None:  # numbers a float cannot hold, and JavaScript's NaN
        self.send(200, b'{"big": 1e400, "nan": NaN, "n": 3}')

    def route_fail(self) -> None:
        self.send(500, b'{"error": "database unavailable"}')

    def route_html(self) -> None:  # a login page that echoes the request, as some do
        echo = f"<html>\x1b[31m{self.path} {self.headers.get('Authorization')}</html>"
        self.send(200, echo.encode(), "text/html; charset=utf-8")

    def route_away(self) -> None:
        self.send_response(302)
        self.send_header("Location", "http://elsewhere.invalid/get_discord_data_backup")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_moved(self) -> None:
        self.send_response(301)
        self.send_header("Location", "/get_discord_data_backup")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_loop(self) -> None:
        self.send_response(307)
        self.send_header("Location", "/loop")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_huge_declared(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(17 * 1024 * 1024))
        self.end_headers()
        self.wfile.write(b"[")

    def route_huge(self) -> None:  # no length given: the cap must be counted as it reads
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"[")
        block = b"1," * (512 * 1024)
        for _ in range(17):
            self.wfile.write(block)
        self.wfile.write(b"1]")

    def route_slow(self) -> None:  # the headers at once, then a byte now and then
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b'{"timestamp": "')
        self.wfile.flush()
        while not self.stop.wait(0.05):  # the trickle's pace, not a synchronisation
            self.wfile.write(b"0")
            self.wfile.flush()


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    Handler.stop.set()
    server.shutdown()
    server.server_close()
    thread.join(10)


def run(
    uri: str,
    path: str,
    pick: dict[str, str] | None = None,
    *,
    timeout: float = 10,
    connect_timeout: float = 5,
    sink: Sink | None = None,
) -> tuple[dict[str, Any], list[Any]]:
    sink = sink or Sink(None)
    ctx = RunContext(timeout, connect_timeout)
    try:
        request = RunRequest("t", {"path": path, "pick": pick or {}}, uri)
        metrics = HttpAdapter().run(request, ctx, sink)
    finally:
        ctx.finish()
    return metrics, sink.rows


PICKS = {
    "backup_time": "timestamp",
    "staff": "staff_configs.#",
    "first_staff": "staff_configs.0.discord_id",
    "ok": "ok",
    "version": "version",
}


# --------------------------------------------------------------------------- numbers


def test_picks_the_backup_time_and_its_age(base: str) -> None:
    before = time.time()
    metrics, rows = run(base, "/get_discord_data_backup", PICKS)
    after = time.time()
    written = WRITTEN.timestamp()  # the body's time has no zone: it is read as UTC
    assert metrics["backup_time"] == pytest.approx(written, abs=1e-6)
    assert before - written - 0.001 <= metrics["backup_time_age_seconds"] <= after - written + 0.001
    assert metrics["staff"] == 6
    assert metrics["ok"] is True and metrics["version"] == 7
    assert metrics["status"] == 200 and metrics["bytes"] > 0
    assert "first_staff" not in metrics  # an id is text, not a number
    assert len(rows) == 1
    row = rows[0]
    assert row["backup_time"] == WRITTEN.strftime("%Y-%m-%dT%H:%M:%S.%f")
    assert row["first_staff"] == "974994910581256293" and row["staff"] == 6
    assert "staff_configs" not in json.dumps(row) and "invite_code" not in json.dumps(row)


def test_times_with_a_zone_and_a_text_that_is_no_time(base: str) -> None:
    metrics, rows = run(base, "/zoned", {"a": "a", "b": "b", "c": "c"})
    seed = datetime(2025, 10, 31, 9, 27, 49, tzinfo=UTC).timestamp()
    assert metrics["a"] == metrics["b"] == seed
    assert metrics["a_age_seconds"] > 0
    assert "c" not in metrics and rows[0]["c"] == "soon"


def test_a_missing_path_gives_no_number_and_the_row_says_which(base: str) -> None:
    picks = {"newest": "backups.-1.timestamp", "staff": "staff_configs.#", "n": "ok.#"}
    metrics, rows = run(base, "/get_discord_data_backup", picks)
    assert "newest" not in metrics and "n" not in metrics
    assert metrics["staff"] == 6
    assert rows[0]["missing"] == {"newest": "backups.-1.timestamp", "n": "ok.#"}


def test_numbers_that_are_no_json_numbers_leave_the_evidence_valid(
    base: str, tmp_path: Path
) -> None:
    sink = Sink(tmp_path / "rows.jsonl")
    metrics, _ = run(base, "/odd", {"big": "big", "nan": "nan", "n": "n"}, sink=sink)
    sink.close()
    assert metrics["n"] == 3 and "big" not in metrics and "nan" not in metrics
    row = json.loads((tmp_path / "rows.jsonl").read_text(), parse_constant=pytest.fail)
    assert row["big"] == "inf" and row["nan"] is None


def test_a_same_host_redirect_is_followed(base: str) -> None:
    metrics, _ = run(base, "/moved", {"staff": "staff_configs.#"})
    assert metrics["staff"] == 6


# --------------------------------------------------------------------------- failures


def test_a_server_error_names_the_status(base: str) -> None:
    with pytest.raises(RunError) as caught:
        run(base, "/fail")
    assert caught.value.title == "The server answered 500 Internal Server Error."


def test_an_answer_that_is_not_json_is_quoted_escaped(base: str) -> None:
    sink = Sink(None)
    with pytest.raises(RunError) as caught:
        run(base, "/html", sink=sink)
    title = caught.value.title
    assert "not JSON" in title and "text/html" in title
    assert "<html>\\x1b[31m/html" in title  # the first bytes, escaped
    assert "\x1b" not in str(caught.value)
    assert sink.count == 0


def test_a_redirect_to_another_host_is_not_followed(base: str) -> None:
    with pytest.raises(RunError) as caught:
        run(base, "/away")
    assert "another host" in caught.value.title


def test_redirects_stop_after_three(base: str) -> None:
    before = sum(path == "/loop" for path, _ in Handler.seen)
    with pytest.raises(RunError) as caught:
        run(base, "/loop")
    assert "more than 3 times" in caught.value.title
    assert sum(path == "/loop" for path, _ in Handler.seen) - before == 4


@pytest.mark.parametrize("path", ["/huge-declared", "/huge"])
def test_a_huge_answer_is_refused_not_parsed(base: str, path: str) -> None:
    sink = Sink(None)
    with pytest.raises(RunError) as caught:
        run(base, path, sink=sink)
    assert "at most 16 MB" in caught.value.title
    assert sink.count == 0


@pytest.mark.parametrize(
    "path",
    ["//elsewhere.invalid/x", "http://elsewhere.invalid/", "@elsewhere.invalid/", ".invalid/x"],
)
def test_a_path_that_changes_the_host_is_refused_before_sending(base: str, path: str) -> None:
    sent = len(Handler.seen)
    with pytest.raises(Refused) as caught:
        run(base, path)
    assert "host" in caught.value.title
    assert len(Handler.seen) == sent


def test_only_http_targets_and_only_get() -> None:
    adapter = HttpAdapter()
    with pytest.raises(Refused):
        adapter.check(RunRequest("t", {"path": "/"}, "ftp://127.0.0.1/"))
    with pytest.raises(Refused):
        adapter.check(RunRequest("t", {"path": "/", "method": "POST"}, "http://127.0.0.1/"))
    with pytest.raises(RunError):
        adapter.check(RunRequest("t", {"pick": {"status": "code"}}, "http://127.0.0.1/"))


def test_nothing_listening_is_a_clear_error() -> None:
    with pytest.raises(RunError) as caught:
        run(f"http://127.0.0.1:{free_port()}", "/", timeout=5, connect_timeout=2)
    assert "connection refused" in caught.value.title


# --------------------------------------------------------------------------- bounded


@pytest.mark.parametrize("scheme", ["http", "https"])  # https: stuck in the TLS handshake
def test_a_silent_server_ends_at_the_connect_timeout(scheme: str) -> None:
    with SilentServer() as silent:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as caught:
            run(f"{scheme}://127.0.0.1:{silent.port}", "/", timeout=30, connect_timeout=1)
        took = time.monotonic() - started
    assert "connect timeout" in caught.value.title
    assert took < 2, f"took {took:.1f} s for a 1 s connect timeout"


def test_a_trickling_body_ends_at_the_deadline_as_partial(base: str) -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        run(base, "/slow", {"t": "timestamp"}, timeout=1, connect_timeout=1)
    took = time.monotonic() - started
    assert "deadline" in caught.value.title and "partial" in caught.value.title
    assert took < 2, f"took {took:.1f} s for a 1 s deadline"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_cancel_from_another_thread_ends_the_run_at_once(scheme: str) -> None:
    with SilentServer() as silent:
        ctx = RunContext(60, 30)
        outcome: list[BaseException] = []

        def work() -> None:
            try:
                HttpAdapter().run(
                    RunRequest("t", {"path": "/"}, f"{scheme}://127.0.0.1:{silent.port}"),
                    ctx,
                    Sink(None),
                )
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=work)
        worker.start()
        assert silent.spoken.wait(10)  # the request (or TLS hello) is sent; the client waits
        cancelled = time.monotonic()
        ctx.cancel()
        worker.join(10)
        took = time.monotonic() - cancelled
        ctx.finish()
    assert not worker.is_alive()
    assert isinstance(outcome[0], Cancelled)
    assert took < 1, f"took {took:.1f} s to cancel"


# --------------------------------------------------------------------------- secrets


def test_credentials_are_sent_but_never_shown(base: str) -> None:
    uri = base.replace("http://", f"http://responder:{SECRET}@") + f"/?token={TOKEN}"
    basic = base64.b64encode(f"responder:{SECRET}".encode()).decode()
    shown: list[str] = []
    metrics, rows = run(uri, "/get_discord_data_backup", PICKS)
    shown += [json.dumps(metrics), json.dumps(rows)]
    path, auth = Handler.seen[-1]
    assert auth == f"Basic {basic}" and path == f"/get_discord_data_backup?token={TOKEN}"
    for bad in ("/fail", "/html", "/away", "/loop", "/huge-declared"):
        with pytest.raises(RunError) as caught:
            run(uri, bad)
        shown.append(str(caught.value))
    with SilentServer() as silent:
        with pytest.raises(RunError) as caught:
            run(f"http://responder:{SECRET}@127.0.0.1:{silent.port}/", "/", connect_timeout=1)
        shown.append(str(caught.value))
    everything = "\n".join(shown)
    assert "<html>" in everything  # the echoing page was quoted …
    for secret in (SECRET, TOKEN, basic):
        assert secret not in everything  # … without what it echoed


# --------------------------------------------------------------------------- the service


def with_backup_diagnostic() -> LoadedPlaybook:
    """The shipped playbook plus seed 002's check: is the backup newer than the last write?"""
    loaded = load(RUNBOOK)
    snapshot = loaded.playbook.model_dump(mode="json", by_alias=True)
    snapshot["diagnostics"]["backup-freshness"] = {
        "kind": "http",
        "title": "The cloud backup is newer than the newest write",
        "target": "backup-api",
        "params": {"newest_write": {"type": "datetime"}},
        "query": {"path": "/seed", "pick": {"backup_time": "timestamp"}},
        "expect": [
            {
                "metric": "backup_time",
                "op": "ge",
                "value": {"$param": "newest_write"},
                "because": "A restore from an older backup loses the writes after it.",
            }
        ],
        "timeout": "10s",
        "connect_timeout": "2s",
    }
    pb = playbook_model().model_validate(snapshot, strict=False)
    return LoadedPlaybook(pb, loaded.path, loaded.sha256)


@pytest.mark.parametrize(
    ("newest_write", "verdict"),
    [("2025-10-31T10:36:37Z", "fail"), ("2025-10-31T09:00:00Z", "pass")],
)
def test_the_service_fails_a_backup_older_than_the_newest_write(
    base: str, tmp_path: Path, newest_write: str, verdict: str
) -> None:
    service = Service(
        MemoryStore(),
        clock=FakeClock(datetime(2025, 10, 31, 10, 45, tzinfo=UTC)),
        actor="alice",
        evidence_dir=tmp_path / "evidence",
    )
    state = service.open(with_backup_diagnostic(), "bot restored a stale backup")
    uri = base.replace("http://", f"http://bot:{SECRET}@")
    prepared = service.prepare_diagnostic(
        state.id,
        "backup-freshness",
        {"newest_write": newest_write},
        {"backup-api": Target("backup-api", uri, "test")},
    )
    payload = service.execute_diagnostic(prepared)
    assert payload["verdict"] == verdict, payload["message"]
    check = payload["checks"][0]
    assert check["actual"] == datetime(2025, 10, 31, 9, 27, 49, 2580, tzinfo=UTC).timestamp()
    assert payload["rows"][0]["backup_time"] == SEED_BACKUP
    evidence = Path(payload["file"]).read_text()
    assert SEED_BACKUP in evidence and SECRET not in evidence + json.dumps(payload)
