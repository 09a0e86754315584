"""The prometheus adapter against a local stand-in of Prometheus' HTTP API.

The stand-in answers with the shapes the API documents
(https://prometheus.io/docs/prometheus/latest/querying/api/: the JSON envelope, instant
queries, the vector/scalar/string/matrix result formats, values as strings, error
objects with 400/422/503) and records every request it received, which the tests check
where it lands: the method, the path and the parameters the server got.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from numbers_harness import Harness

from playbook.adapters.prometheus.reader import PrometheusAdapter
from playbook.targets import Target

NOW = 1435781451.781


def vector(*samples: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": labels, "value": [NOW, value]} for labels, value in samples],
        },
    }


ANSWERS: dict[str, tuple[int, dict[str, Any]]] = {
    "disk_used_percent": (
        200,
        vector(
            ({"__name__": "disk_used_percent", "instance": "a:9100", "mountpoint": "/"}, "41.5"),
            ({"__name__": "disk_used_percent", "instance": "b:9100", "mountpoint": "/var"}, "95"),
        ),
    ),
    "ratio": (200, vector(({"job": "api"}, "0.93"))),
    "nan": (200, vector(({"job": "api"}, "NaN"))),
    "inf": (200, vector(({"job": "api"}, "+Inf"))),
    "garbage": (200, vector(({"job": "api"}, "0.9x"))),
    "label_clash": (200, vector(({"value": "l", "timestamp": "t"}, "1"))),
    "empty": (200, vector()),
    "scalar(1)": (
        200,
        {"status": "success", "data": {"resultType": "scalar", "result": [NOW, "1"]}},
    ),
    '"hello"': (
        200,
        {"status": "success", "data": {"resultType": "string", "result": [NOW, "hello"]}},
    ),
    "up[5m]": (
        200,
        {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [{"metric": {"job": "x"}, "values": [[NOW, "1"], [NOW + 15, "1"]]}],
            },
        },
    ),
    "sum(": (
        400,
        {
            "status": "error",
            "errorType": "bad_data",
            "error": "1:5: parse error: unclosed left parenthesis",
        },
    ),
    "warned": (
        200,
        {
            **vector(({"job": "api"}, "3")),
            "warnings": ["PromQL info: metric might not be a counter"],
        },
    ),
}


class StandIn(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, dict[str, list[str]]]]] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = parse_qs(url.query)
        StandIn.received.append(("GET", url.path, params))
        query = params.get("query", [""])[0]
        if query == "huge":
            body = json.dumps(vector(*[({"i": str(i)}, "1") for i in range(5000)])).encode()
            status = 200
        elif query == "echo":  # a server that quotes the request's credentials back
            auth = self.headers.get("Authorization", "")
            body = json.dumps(
                {"status": "error", "errorType": "bad_data", "error": f"denied for {auth}"}
            ).encode()
            status = 400
        elif query == "elsewhere":
            self.send_response(302)
            self.send_header("Location", "http://example.invalid/api/v1/query")
            self.end_headers()
            return
        else:
            status, doc = ANSWERS.get(query, (404, {"status": "error", "error": "unknown"}))
            body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # never used by playbook: recorded if it were
        StandIn.received.append(("POST", self.path, {}))
        self.send_response(405)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/prom"
    server.shutdown()
    server.server_close()


def prom(
    tmp_path: Path, base: str, promql: str, expect: list[dict[str, Any]] | None = None, **more: Any
) -> dict[str, Any]:
    h = Harness(tmp_path)
    h.targets = {"prom": Target("prom", base, "test")}
    StandIn.received.clear()
    given = more.pop("given", None)
    diagnostic = {
        "kind": "prometheus",
        "title": "prom",
        "target": "prom",
        "timeout": "10s",
        "query": {"promql": promql, **more.pop("query", {})},
        "expect": expect or [],
        **more,
    }
    return h.run(diagnostic, given)


def test_vector_samples_are_rows_with_labels_and_numbers(tmp_path: Path, base: str) -> None:
    at_most_90 = [{"metric": "value_max", "op": "le", "value": 90}]
    payload = prom(tmp_path, base, "disk_used_percent", at_most_90)
    assert payload["verdict"] == "fail", payload
    assert payload["metrics"]["value_max"] == 95 and payload["metrics"]["value_min"] == 41.5
    assert payload["metrics"]["count"] == 2
    rows = Harness.file_rows(payload)
    assert rows[1] == {
        "__name__": "disk_used_percent",
        "instance": "b:9100",
        "mountpoint": "/var",
        "timestamp": NOW,
        "value": 95,
    }
    method, path, params = StandIn.received[-1]
    assert (method, path) == ("GET", "/prom/api/v1/query")
    assert params["query"] == ["disk_used_percent"]
    timeout = params["timeout"][0]
    assert timeout.endswith("ms") and 0 < int(timeout[:-2]) <= 10_000  # our deadline


def test_several_samples_give_no_single_value(tmp_path: Path, base: str) -> None:
    payload = prom(
        tmp_path, base, "disk_used_percent", [{"metric": "value", "op": "le", "value": 90}]
    )
    assert payload["verdict"] == "error" and "value" in payload["message"]


def test_a_value_sent_as_a_string_is_a_number(tmp_path: Path, base: str) -> None:
    payload = prom(tmp_path, base, "ratio", [{"metric": "value", "op": "ge", "value": 0.99}])
    assert payload["verdict"] == "fail", payload
    assert payload["checks"][0]["actual"] == 0.93


@pytest.mark.parametrize(("query", "text"), [("nan", "NaN"), ("inf", "+Inf")])
def test_nan_and_inf_are_never_a_passing_number(
    tmp_path: Path, base: str, query: str, text: str
) -> None:
    payload = prom(tmp_path, base, query, [{"metric": "value", "op": "le", "value": 90}])
    assert payload["verdict"] == "error", payload
    assert payload["metrics"]["non_finite"] == 1
    assert Harness.file_rows(payload)[0]["value"] == text
    payload = prom(tmp_path, base, query, [{"metric": "non_finite", "op": "eq", "value": 0}])
    assert payload["verdict"] == "fail"


def test_a_value_that_is_no_number_is_an_error(tmp_path: Path, base: str) -> None:
    payload = prom(tmp_path, base, "garbage")
    assert payload["verdict"] == "error" and "0.9x" in payload["error"]


def test_labels_named_like_the_sample_fields_keep_both(tmp_path: Path, base: str) -> None:
    row = Harness.file_rows(prom(tmp_path, base, "label_clash"))[0]
    assert row == {"label_value": "l", "label_timestamp": "t", "timestamp": NOW, "value": 1}


def test_an_empty_vector_has_no_value(tmp_path: Path, base: str) -> None:
    payload = prom(tmp_path, base, "empty", [{"metric": "value", "op": "le", "value": 90}])
    assert payload["verdict"] == "error" and payload["metrics"]["count"] == 0
    payload = prom(tmp_path, base, "empty", [{"metric": "count", "op": "eq", "value": 0}])
    assert payload["verdict"] == "pass"


def test_scalar_and_string_results(tmp_path: Path, base: str) -> None:
    payload = prom(tmp_path, base, "scalar(1)", [{"metric": "value", "op": "eq", "value": 1}])
    assert payload["verdict"] == "pass", payload
    payload = prom(tmp_path, base, '"hello"')
    assert Harness.file_rows(payload) == [{"timestamp": NOW, "value": "hello"}]
    assert "value" not in payload["metrics"]


def test_a_range_vector_is_refused_with_a_clear_message(tmp_path: Path, base: str) -> None:
    payload = prom(tmp_path, base, "up[5m]")
    assert payload["verdict"] == "error"
    assert "instant queries only" in payload["error"] and "rate(" in payload["error"]


def test_an_api_error_is_quoted(tmp_path: Path, base: str) -> None:
    payload = prom(tmp_path, base, "sum(")
    assert payload["verdict"] == "error"
    assert "400 bad_data" in payload["error"] and "unclosed left parenthesis" in payload["error"]


def test_warnings_are_counted(tmp_path: Path, base: str) -> None:
    payload = prom(tmp_path, base, "warned", [{"metric": "warnings", "op": "eq", "value": 0}])
    assert payload["verdict"] == "fail" and payload["metrics"]["value"] == 3


def test_the_evaluation_time_is_sent(tmp_path: Path, base: str) -> None:
    payload = prom(
        tmp_path,
        base,
        "ratio",
        params={"at": {"type": "datetime"}},
        query={"time": {"$param": "at"}},
        given={"at": "2015-07-01T20:10:51.781Z"},
    )
    assert payload["verdict"] == "pass", payload
    assert StandIn.received[-1][2]["time"] == ["2015-07-01T20:10:51.781000+00:00"]


def test_a_redirect_to_another_host_is_not_followed(tmp_path: Path, base: str) -> None:
    payload = prom(tmp_path, base, "elsewhere")
    assert payload["verdict"] == "error" and "another host" in payload["error"]
    assert all(method == "GET" for method, _, _ in StandIn.received)


def test_an_answer_over_the_cap_is_an_error(
    tmp_path: Path, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PrometheusAdapter, "max_body", 10_000)
    payload = prom(tmp_path, base, "huge")
    assert payload["verdict"] == "error" and "at most" in payload["error"]
    assert payload["rows"] == []


def test_a_silent_server_ends_at_the_connect_timeout(tmp_path: Path) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    try:
        started = time.monotonic()
        payload = prom(
            tmp_path, f"http://127.0.0.1:{silent.getsockname()[1]}", "up", connect_timeout="1s"
        )
        assert time.monotonic() - started < 8
    finally:
        silent.close()
    assert payload["verdict"] == "error" and "connect timeout" in payload["error"]


def test_credentials_are_sent_but_never_shown(tmp_path: Path, base: str) -> None:
    import base64

    password = "Pr0m-s3cret-pw"
    with_auth = base.replace("http://", f"http://reader:{password}@")
    payload = prom(tmp_path, with_auth, "echo")
    assert payload["verdict"] == "error" and "denied for Basic " in payload["error"]  # sent
    token = base64.b64encode(f"reader:{password}".encode()).decode()
    written = "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in tmp_path.rglob("*") if p.is_file()
    )
    assert password not in written and token not in written
    assert password not in json.dumps(payload) and token not in json.dumps(payload)
