"""Numbers from shell output: a declared extractor turns a program's stdout into rows and
numbers, and an expectation decides on them. Each case runs a real program in the sandbox
through the service and reads the recorded evidence and its file on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from numbers_harness import Harness

from playbook.adapters.plugins import load_playbook
from playbook.core.loader import PlaybookInvalid
from playbook.errors import ExitCode

PRINTF = shutil.which("printf", path="/usr/bin:/bin")
DF_AT_95 = "Use%\n 95%\n"
"""What `df --output=pcent /var` prints when /var is 95 % full."""


def printing(text: str, extract: dict[str, Any], expect: list[dict[str, Any]] | None = None):
    return {
        "kind": "shell",
        "title": "prints",
        "target": "local",
        "timeout": "20s",
        "argv": [PRINTF, "%s", text],
        "extract": extract,
        "expect": expect or [],
    }


DF_EXTRACT = {
    "columns": ["use_percent"],
    "skip": 1,
    "fields": {"use_percent": {"as": "number", "strip": "%"}},
}
AT_MOST_90 = [{"metric": "use_percent", "op": "le", "value": 90}]


def test_df_at_95_percent_fails_an_expectation_of_at_most_90(tmp_path: Path) -> None:
    payload = Harness(tmp_path).run(printing(DF_AT_95, DF_EXTRACT, AT_MOST_90))
    assert payload["verdict"] == "fail", payload
    assert payload["metrics"]["use_percent"] == 95
    assert payload["checks"][0]["actual"] == 95
    assert Harness.file_rows(payload) == [{"use_percent": 95}]


def test_df_at_80_percent_passes(tmp_path: Path) -> None:
    payload = Harness(tmp_path).run(printing("Use%\n 80%\n", DF_EXTRACT, AT_MOST_90))
    assert payload["verdict"] == "pass", payload


def test_real_df_gives_a_number(tmp_path: Path) -> None:
    """The real program: whatever /usr is filled to, it is a number from 0 to 100."""
    df = shutil.which("df", path="/usr/bin:/bin")
    diagnostic = {**printing("", DF_EXTRACT, AT_MOST_90), "argv": [df, "--output=pcent", "/usr"]}
    payload = Harness(tmp_path).run(diagnostic)
    assert payload["verdict"] in ("pass", "fail"), payload
    assert 0 <= payload["metrics"]["use_percent"] <= 100


def test_garbage_where_a_number_is_declared_is_an_error_naming_column_and_text(
    tmp_path: Path,
) -> None:
    payload = Harness(tmp_path).run(printing("Use%\n 9five%\n", DF_EXTRACT, AT_MOST_90))
    assert payload["verdict"] == "error"
    assert "use_percent" in payload["error"] and "9five" in payload["error"]
    assert "use_percent" not in payload["metrics"]
    # the evidence keeps the output the extractor could not read
    assert Harness.file_rows(payload) == [{"line": "Use%"}, {"line": " 9five%"}]


@pytest.mark.parametrize("text", ["95.5.1", "1_000", "NaN", "inf", "0x5f", "+95", "٩٥"])
def test_numbers_are_read_strictly(tmp_path: Path, text: str) -> None:
    payload = Harness(tmp_path).run(printing(f"Use%\n{text}\n", DF_EXTRACT, AT_MOST_90))
    assert payload["verdict"] == "error", (text, payload)


def test_several_rows_give_min_and_max_and_no_single_value(tmp_path: Path) -> None:
    """A check on `use_percent` of many filesystems never looks at the first only."""
    out = "Filesystem Use% Mounted on\n/dev/a 40% /\n/dev/b 95% /var/lib/my data\n"
    extract = {
        "columns": ["filesystem", "use_percent", "mount"],
        "skip": 1,
        "fields": {"use_percent": {"as": "number", "strip": "%"}},
    }
    h = Harness(tmp_path)
    payload = h.run(printing(out, extract, AT_MOST_90))
    assert payload["verdict"] == "error"  # use_percent is ambiguous: not a pass
    assert "use_percent" in payload["message"]
    assert payload["metrics"]["use_percent_max"] == 95
    assert payload["metrics"]["use_percent_min"] == 40
    assert h.file_rows(payload)[1] == {
        "filesystem": "/dev/b",
        "use_percent": 95,
        "mount": "/var/lib/my data",
    }
    worst = [{"metric": "use_percent_max", "op": "le", "value": 90}]
    assert h.run(printing(out, extract, worst))["verdict"] == "fail"


def test_a_line_missing_a_column_is_an_error(tmp_path: Path) -> None:
    extract = {"columns": ["a", "b", "c"]}
    payload = Harness(tmp_path).run(printing("1 2 3\n4 5\n", extract))
    assert payload["verdict"] == "error"
    assert "line 2" in payload["error"]


def test_regex_named_groups_one_row_per_match(tmp_path: Path) -> None:
    extract = {
        "regex": r"(?P<disk>sd[a-z]) (?P<errors>[0-9]+)",
        "fields": {"errors": {"as": "number"}},
    }
    out = "sda 0 sdb 7\nnoise\nsdc 2\n"
    h = Harness(tmp_path)
    payload = h.run(printing(out, extract, [{"metric": "errors_max", "op": "eq", "value": 0}]))
    assert payload["verdict"] == "fail"
    assert h.file_rows(payload) == [
        {"disk": "sda", "errors": 0},
        {"disk": "sdb", "errors": 7},
        {"disk": "sdc", "errors": 2},
    ]
    assert payload["metrics"]["count"] == 3


def test_json_path_rows_and_string_numbers(tmp_path: Path) -> None:
    doc = {
        "items": [{"name": "a", "usage": {"ratio": "0.93"}}, {"name": "b", "usage": {"ratio": 0.5}}]
    }
    extract = {
        "json": {"path": "items.*"},
        "fields": {"name": {}, "ratio": {"as": "number", "path": "usage.ratio"}},
    }
    h = Harness(tmp_path)
    payload = h.run(
        printing(json.dumps(doc), extract, [{"metric": "ratio_max", "op": "lt", "value": 0.9}])
    )
    assert payload["verdict"] == "fail", payload
    assert h.file_rows(payload) == [{"name": "a", "ratio": 0.93}, {"name": "b", "ratio": 0.5}]


def test_json_longer_than_a_line_is_read_whole(tmp_path: Path) -> None:
    """A compact JSON document of 100 kB is one line; it is not cut at 4,000 bytes."""
    doc = {"items": [{"n": i, "pad": "x" * 100} for i in range(1000)]}
    extract = {"json": {"path": "items.*"}, "fields": {"n": {"as": "number"}}}
    payload = Harness(tmp_path).run(printing(json.dumps(doc), extract))
    assert payload["verdict"] == "pass", payload
    assert payload["metrics"]["count"] == 1000 and payload["metrics"]["n_max"] == 999


def test_output_that_is_not_json_is_an_error(tmp_path: Path) -> None:
    extract = {"json": {"path": ""}, "fields": {"n": {"as": "number"}}}
    payload = Harness(tmp_path).run(printing("<html>", extract))
    assert payload["verdict"] == "error" and "not JSON" in payload["error"]


@pytest.mark.parametrize(
    ("extract", "says"),
    [
        ({"regex": "[0-9]+"}, "name each group"),
        ({"regex": "(?P<x>"}, "not a regular expression"),
        ({"columns": ["a"], "regex": "(?P<a>.)"}, "exactly one"),
        ({"columns": ["count"]}, "sets itself"),
        ({"columns": ["a"], "fields": {"b": {"as": "number"}}}, "not a column"),
        ({"columns": ["a"], "fields": {"a": {"as": "float"}}}, "as"),
    ],
)
def test_a_bad_extractor_is_refused_when_the_playbook_loads(
    tmp_path: Path, extract: dict[str, Any], says: str
) -> None:
    path = Harness(tmp_path).playbook(printing("", extract))
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook(path)
    assert says in caught.value.message


def _matchers_alive() -> int:
    """Child interpreters of the regex extractor still running on this machine."""
    alive = 0
    for proc in Path("/proc").iterdir():
        try:
            if b"rx, rows = re.compile" in (proc / "cmdline").read_bytes():
                alive += 1
        except OSError:
            continue
    return alive


def test_a_regex_that_backtracks_forever_ends_at_the_deadline(tmp_path: Path) -> None:
    """Python's re cannot be interrupted; the match runs in a child the deadline kills."""
    import time

    extract = {"regex": r"(?P<x>(a+)+$)"}
    diagnostic = {**printing("a" * 40 + "!\n", extract), "timeout": "2s"}
    started = time.monotonic()
    payload = Harness(tmp_path).run(diagnostic)
    assert time.monotonic() - started < 10
    assert payload["verdict"] == "error" and "deadline" in payload["error"], payload
    assert _matchers_alive() == 0


def test_a_regex_matching_everywhere_is_stopped(tmp_path: Path) -> None:
    diagnostic = printing("", {"regex": r"(?P<x>a*)"})
    diagnostic["argv"] = [PRINTF, "%s\n", *["x" * 3999] * 30]  # 4,000 empty matches a line
    payload = Harness(tmp_path).run(diagnostic)
    assert payload["verdict"] == "error" and "more than" in payload["error"], payload


def test_the_cli_shows_the_failing_number(tmp_path: Path, cli: Any) -> None:
    """`playbook diag run` end to end: df at 95 % is a FAIL with the number that decided."""
    path = Harness(tmp_path).playbook(printing(DF_AT_95, DF_EXTRACT, AT_MOST_90))
    opened = cli("open", str(path), "--title", "disk", "--json")
    incident = json.loads(opened.output)["id"]
    result = cli("diag", "run", incident, "check", "--target", "local=local:")
    assert "FAIL" in result.output and "use_percent = 95 (healthy: <= 90)" in result.output, (
        result.output
    )
    assert result.exit_code == ExitCode.UNHEALTHY
