"""HTTP values declared `as: number`: a JSON string such as "0.93" becomes 0.93, and a
value that is no number is an error naming the pick, never a pass. Run through the
service against a local stand-in server; the recorded evidence is checked."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from numbers_harness import Harness

from playbook.adapters.plugins import load_playbook
from playbook.core.loader import PlaybookInvalid
from playbook.targets import Target

DOC = {
    "data": {
        "ratio": "0.93",
        "pct": "95%",
        "n": 5,
        "blank": " 95% ",
        "newline": "5\n",
        "huge": 0,  # sent as 1e999 (see Handler): Python writes inf as Infinity
        "bad": "0.9x",
        "flag": True,
        "nothing": None,
        "nan": "NaN",
        "items": [1, 2],
    }
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(DOC).replace('"huge": 0', '"huge": 1e999').encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def http(tmp_path: Path, base: str, pick: dict[str, Any], expect: list[Any] | None = None):
    h = Harness(tmp_path)
    h.targets = {"api": Target("api", base, "test")}
    diagnostic = {
        "kind": "http",
        "title": "api",
        "target": "api",
        "timeout": "10s",
        "query": {"path": "/stats", "pick": pick},
        "expect": expect or [],
    }
    return h.run(diagnostic)


def test_a_string_declared_a_number_is_compared_as_one(tmp_path: Path, base: str) -> None:
    pick = {"ratio": {"path": "data.ratio", "as": "number"}}
    payload = http(tmp_path, base, pick, [{"metric": "ratio", "op": "ge", "value": 0.99}])
    assert payload["verdict"] == "fail", payload
    assert payload["checks"][0]["actual"] == 0.93
    assert Harness.file_rows(payload)[0]["ratio"] == 0.93


def test_without_the_declaration_a_string_gives_no_number(tmp_path: Path, base: str) -> None:
    payload = http(
        tmp_path, base, {"ratio": "data.ratio"}, [{"metric": "ratio", "op": "ge", "value": 0.99}]
    )
    assert payload["verdict"] == "error"  # as before: no number, never a pass


def test_strip_and_json_numbers(tmp_path: Path, base: str) -> None:
    pick = {
        "pct": {"path": "data.pct", "as": "number", "strip": "%"},
        "n": {"path": "data.n", "as": "number"},
    }
    payload = http(tmp_path, base, pick, [{"metric": "pct", "op": "le", "value": 90}])
    assert payload["verdict"] == "fail"
    assert payload["metrics"]["pct"] == 95 and payload["metrics"]["n"] == 5


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("data.bad", "0.9x"),
        ("data.flag", "true"),
        ("data.nothing", "null"),
        ("data.nan", "NaN"),
        ("data.items", "a list of 2"),
        # blanks are no digits: the doc promises ASCII digits, as everywhere else
        ("data.blank", " 95% "),
        ("data.newline", r"5\\n"),  # escaped once, then quoted
        ("data.huge", "inf"),  # 1e999, read by Python as inf: no number of anything
    ],
)
def test_a_value_that_is_no_number_is_an_error_naming_the_pick(
    tmp_path: Path, base: str, path: str, shown: str
) -> None:
    payload = http(tmp_path, base, {"ratio": {"path": path, "as": "number"}})
    assert payload["verdict"] == "error", payload
    assert "'ratio'" in payload["error"] and shown in payload["error"]
    assert "ratio" not in payload["metrics"]


def test_an_unknown_declaration_is_refused_when_the_playbook_loads(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    path = h.playbook(
        {
            "kind": "http",
            "title": "api",
            "target": "api",
            "query": {"pick": {"ratio": {"path": "data.ratio", "as": "float"}}},
        }
    )
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook(path)
    assert "pick" in caught.value.message


def test_strip_removes_only_what_it_names(tmp_path: Path, base: str) -> None:
    """`strip: "%"` makes "95%" 95; the blanks of " 95% " are still no digits."""
    pick = {"pct": {"path": "data.blank", "as": "number", "strip": "%"}}
    payload = http(tmp_path, base, pick, [{"metric": "pct", "op": "le", "value": 99}])
    assert payload["verdict"] == "error", payload
    assert "pct" not in payload["metrics"]
