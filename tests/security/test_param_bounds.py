"""A parameter, or a default an earlier run's number gave it, that no type can hold is a
usage error naming the parameter (exit 2), never an internal error (exit 70), and
nothing is recorded. Parameters are untrusted, and so is what a database or endpoint
returned.

Each case runs `playbook diag run` against a local endpoint and then reads the log.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import Cli

PLAYBOOK = """\
version: 1
id: params
title: Params
service: Svc
severity:
  default: P2
  levels:
    - {id: P2, name: High, response: 1h, resolution: 8h, status_update_every: 1h}
  escalation_path: [A]
assessment:
  id: assessment
  title: A
  steps:
    - {id: s1, title: S1, items: [x]}
phases:
  - id: p1
    title: P1
    stage: investigation
    starts: 0m
    ends: 1h
    steps:
      - {id: st, title: St, items: [y]}
diagnostics:
  newest-write:
    kind: http
    title: a number the endpoint decides
    target: api
    query: {path: /huge, pick: {newest_write: n}}
  backup-freshness:
    kind: http
    title: a time compared with that number
    target: api
    params:
      newest_write: {type: datetime, default_from: newest-write.newest_write}
      count: {type: int, default: 1}
      ratio: {type: float, default: 0.5}
    query: {path: /ok, pick: {backup_time: timestamp}}
    expect:
      - {metric: backup_time, op: ge, value: {$param: newest_write}}
"""


class _Api(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        doc = {"n": 1e300} if self.path == "/huge" else {"timestamp": "2025-01-01T00:00:00Z"}
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def api() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def incident(cli: Cli, tmp_path: Path, api: int) -> str:
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "playbook"
    config.mkdir(parents=True, exist_ok=True)
    (config / "playbook.toml").write_text(f'[targets]\napi = "http://127.0.0.1:{api}"\n')
    book = tmp_path / "rb" / "params.yaml"
    book.parent.mkdir()
    book.write_text(PLAYBOOK)
    return str(json.loads(cli("open", str(book), "-t", "x", "--json").output)["id"])


def recorded(cli: Cli, incident: str) -> list[str]:
    timeline = cli("timeline", incident, "--json")
    return [e["type"] for e in json.loads(timeline.output)]


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ("newest_write=9999-12-31T23:59:59-14:00", "newest_write"),  # past year 9999 in UTC
        ("newest_write=0001-01-01T00:00:00+14:00", "newest_write"),  # before year 1 in UTC
        ("count=" + "9" * 5000, "count"),  # Python refuses to read past 4,300 digits
        ("count=99999999999999999999", "count"),  # past 64 bits
        ("ratio=nan", "ratio"),
        ("ratio=inf", "ratio"),
    ],
    ids=["after-9999", "before-1", "5000-digits", "past-64-bits", "nan", "inf"],
)
def test_a_parameter_out_of_range_is_a_usage_error_naming_it(
    cli: Cli, incident: str, given: str, named: str
) -> None:
    before = recorded(cli, incident)
    result = cli("diag", "run", incident, "backup-freshness", "--set", given)
    assert result.exit_code == 2, result.output
    assert f"Parameter {named!r}" in result.output
    assert "internal error" not in result.output
    assert recorded(cli, incident) == before  # nothing was run, nothing recorded


def test_a_default_from_a_number_no_time_can_hold_is_a_usage_error(cli: Cli, incident: str) -> None:
    first = cli("diag", "run", incident, "newest-write", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["metrics"]["newest_write"] == 1e300  # the endpoint's
    before = recorded(cli, incident)
    result = cli("diag", "run", incident, "backup-freshness")
    assert result.exit_code == 2, result.output
    assert "Parameter 'newest_write' is out of range" in result.output
    assert "internal error" not in result.output
    assert recorded(cli, incident) == before
    fine = cli(
        "diag", "run", incident, "backup-freshness", "--set", "newest_write=2024-01-01T00:00:00Z"
    )
    assert fine.exit_code == 0, fine.output  # a time the responder gives still runs
