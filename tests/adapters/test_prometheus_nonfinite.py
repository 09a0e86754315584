"""Prometheus answers holding values that are no finite number, and a query given as a
parameter.

A stand-in server sends the raw bodies (Python's json would write an infinity as
``Infinity``, which is not what a server sends); each case checks what was recorded in
the incident's log and in the evidence file on disk, and what the server received.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from numbers_harness import Harness

from playbook.adapters.base import Refused
from playbook.adapters.plugins import load_playbook
from playbook.targets import Target


def _vector(*samples: str) -> bytes:
    result = ",".join(f'{{"metric":{{"i":"{n}"}},"value":{s}}}' for n, s in enumerate(samples))
    return f'{{"status":"success","data":{{"resultType":"vector","result":[{result}]}}}}'.encode()


BODIES = {
    "five_then_nan": _vector('[1,"5"]', '[1,"NaN"]'),
    "nan_then_five": _vector('[1,"NaN"]', '[1,"5"]'),
    "five_and_two_inf": _vector('[1,"5"]', '[1,"+Inf"]', '[1,"-Inf"]'),
    "five_and_six": _vector('[1,"5"]', '[1,"6"]'),
    "huge_time": _vector('[1e999,"5"]'),
    "huge_label": (
        b'{"status":"success","data":{"resultType":"vector","result":'
        b'[{"metric":{"a":1e999},"value":[1,"5"]}]}}'
    ),
}


class StandIn(BaseHTTPRequestHandler):
    received: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query).get("query", [""])[0]
        StandIn.received.append(query)
        body = BODIES.get(query, _vector('[1,"1"]'))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def prom(
    tmp_path: Path,
    base: str,
    promql: Any,
    expect: list[dict[str, Any]],
    params: dict[str, Any] | None = None,
    given: dict[str, object] | None = None,
) -> dict[str, Any]:
    h = Harness(tmp_path)
    h.targets = {"prom": Target("prom", base, "test")}
    StandIn.received.clear()
    diagnostic = {
        "kind": "prometheus",
        "title": "prom",
        "target": "prom",
        "timeout": "10s",
        "query": {"promql": promql},
        "expect": expect,
        **({"params": params} if params else {}),
    }
    return h.run(diagnostic, given)


def strict_rows(payload: dict[str, Any]) -> list[Any]:
    """The evidence file's rows read as JSON proper: NaN or Infinity would raise."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the evidence file")

    text = Path(payload["file"]).read_text()
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


@pytest.mark.parametrize("query", ["five_then_nan", "nan_then_five"])
@pytest.mark.parametrize("metric", ["value_max", "value_min", "value"])
def test_a_nan_sample_makes_the_extremes_undefined_never_a_pass(
    tmp_path: Path, base: str, query: str, metric: str
) -> None:
    payload = prom(tmp_path, base, query, [{"metric": metric, "op": "le", "value": 90}])
    assert payload["verdict"] == "error", payload
    assert f"{metric} is undefined: 1 value" in payload["message"]
    assert "not a finite number" in payload["message"]
    assert "value_max" not in payload["metrics"] and "value_min" not in payload["metrics"]
    assert payload["metrics"]["non_finite"] == 1
    assert payload["metrics"]["value_non_finite"] == 1
    assert sorted(str(r["value"]) for r in strict_rows(payload)) == ["5", "NaN"]


def test_infinities_are_counted_and_the_check_is_an_error(tmp_path: Path, base: str) -> None:
    payload = prom(
        tmp_path, base, "five_and_two_inf", [{"metric": "value_min", "op": "ge", "value": 0}]
    )
    assert payload["verdict"] == "error", payload
    assert "2 values of 'value' are not a finite number" in payload["message"]


def test_other_numbers_still_decide(tmp_path: Path, base: str) -> None:
    """`count` is a number of samples whatever their values: it still passes or fails."""
    payload = prom(tmp_path, base, "five_then_nan", [{"metric": "count", "op": "eq", "value": 2}])
    assert payload["verdict"] == "pass", payload


def test_an_undefined_extreme_is_an_error_even_beside_a_failure(tmp_path: Path, base: str) -> None:
    expect = [
        {"metric": "count", "op": "eq", "value": 9},
        {"metric": "value_max", "op": "le", "value": 90},
    ]
    payload = prom(tmp_path, base, "five_then_nan", expect)
    assert payload["verdict"] == "error", payload


def test_finite_samples_keep_their_extremes(tmp_path: Path, base: str) -> None:
    payload = prom(
        tmp_path, base, "five_and_six", [{"metric": "value_max", "op": "le", "value": 90}]
    )
    assert payload["verdict"] == "pass", payload
    assert payload["metrics"]["value_max"] == 6 and "value_non_finite" not in payload["metrics"]


def test_a_timestamp_past_a_float_is_an_error_naming_it(tmp_path: Path, base: str) -> None:
    payload = prom(tmp_path, base, "huge_time", [{"metric": "value", "op": "le", "value": 90}])
    assert payload["verdict"] == "error", payload  # recorded: Harness reads it back
    assert "timestamp" in payload["error"] and "1e999" in payload["error"]
    assert strict_rows(payload) == []


def test_a_label_past_a_float_is_kept_as_its_text(tmp_path: Path, base: str) -> None:
    payload = prom(tmp_path, base, "huge_label", [{"metric": "value", "op": "le", "value": 90}])
    assert payload["verdict"] == "pass", payload
    assert strict_rows(payload)[0]["a"] == "1e999"
    assert payload["rows"][0]["a"] == "1e999"


def test_a_query_given_as_a_parameter_loads_and_reaches_the_server(
    tmp_path: Path, base: str
) -> None:
    """The schema offers {$param: q} for promql: the model takes it too."""
    h = Harness(tmp_path)
    diagnostic = {
        "kind": "prometheus",
        "title": "p",
        "target": "prom",
        "params": {"q": {"type": "string"}},
        "query": {"promql": {"$param": "q"}},
    }
    assert (
        load_playbook(h.playbook(diagnostic)).playbook.diagnostics["check"].query.promql.param
        == "q"
    )
    payload = prom(
        tmp_path,
        base,
        {"$param": "q"},
        [{"metric": "value", "op": "eq", "value": 1}],
        params={"q": {"type": "string"}},
        given={"q": "up{job='x'}"},
    )
    assert payload["verdict"] == "pass", payload
    assert StandIn.received == ["up{job='x'}"]


def test_a_parameter_longer_than_an_expression_may_be_is_refused(tmp_path: Path, base: str) -> None:
    with pytest.raises(Refused, match="at most 10,000 characters"):
        prom(
            tmp_path,
            base,
            {"$param": "q"},
            [],
            params={"q": {"type": "string"}},
            given={"q": "x" * 10_001},
        )
    assert StandIn.received == []
