"""Bounds that hold (issue 12, parts 5 and 7): durations, templates, big Redis replies, order.

Each case is checked where it lands: the exit code and the file:line:key `validate`
prints; the watchdog thread itself; the time a real `playbook status` process took
against its budget; the peak RSS of a child process that ran a diagnostic over a
300 MB value, and the run's own elapsed time against its deadline; the bytes of the
result file against the server's; the order of the rows a diagnostic recorded after
its playbook went through the SQLite log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mongomock
import pytest
from conftest import Cli
from helpers import ROOT, run_playbook
from servers import RedisServer, redis_server

from playbook.adapters.base import RunContext
from playbook.adapters.mongo.reader import MongoAdapter
from playbook.adapters.redis.values import MAX_REPLY
from playbook.core.durations import MAX_RUN_SECONDS, MAX_TARGET
from playbook.errors import TemplateError
from playbook.render import templates
from playbook.render.templates import MAX_ITERATIONS, MAX_OUTPUT, MAX_SECONDS, render
from playbook.service import Service
from playbook.store.sqlite import DB_NAME, SQLiteStore

BIG = 300 * 2**20
"""The size of the value seed-like attacks stored: 300 MB."""
RSS_LIMIT_MB = 200
"""Peak RSS a child may reach over a 300 MB value (it took 2.2 GB before the cap)."""


# --------------------------------------------------------------------------- durations


@pytest.fixture
def runbooks(tmp_path: Path) -> Path:
    """A copy of the shipped runbooks and templates, laid out as shipped, to edit."""
    shutil.copytree(ROOT / "runbooks", tmp_path / "runbooks")
    return tmp_path / "runbooks"


def edited(runbooks: Path, after: str, anchor: str, insert: str) -> Path:
    """data-integrity.yaml with ``insert`` put after the first ``anchor`` line that
    follows ``after``."""
    path = runbooks / "data-integrity.yaml"
    text = path.read_text()
    start = text.index(after)
    at = text.index(anchor, start) + len(anchor)
    path.write_text(text[:at] + insert + text[at:])
    return path


PROBLEM = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<key>[^:]+): (?P<msg>.+)$")


@pytest.mark.parametrize(
    ("after", "anchor", "insert", "key", "says"),
    [
        (
            "  redis-index-drop:\n",
            "    target: cache\n",
            "    timeout: 99999999999999d\n",
            "diagnostics.redis-index-drop.timeout",
            "a diagnostic's timeout may be at most 1h 00m; this one is 99,999,999,999,999 days",
        ),
        (
            "  redis-index-drop:\n",
            "    target: cache\n",
            "    connect_timeout: 11m\n",
            "diagnostics.redis-index-drop.connect_timeout",
            "a connect timeout may be at most 10m 00s",
        ),
        (
            "  redis-index-drop:\n",
            "    target: cache\n",
            "    timeout: 0s\n",
            "diagnostics.redis-index-drop.timeout",
            "a diagnostic's timeout must be at least 1s",
        ),
        (
            "  rebuild-indexes:\n",
            "    target: cache\n",
            "    timeout: 7h\n",
            "actions.rebuild-indexes.timeout",
            "an action's timeout may be at most 6h 00m",
        ),
        (
            "levels:\n",
            "      status_update_every: 30m\n",
            "",
            "severity.levels[0].response",
            "a target may be at most 30d 00h; this one is 31d 00h",
        ),
    ],
    ids=["diagnostic-timeout", "connect-timeout", "zero-timeout", "action-timeout", "target"],
)
def test_validate_refuses_a_duration_past_its_limit_with_file_line_and_key(
    runbooks: Path, after: str, anchor: str, insert: str, key: str, says: str
) -> None:
    path = edited(runbooks, after, anchor, insert)
    if key.startswith("severity"):
        path.write_text(path.read_text().replace("response: 15m", "response: 31d", 1))
    result = run_playbook("validate", str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    problems = [PROBLEM.match(line) for line in result.stderr.splitlines()]
    found = [m for m in problems if m and m["key"] == key]
    assert found, result.stderr
    assert found[0]["file"] == str(path) and says in found[0]["msg"]
    line = path.read_text().splitlines()[int(found[0]["line"]) - 1]
    assert key.rsplit(".", 1)[1] in line  # the line named is the one that says it


def test_a_lock_ttl_past_an_hour_is_refused(runbooks: Path) -> None:
    path = runbooks / "data-integrity.yaml"
    path.write_text(path.read_text().replace("ttl: 10m}", "ttl: 2h}"))
    result = run_playbook("validate", str(path))
    assert result.returncode == 1
    assert "actions.rebuild-indexes.lock.ttl: a lock's TTL may be at most 1h 00m" in result.stderr


def test_a_watchdog_given_an_overflowing_deadline_still_runs_and_fires() -> None:
    died: list[BaseException] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: died.append(args.exc_value)  # type: ignore[assignment]
    try:
        ctx = RunContext(99_999_999_999_999 * 86_400.0, float("inf"))
        fired = threading.Event()
        ctx.on_stop(fired.set)
        assert ctx.timeout == MAX_RUN_SECONDS and ctx.connect_timeout == MAX_RUN_SECONDS
        assert ctx._timer.is_alive() and ctx._connect_timer.is_alive()  # the watchdogs live
        ctx.cancel()
        assert fired.wait(5)
        ctx.finish()
        ctx._timer.join(5)
    finally:
        threading.excepthook = previous
    assert died == []  # no OverflowError in a timer thread


def test_an_old_incident_with_overflowing_durations_still_shows_and_runs_clamped(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    opened = run_playbook("--data-dir", str(home), "open", "--title", "old", "--json")
    incident = json.loads(opened.stdout)["id"]
    with sqlite3.connect(home / DB_NAME) as con:  # as an older version could have written it
        (text,) = con.execute("SELECT payload FROM events WHERE seq = 1").fetchone()
        payload = json.loads(text)
        huge = 99_999_999_999_999 * 86_400
        for level in payload["snapshot"]["severity"]["levels"]:
            level["response"] = huge
        payload["snapshot"]["diagnostics"]["redis-index-drop"]["timeout"] = huge
        con.execute("UPDATE events SET payload = ? WHERE seq = 1", (json.dumps(payload),))
    shown = run_playbook("--data-dir", str(home), "show", incident, "--json")
    assert shown.returncode == 0, shown.stderr  # it overflowed the timers' datetimes before
    assert json.loads(shown.stdout)["timers"]["response"]["target_seconds"] == MAX_TARGET
    store = SQLiteStore(home)
    try:
        service = Service(store)
        pb = service.playbook_of(service.get(incident).state)
        assert pb.diagnostics["redis-index-drop"].timeout == 3600
    finally:
        store.close()


# --------------------------------------------------------------------------- templates


ATTACKS = {
    "nested-loops": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}x",
    "silent-loops": "{% set s = 'abcdefghij' %}"
    + "{% for a in s %}" * 7
    + "{% endfor %}" * 7
    + "x",
    "recursive-macro": "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
    "recursive-loop": "{% for x in [[1]] recursive %}{{ loop([x]) }}{% endfor %}",
    "self-include": '{% include "attack.j2" %}',
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_hostile_template_is_stopped_within_the_budget_naming_itself(
    tmp_path: Path, attack: str
) -> None:
    (tmp_path / "attack.j2").write_text(ATTACKS[attack])
    began = time.monotonic()
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, "attack.j2", {})
    elapsed = time.monotonic() - began
    assert elapsed / MAX_SECONDS < 1.5, f"{elapsed:.2f} s for a {MAX_SECONDS} s budget"
    assert "'attack.j2'" in caught.value.title and "stopped" in caught.value.title


def test_output_is_counted_while_rendering_not_after(tmp_path: Path) -> None:
    # 100,000 x 8,000 characters: 800 MB if it were rendered before being measured.
    (tmp_path / "flood.j2").write_text("{% for i in range(100000) %}{{ 'x' * 8000 }}{% endfor %}")
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match=f"over {MAX_OUTPUT:,} characters"):
            render(tmp_path, "flood.j2", {})
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"peak {peak:,} bytes"


@pytest.mark.parametrize(
    "source",
    ["{{ 'x'|center(100000000) }}", "{{ '%100000000s' % 'a' }}", "{{ '{:>100000000}'.format(1) }}"],
    ids=["filter-width", "percent-width", "format-width"],
)
def test_a_huge_width_is_refused_before_the_value_is_built(tmp_path: Path, source: str) -> None:
    (tmp_path / "wide.j2").write_text(source)
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match="too large a value"):
            render(tmp_path, "wide.j2", {})
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, f"peak {peak:,} bytes"  # 100 MB if the string were built


def test_status_with_a_hanging_template_ends_within_its_budget(runbooks: Path) -> None:
    home = runbooks.parent / "home"
    template = runbooks / "templates" / "data-integrity" / "initial.txt.j2"
    template.write_text(ATTACKS["nested-loops"])
    opened = run_playbook(
        "--data-dir", str(home), "open", str(runbooks / "data-integrity.yaml"), "-t", "x", "--json"
    )
    incident = json.loads(opened.stdout)["id"]
    began = time.monotonic()
    result = run_playbook(
        "--data-dir", str(home), "status", incident, "initial", "--set", "specific_issues=x"
    )
    elapsed = time.monotonic() - began
    assert result.returncode == 6, result.stderr
    assert "initial.txt.j2" in result.stderr and "its loops ran more than" in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 10 * MAX_SECONDS  # process start-up included; it hung for ever before
    events = json.loads(
        run_playbook("--data-dir", str(home), "timeline", incident, "--json").stdout
    )
    assert [e["type"] for e in events] == ["opened"]  # nothing recorded
    assert MAX_ITERATIONS <= 100_000


def test_the_budget_lets_the_shipped_templates_render(service) -> None:
    incident = service.open(None, "x").id
    _state, text = service.status(incident, "initial", {"specific_issues": "missing orders"})
    assert text.startswith("[SERVICE ISSUE]")
    assert templates._BUDGET.get() is None  # the budget does not leak out of a render


# --------------------------------------------------------------------------- Redis


CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from playbook.adapters.base import RunContext, RunError, RunRequest, Sink
    from playbook.adapters.redis.reader import RedisAdapter

    uri, query, path, timeout = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    ctx = RunContext(timeout, 5)
    sink = Sink(Path(path))
    began = time.monotonic()
    metrics, error = {}, ""
    try:
        metrics = RedisAdapter().run(RunRequest("t", query, uri), ctx, sink)
    except RunError as exc:
        error = exc.title
    finally:
        ctx.finish()
    elapsed = time.monotonic() - began
    sink.close()
    # VmHWM: this process's own peak RSS. (getrusage's ru_maxrss keeps the peak of the
    # process that forked it, pytest, across exec.)
    status = Path("/proc/self/status").read_text()
    hwm = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1])
    print(json.dumps({
        "metrics": metrics, "error": error, "elapsed": elapsed, "rows": sink.rows,
        "peak_mb": hwm / 1024,
    }))
    """
)


def measured(uri: str, query: dict[str, Any], path: Path, timeout: float = 120) -> dict[str, Any]:
    """Run one diagnostic in a child process: its metrics, error, elapsed and peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, uri, json.dumps(query), str(path), str(timeout)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def big() -> Iterator[tuple[RedisServer, str]]:
    """A server holding one 300 MB binary value at ``big:value``; yields its SHA-256."""
    with redis_server() as srv:
        client = srv.client()
        digest = hashlib.sha256()
        client.set("big:value", b"")
        block = bytes(range(256)) * (4 * 2**12)  # 4 MB, not UTF-8: stored as base64
        for _ in range(BIG // len(block)):
            client.append("big:value", block)
            digest.update(block)
        client.set("small:one", "hello")
        client.close()
        yield srv, digest.hexdigest()


def test_a_300_mb_value_is_streamed_to_the_file_with_bounded_memory(
    big: tuple[RedisServer, str], tmp_path: Path
) -> None:
    srv, digest = big
    path = tmp_path / "snapshot.jsonl"
    run = measured(srv.uri, {"op": "snapshot", "pattern": "*"}, path)
    assert run["error"] == "", run
    assert run["metrics"]["count"] == 2 and run["metrics"]["streamed_keys"] == 1
    assert run["peak_mb"] < RSS_LIMIT_MB, f"peak RSS {run['peak_mb']:.0f} MB"
    # The file holds the value exactly: decode it in pieces and compare with the server's.
    found = hashlib.sha256()
    marker = b'"big:value","type":"string","ttl_ms":-1,"streamed":true,"value":{"$base64":"'
    with path.open("rb") as f:
        head = f.read(2**16)
        f.seek(head.index(marker) + len(marker))
        pending = b""
        while chunk := f.read(4 * 2**20):
            text = pending + chunk.split(b'"', 1)[0]
            whole = len(text) - len(text) % 4
            found.update(base64.b64decode(text[:whole]))
            pending = text[whole:]
            if b'"' in chunk:
                break
    assert pending == b""
    assert found.hexdigest() == digest
    assert next(r for r in run["rows"] if r["key"] == "big:value")["streamed"] is True


def test_a_300_mb_value_stops_at_the_deadline_leaving_whole_lines(
    big: tuple[RedisServer, str], tmp_path: Path
) -> None:
    path = tmp_path / "snapshot.jsonl"
    deadline = 0.5
    run = measured(big[0].uri, {"op": "snapshot", "pattern": "big:*"}, path, deadline)
    assert "deadline" in run["error"]
    assert run["elapsed"] / deadline < 1.5, f"{run['elapsed']:.2f} s for a {deadline} s deadline"
    assert run["peak_mb"] < RSS_LIMIT_MB, run
    for line in path.read_bytes().splitlines():  # no half-written value
        json.loads(line)


def test_freshness_reads_a_few_bytes_of_a_300_mb_key(
    big: tuple[RedisServer, str], tmp_path: Path
) -> None:
    run = measured(big[0].uri, {"op": "freshness", "key": "big:value"}, tmp_path / "f.jsonl")
    assert run["error"] == f"'big:value' holds {BIG:,} bytes, which is not a time."
    assert run["peak_mb"] < RSS_LIMIT_MB and run["elapsed"] < 5


def test_a_reply_over_the_cap_is_dropped_as_it_arrives(tmp_path: Path) -> None:
    with redis_server() as srv:
        client = srv.client()
        client.set(b"k:" + b"x" * (MAX_REPLY + 2**20), "1")  # a 65 MB key *name*
        client.close()
        run = measured(srv.uri, {"op": "count_keys", "pattern": "k:*"}, tmp_path / "k.jsonl")
    assert run["error"].startswith("Redis sent a reply larger than 64 MB")
    assert run["peak_mb"] < RSS_LIMIT_MB, f"peak RSS {run['peak_mb']:.0f} MB"
    assert (tmp_path / "k.jsonl").read_bytes() == b""


def test_a_big_set_is_streamed_member_for_member(tmp_path: Path) -> None:
    with redis_server() as srv:
        client = srv.client()
        pipe = client.pipeline(transaction=False)
        for start in range(0, 200_000, 20_000):
            pipe.sadd(
                "big:set", *(f"member-{n:08d}-{'p' * 60}" for n in range(start, start + 20_000))
            )
        pipe.execute()
        members = {m.decode() for m in client.sscan_iter("big:set", count=10_000)}
        assert client.memory_usage("big:set") > 8 * 2**20  # over the streaming threshold
        client.close()
        path = tmp_path / "set.jsonl"
        run = measured(srv.uri, {"op": "snapshot", "pattern": "big:*"}, path)
    assert run["error"] == "" and run["metrics"]["streamed_keys"] == 1
    (row,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert row["type"] == "set" and row["streamed"] is True
    assert set(row["value"]) == members and len(row["value"]) == 200_000


# --------------------------------------------------------------------------- order


SORTED_DIAGNOSTIC = """  members-by-role:
    kind: mongo
    title: Members by role, newest first within a role
    target: app-db
    query:
      op: find
      collection: members
      sort: {role: 1, _id: -1}
      limit: 10
"""


def test_a_mongo_sort_keeps_its_key_order_through_the_log_and_the_exports(
    runbooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = edited(runbooks, "\ndiagnostics:\n", "\ndiagnostics:\n", SORTED_DIAGNOSTIC)
    client: Any = mongomock.MongoClient("mongodb://db.invalid/app")
    client.app.members.insert_many(
        [
            {"_id": 1, "role": "b"},
            {"_id": 2, "role": "a"},
            {"_id": 3, "role": "b"},
            {"_id": 4, "role": "a"},
        ]
    )
    monkeypatch.setattr(MongoAdapter, "client_factory", staticmethod(lambda _u, _c: client))
    cli = Cli(tmp_path / "home")
    incident = json.loads(cli("open", str(path), "--title", "roles", "--json").output)["id"]
    # a new process would read the playbook back from the log: so does this one
    ran = cli(
        "diag",
        "run",
        incident,
        "members-by-role",
        "--target",
        "app-db=mongodb://db.invalid/app",
        "--json",
    )
    assert ran.exit_code == 0, ran.output
    wanted = [4, 2, 3, 1]  # role ascending, then _id descending (not _id descending first)
    assert [r["_id"] for r in json.loads(ran.stdout)["rows"]] == wanted
    with sqlite3.connect(tmp_path / "home" / DB_NAME) as con:
        (snapshot,) = con.execute("SELECT payload FROM events WHERE seq = 1").fetchone()
    assert '"sort": {"role": 1, "_id": -1}' in snapshot  # the row itself, as stored
    exported = json.loads(cli("export", incident, "--format", "json").output)
    sort = exported["events"][0]["payload"]["snapshot"]["diagnostics"]["members-by-role"]
    assert list(sort["query"]["sort"]) == ["role", "_id"]
    assert [r["_id"] for r in exported["events"][1]["payload"]["rows"]] == wanted
    markdown = cli("export", incident, "--format", "markdown").output
    shown = [int(m) for m in re.findall(r'^\{"_id": (\d+), "role"', markdown, re.MULTILINE)]
    assert shown == wanted
