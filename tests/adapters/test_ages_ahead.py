"""A time dated ahead of this machine's clock is no sign of fresh data.

An endpoint (or a table, or a heartbeat key) whose time is an hour ahead gave an age of
-3600 s, which passes `le: 60`: the check said "fresh" when nothing said so. Now a time
more than SKEW_TOLERANCE ahead has no age, and an expectation on the age is an error
that says by how much the clocks disagree; a time a second ahead (rounding, drift) is
age 0. Each case runs a real server and reads the recorded evidence.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from numbers_harness import Harness
from servers import redis_server

from playbook.core.diagnostics import SKEW_TOLERANCE


class Clockwork(BaseHTTPRequestHandler):
    """Answers ``{"updated": <now + offset>}`` for ``/ahead/<offset seconds>``, the time
    taken when the request arrives (so the offset is what the client sees, give or
    take the round trip)."""

    seen: ClassVar[list[str]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append(self.path)
        offset = float(self.path.rsplit("/", 1)[-1])
        at = time.time() + offset
        moment = datetime.fromtimestamp(at, UTC)
        body = json.dumps(
            {
                "updated": moment.isoformat(),
                "next_run": "2999-01-01T00:00:00Z",
                "epoch": int(at),  # the same time as JSON numbers: seconds, milliseconds
                "epoch_ms": int(at * 1000),
            }
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Clockwork)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


def freshness(path: str, pick: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "http",
        "title": "The data is fresh",
        "target": "api",
        "timeout": "10s",
        "query": {"path": path, "pick": pick or {"updated": "updated"}},
        "expect": [{"metric": "updated_age_seconds", "op": "le", "value": 60}],
    }


def test_a_sample_an_hour_ahead_is_an_error_that_says_the_clocks_disagree(
    endpoint: str, tmp_path: Path
) -> None:
    payload = Harness(tmp_path, {"api": endpoint}).run(freshness("/ahead/3600"))
    assert Clockwork.seen[-1] == "/ahead/3600"  # the server was asked
    assert payload["verdict"] == "error", payload
    assert "updated_age_seconds" not in payload["metrics"]
    ahead = payload["metrics"]["updated_ahead_seconds"]
    assert 3590 <= ahead <= 3600
    assert "dated" in payload["message"] and "ahead of this machine's clock" in payload["message"]
    assert f"{ahead:g} s" in payload["message"]
    # the evidence on disk says so too, for whoever reads it after the incident
    assert Harness.file_rows(payload)[0]["updated_ahead_seconds"] == ahead


def test_a_sample_a_second_ahead_is_age_zero_and_passes(endpoint: str, tmp_path: Path) -> None:
    payload = Harness(tmp_path, {"api": endpoint}).run(freshness("/ahead/1"))
    assert payload["verdict"] == "pass", payload
    assert payload["metrics"]["updated_age_seconds"] == 0
    assert "updated_ahead_seconds" not in payload["metrics"]


def test_past_the_tolerance_is_ahead_and_an_old_sample_still_fails(
    endpoint: str, tmp_path: Path
) -> None:
    harness = Harness(tmp_path, {"api": endpoint})
    past = harness.run(freshness(f"/ahead/{SKEW_TOLERANCE + 5}"))
    assert past["verdict"] == "error" and "updated_ahead_seconds" in past["metrics"]
    stale = harness.run(freshness("/ahead/-600"))
    assert stale["verdict"] == "fail" and 599 <= stale["metrics"]["updated_age_seconds"] <= 602


def test_a_future_time_nobody_asks_the_age_of_is_no_error(endpoint: str, tmp_path: Path) -> None:
    """A schedule's next run is in the future by nature: only an age of it is unknown."""
    diagnostic = freshness("/ahead/0", {"updated": "updated", "next_run": "next_run"})
    payload = Harness(tmp_path, {"api": endpoint}).run(diagnostic)
    assert payload["verdict"] == "pass", payload
    assert payload["metrics"]["next_run"] == datetime(2999, 1, 1, tzinfo=UTC).timestamp()
    assert "next_run_age_seconds" not in payload["metrics"]


def test_a_redis_heartbeat_an_hour_ahead_is_an_error(tmp_path: Path) -> None:
    with redis_server() as server:
        server.client().set("hb:ahead", str(int((time.time() + 3600) * 1000)))
        server.client().set("hb:skew", str(int((time.time() + 1) * 1000)))
        harness = Harness(tmp_path, {"cache": server.uri})

        def heartbeat(key: str) -> dict[str, Any]:
            return harness.run(
                {
                    "kind": "redis",
                    "title": "The bot's heartbeat is fresh",
                    "target": "cache",
                    "timeout": "10s",
                    "query": {"op": "freshness", "key": key},
                    "expect": [{"metric": "age_seconds", "op": "le", "value": 60}],
                }
            )

        ahead = heartbeat("hb:ahead")
        assert ahead["verdict"] == "error", ahead
        assert 3590 <= ahead["metrics"]["ahead_seconds"] <= 3600
        assert "ahead of this machine's clock" in ahead["message"]
        skew = heartbeat("hb:skew")
        assert skew["verdict"] == "pass" and skew["metrics"]["age_seconds"] == 0


def test_diag_help_states_the_tolerance_the_code_uses(cli: Any) -> None:
    text = " ".join(cli("diag", "--help").output.split())
    assert f"A time up to {SKEW_TOLERANCE:g} s ahead is age 0" in text


def test_a_time_dated_ahead_never_passes_a_comparison_with_the_newest_write(
    endpoint: str, tmp_path: Path
) -> None:
    """The stale-backup runbook's shape: "the backup is newer than the last write",
    ``backup_time >= newest_write``. A backup service whose clock is a year ahead made
    it pass (attacker round G, break 1); the time itself is now as unknown as its age."""
    newest_write = time.time() - 60
    diagnostic = freshness("/ahead/31536000")
    diagnostic["expect"] = [{"metric": "updated", "op": "ge", "value": newest_write}]
    payload = Harness(tmp_path, {"api": endpoint}).run(diagnostic)
    assert payload["verdict"] == "error", payload
    assert "updated cannot be judged" in payload["message"]
    assert "ahead of this machine's clock" in payload["message"]
    # an hour in the past still compares as a time: this is a check, not a ban on times
    diagnostic = freshness("/ahead/-3600")
    diagnostic["expect"] = [{"metric": "updated", "op": "ge", "value": newest_write}]
    assert Harness(tmp_path, {"api": endpoint}).run(diagnostic)["verdict"] == "fail"


def test_a_time_ahead_by_nature_is_compared_through_how_far_ahead_it_is(
    endpoint: str, tmp_path: Path
) -> None:
    diagnostic = freshness("/ahead/0", {"next_run": "next_run"})
    diagnostic["expect"] = [{"metric": "next_run_ahead_seconds", "op": "ge", "value": 86400}]
    assert Harness(tmp_path, {"api": endpoint}).run(diagnostic)["verdict"] == "pass"


@pytest.mark.parametrize(
    ("offset", "pick", "verdict"),
    [
        (31536000, "epoch", "error"),  # a year ahead, as epoch seconds: it passed (H, 3)
        (-600, "epoch_ms", "error"),  # milliseconds: "year 130971", a crash (exit 70)
        (-3600, "epoch", "fail"),  # an hour old: still compared as a time
        (0, "epoch", "pass"),
    ],
)
def test_a_time_sent_as_a_number_is_judged_like_one_sent_as_text(
    endpoint: str, tmp_path: Path, offset: int, pick: str, verdict: str
) -> None:
    newest_write = datetime.fromtimestamp(time.time() - 60, UTC)
    diagnostic = freshness(f"/ahead/{offset}", {pick: pick})
    diagnostic["params"] = {"newest_write": {"type": "datetime", "description": "last write"}}
    diagnostic["expect"] = [{"metric": pick, "op": "ge", "value": {"$param": "newest_write"}}]
    payload = Harness(tmp_path, {"api": endpoint}).run(diagnostic, {"newest_write": newest_write})
    assert payload["verdict"] == verdict, payload
    if verdict == "error":
        assert f"{pick} cannot be judged" in payload["message"]
        assert "ahead of this machine's clock" in payload["message"]


def test_a_yes_or_no_compared_with_a_time_is_no_time(tmp_path: Path) -> None:
    """Attacker round I: `true != newest_write` passed ("t = True")."""
    from playbook.core.diagnostics import evaluate
    from playbook.core.model import Expectation

    expectation = Expectation.model_validate(
        {"metric": "t", "op": "ne", "value": {"$param": "newest_write"}}
    )
    verdict = evaluate(
        [expectation], {"t": True}, {"newest_write": datetime.now(UTC)}, now=time.time()
    )
    assert verdict.verdict == "error" and "t = True is not a time" in verdict.message
