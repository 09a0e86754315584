"""A damaged or hand-edited incident log never makes a command fail internally.

SECURITY.md promises that an event that cannot be read is skipped and named by `show`,
the app and both exports, which keep working. An attacker who could write to
``incidents.sqlite3`` (or a disk that damaged it) found rows that made `show`,
`timeline`, both exports, `incidents` (for every incident) and `note` die with
"internal error" (exit 70): a payload nested 1,000 levels deep, a lone surrogate, a
schema of ``'v2'``, a sequence number of ``'5a'``, a severity the playbook has no level
for.

Every row here is written into the SQLite file with sqlite3 itself, as a hand edit
would, and every command is then run on the log: each exits 0 or with a
:class:`~playbook.errors.PlaybookError` code, never 70; the other incident is still
listed; a note still lands as a row in the file; nothing printed or exported holds a raw
control, bidirectional or surrogate character; and the JSON export is JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playbook.cli import main
from playbook.core.events import EVENT_TYPES
from playbook.errors import PlaybookError
from playbook.store.sqlite import DB_NAME

EXIT_INTERNAL = 70
UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def _exit_codes() -> set[int]:
    """Every exit code a PlaybookError (or click's usage error) gives."""
    import playbook.adapters.base
    import playbook.adapters.writers
    import playbook.core.loader
    import playbook.drill.sandbox
    import playbook.store  # noqa: F401  (each defines errors with their own codes)

    codes = {0, 2}
    pending: list[type[PlaybookError]] = [PlaybookError]
    while pending:
        kind = pending.pop()
        codes.add(kind.exit_code)
        pending.extend(kind.__subclasses__())
    return codes


EXIT_CODES = _exit_codes()


def invoke(home: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["--data-dir", str(home), *args], catch_exceptions=False)


def raw_unsafe(text: str) -> list[str]:
    """Characters that must never be printed or exported raw (newline and tab aside)."""
    return sorted(
        {f"U+{ord(c):04X}" for c in text if c not in "\n\t" and unicodedata.category(c) in UNSAFE}
    )


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """A log with two incidents: the one rows are damaged in, and a bystander."""
    home = tmp_path_factory.mktemp("base")
    opened = invoke(home, "open", "data-integrity", "--title", "victim", "--json")
    assert opened.exit_code == 0, opened.output
    victim = json.loads(opened.output)["id"]
    assert invoke(home, "note", victim, "hello").exit_code == 0
    assert invoke(home, "ack", victim).exit_code == 0
    other = invoke(home, "open", "redis-index-loss", "--title", "bystander", "--json")
    assert other.exit_code == 0, other.output
    yield home, victim, json.loads(other.output)["id"]


def damaged_copy(base: Path) -> Path:
    """A copy of the base log to damage (SQLite's own backup: the WAL is included)."""
    home = Path(tempfile.mkdtemp(prefix="damaged-"))
    source = sqlite3.connect(base / DB_NAME)
    copy = sqlite3.connect(home / DB_NAME)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    return home


def write_rows(home: Path, rows: list[tuple[Any, ...]]) -> None:
    """Rows as a hand edit leaves them: any type in any column, replacing a row with the
    same key, check constraints off (NOT NULL cannot be switched off, so no NULLs)."""
    con = sqlite3.connect(home / DB_NAME)
    try:
        con.execute("PRAGMA ignore_check_constraints = ON")
        for row in rows:
            incident, seq, at, actor, kind, payload, schema = row
            con.execute(
                "INSERT OR REPLACE INTO events (incident_id, seq, at, actor, type, payload, schema) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (incident, seq, at, actor, kind, payload, schema),
            )
            if isinstance(payload, _Text):
                # bytes stored as TEXT: what a damaged file, not Python, leaves behind
                con.execute(
                    "UPDATE events SET payload = CAST(payload AS TEXT) "
                    "WHERE incident_id = ? AND seq IS ?",
                    (incident, seq),
                )
        con.commit()
    finally:
        con.close()


class _Text(bytes):
    """Bytes to be stored in a TEXT column (so they may be invalid UTF-8 there)."""


COMMANDS = [
    ("show", "{id}"),
    ("show", "{id}", "--all"),
    ("show", "{id}", "--json"),
    ("timeline", "{id}"),
    ("timeline", "{id}", "--json"),
    ("export", "{id}"),
    ("export", "{id}", "--format", "json"),
    ("incidents",),
    ("incidents", "--all", "--json"),
    ("action", "status", "{id}"),
    ("status", "{id}", "initial", "--preview", "--set", "eta=soon"),
    ("severity", "{id}", "P1"),
    ("phase", "{id}", "investigation"),
    ("check", "{id}", "assessment.verify"),
    ("escalate", "{id}"),
    ("rename", "{id}", "renamed"),
    # reads the playbook back from the (maybe damaged) snapshot before looking the name up
    ("diag", "run", "{id}", "no-such-diagnostic"),
    ("show", "{id}"),
    ("export", "{id}"),
]


def check_every_command(home: Path, victim: str, other: str) -> None:
    """The promise, checked on the outputs, the exports and the rows of the file."""
    for command in COMMANDS:
        args = [a.format(id=victim) for a in command]
        result = invoke(home, *args)
        assert result.exit_code != EXIT_INTERNAL, (args, result.output)
        assert result.exit_code in EXIT_CODES, (args, result.exit_code, result.output)
        assert raw_unsafe(result.output) == [], (args, result.output)
        if args[0] == "incidents":
            assert other in result.output, "one damaged incident hid the others"
        if args[0] == "export" and result.exit_code == 0 and "json" in args:
            document = json.loads(result.output)
            assert document["incident"] == victim
    before = _count(home)
    noted = invoke(home, "note", victim, "after the damage")
    if _highest_seq(home, victim) == 2**63 - 1 and noted.exit_code == 5:
        assert _count(home) == before  # no number is left after it: said, nothing written
        return
    assert noted.exit_code == 0, noted.output
    assert _count(home) == before + 1, "the note did not land in the log"


def _highest_seq(home: Path, incident: str) -> int:
    with sqlite3.connect(home / DB_NAME) as con:
        return con.execute(
            "SELECT MAX(seq) FROM events WHERE incident_id = ? AND typeof(seq) = 'integer'",
            (incident,),
        ).fetchone()[0]


def _count(home: Path) -> int:
    with sqlite3.connect(home / DB_NAME) as con:
        return con.execute("SELECT COUNT(*) FROM events").fetchone()[0]


# ----------------------------------------------------------------- the attacker's rows

T = "2026-11-29T05:44:00Z"


def attacker_rows(victim: str) -> dict[str, list[tuple[Any, ...]]]:
    deep = "[" * 1000 + "]" * 1000
    return {
        "deep nesting": [
            (victim, 4, T, "root", "note_added", '{"text": "x", "extra": ' + deep + "}", 1)
        ],
        "deeper than the parser": [
            (victim, 4, T, "root", "note_added", '{"text": ' + "[" * 100_000 + "]" * 100_000, 1)
        ],
        "lone surrogate": [(victim, 4, T, "root", "note_added", '{"text": "a\\ud800b"}', 1)],
        "schema not an int": [(victim, 2, T, "root", "note_added", '{"text": "x"}', "v2")],
        "newer schema": [(victim, 4, T, "root", "note_added", '{"text": "x"}', 2)],
        "seq as text": [(victim, "5a", T, "root", "note_added", '{"text": "x"}', 1)],
        "unknown severity change": [
            (
                victim,
                4,
                T,
                "root",
                "severity_changed",
                '{"from": "P2", "to": "P9", "reason": "x"}',
                1,
            )
        ],
        "payload not UTF-8": [(victim, 4, T, "root", "note_added", _Text(b'{"text": "\xff"}'), 1)],
        "time in year 9999": [
            (victim, 4, "9999-12-31T23:59:59-05:00", "root", "note_added", '{"text": "x"}', 1)
        ],
        "a check that is not an object": [
            (victim, 4, T, "root", "drill_checked", '{"restored": false, "targets": {"a": 1}}', 1)
        ],
        "a section without a title": [
            (
                victim,
                1,
                T,
                "root",
                "opened",
                json.dumps(
                    {
                        "title": "t",
                        "severity": "P2",
                        "triggers": [],
                        "playbook": {"id": "data-integrity"},
                        "snapshot": {},
                        "sections": [{"id": "s", "steps": []}],
                    }
                ),
                1,
            )
        ],
    }


@pytest.mark.parametrize("case", list(attacker_rows("")))
def test_the_attackers_rows_are_named_and_every_command_works(
    base: tuple[Path, str, str], case: str
) -> None:
    base_home, victim, other = base
    home = damaged_copy(base_home)
    try:
        write_rows(home, attacker_rows(victim)[case])
        check_every_command(home, victim, other)
        shown = json.loads(invoke(home, "show", victim, "--json").output)
        assert shown["unreadable"], f"{case}: the bad event is not named"
        markdown = invoke(home, "export", victim).output
        assert "unreadable event(s)" in markdown
        exported = json.loads(invoke(home, "export", victim, "--format", "json").output)
        assert exported["unreadable"] == shown["unreadable"]  # named in the JSON export too
        timeline = invoke(home, "timeline", victim).output
        assert "Unreadable" in timeline
    finally:
        shutil.rmtree(home)


def test_an_opening_at_a_severity_the_playbook_lacks_is_shown_as_written(
    base: tuple[Path, str, str],
) -> None:
    base_home, victim, other = base
    home = damaged_copy(base_home)
    try:
        with sqlite3.connect(home / DB_NAME) as con:
            con.execute(
                "UPDATE events SET payload = json_set(payload, '$.severity', 'P9') "
                "WHERE incident_id = ? AND seq = 1",
                (victim,),
            )
        check_every_command(home, victim, other)
        shown = json.loads(invoke(home, "show", victim, "--json").output)
        assert shown["severity"] == "P9"
        assert shown["timers"]["response"] is None and shown["timers"]["resolution"] is None
        assert "'P9' is not a level of its playbook" in invoke(home, "show", victim).output
        assert "'P9' is not a level" in invoke(home, "export", victim).output
    finally:
        shutil.rmtree(home)


def test_a_severity_change_to_an_unknown_level_is_skipped_and_the_timers_keep_going(
    base: tuple[Path, str, str],
) -> None:
    base_home, victim, _other = base
    home = damaged_copy(base_home)
    try:
        write_rows(home, attacker_rows(victim)["unknown severity change"])
        shown = json.loads(invoke(home, "show", victim, "--json").output)
        assert shown["severity"] == "P2"  # the change was not folded
        assert shown["timers"]["resolution"]["label"] == "Resolution (P2)"
        assert [u["seq"] for u in shown["unreadable"]] == [4]
        assert "Unreadable severity_changed event" in invoke(home, "timeline", victim).output
    finally:
        shutil.rmtree(home)


def test_a_sequence_number_that_is_not_one_does_not_stop_new_events(
    base: tuple[Path, str, str],
) -> None:
    base_home, victim, _other = base
    home = damaged_copy(base_home)
    try:
        # a gap, and a text seq that SQLite's MAX() would call the largest
        write_rows(home, [(victim, 9, T, "root", "note_added", '{"text": "x"}', 1)])
        write_rows(home, [(victim, "zz", T, "root", "note_added", '{"text": "x"}', 1)])
        assert invoke(home, "note", victim, "still works").exit_code == 0
        with sqlite3.connect(home / DB_NAME) as con:
            seqs = [
                r[0]
                for r in con.execute(
                    "SELECT seq FROM events WHERE incident_id = ? AND typeof(seq) = 'integer' "
                    "ORDER BY seq",
                    (victim,),
                )
            ]
        assert seqs[-1] == 10  # after the highest integer, whatever else is in the column
        write_rows(home, [(victim, 2**63 - 1, T, "root", "note_added", '{"text": "x"}', 1)])
        before = _count(home)
        full = invoke(home, "note", victim, "no room")
        assert full.exit_code == 5 and "sequence numbers are used up" in full.output
        assert _count(home) == before
    finally:
        shutil.rmtree(home)


# ------------------------------------------------------------------------ generated rows

SAMPLES: dict[str, dict[str, Any]] = {
    "acknowledged": {},
    "severity_changed": {"from": "P2", "to": "P1", "reason": "worse"},
    "phase_entered": {"phase": "investigation"},
    "item_checked": {"item": "assessment.verify.confirm-that-a-data-integrity-issue-exists"},
    "item_unchecked": {"item": "assessment.verify.confirm-that-a-data-integrity-issue-exists"},
    "note_added": {"text": "n"},
    "status_rendered": {"template": "initial", "status": "investigating", "text": "t"},
    "escalated": {"to": "Technical Lead", "reason": "r"},
    "resolved": {"summary": "s"},
    "closed": {},
    "scenario_chosen": {"scenario": "database-corruption"},
    "renamed": {"from": "a", "to": "b"},
    "diagnostic_run": {
        "diagnostic": "d",
        "title": "t",
        "kind": "redis",
        "target": "cache",
        "params": {"n": 1},
        "started": T,
        "ended": T,
        "verdict": "pass",
        "message": "",
        "checks": [{"metric": "count", "ok": True, "text": "count = 1"}],
        "metrics": {"count": 1},
        "rows": [{"k": "v"}],
        "rows_total": 1,
        "partial": False,
        "error": "",
        "file": None,
        "sha256": None,
    },
    "action_stage": {
        "run": "r1",
        "action": "rebuild-indexes",
        "target": "cache",
        "stage": "backup",
        "outcome": "done",
        "file": "/nonexistent/backup.jsonl",
        "sha256": "0" * 64,
        "bytes": 3,
        "rows": 2,
    },
    "drill_checked": {"restored": False, "targets": {"cache": {"missing": 1, "restored": False}}},
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
"""Any JSON value (NaN and Infinity too, which Python's json writes)."""

hostile_text = st.sampled_from(
    ["P9", "", "\u202e", "\u061c", "\u2028", "\x1b[2J", "\\ud800", "5a", "zz", "a" * 300]
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:4]):
            found += _paths(v, (*path, i))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


def _delete(value: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k != path[0]}
        return [v for i, v in enumerate(value) if i != path[0]]
    head = path[0]
    if isinstance(value, dict):
        return {**value, head: _delete(value[head], path[1:])}
    copy = list(value)
    copy[head] = _delete(copy[head], path[1:])
    return copy


@st.composite
def payloads(draw: st.DrawFn, kind: str, opened: dict[str, Any]) -> Any:
    """A payload of ``kind``: its valid shape with one part changed, or something else."""
    how = draw(st.sampled_from(["mutate", "mutate", "mutate", "delete", "any", "text", "bytes"]))
    valid = opened if kind == "opened" else SAMPLES.get(kind, {"x": 1})
    if kind == "opened" and draw(st.booleans()):
        valid = {
            **valid,
            "drill": {"title": "d", "speed": 2, "services": {"cache": "redis"}, "fingerprint": {}},
        }
    if how in ("mutate", "delete"):
        paths = _paths(valid)[1:] if how == "delete" else _paths(valid)
        if not paths:
            return json.dumps(valid)
        path = draw(st.sampled_from(paths))
        if how == "delete":
            return json.dumps(_delete(valid, path))
        new = draw(json_values | hostile_text)
        return json.dumps(_replace(valid, path, new))
    if how == "any":
        return json.dumps(draw(json_values))
    if how == "text":
        return draw(
            st.sampled_from(
                ["{", "", "null", "[]", '"x"', '{"text": "\\udfff"}', "{" * 3000, "NaN"]
            )
        )
    return _Text(draw(st.binary(max_size=20)))


@st.composite
def damaged_rows(draw: st.DrawFn, victim: str, opened: dict[str, Any]) -> list[tuple[Any, ...]]:
    """One to three rows; in most of them only the payload is damaged (the columns
    around it are as playbook writes them), so the payload's shapes are what is tried."""
    rows = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from([*EVENT_TYPES, "from_the_future"]))
        seq: Any = draw(st.integers(1, 6))
        at: Any = T
        actor: Any = "root"
        schema: Any = 1
        if draw(st.integers(0, 3)) == 0:  # a quarter of the rows: the columns too
            kind = draw(st.sampled_from([kind, "", "x" * 100]) | st.binary(max_size=4))
            seq = draw(st.sampled_from([seq, 0, -1, 2**63 - 1, "5a", 2.5, b"\x01"]))
            at = draw(
                st.sampled_from(
                    [at, "yesterday", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59Z", 17]
                )
            )
            actor = draw(st.sampled_from([actor, "\u202eevil", "a\x1bb", 5, b"\xff"]))
            schema = draw(st.sampled_from([schema, 0, 2, "v2", 1.5, b"1"]))
        payload = draw(payloads(kind if isinstance(kind, str) else "x", opened))
        rows.append((victim, seq, at, actor, kind, payload, schema))
    return rows


def test_no_damaged_row_makes_any_command_fail_internally(
    base: tuple[Path, str, str],
) -> None:
    base_home, victim, other = base
    with sqlite3.connect(base_home / DB_NAME) as con:
        (text,) = con.execute(
            "SELECT payload FROM events WHERE incident_id = ? AND seq = 1", (victim,)
        ).fetchone()
    opened = json.loads(text)

    @settings(
        max_examples=int(os.environ.get("PLAYBOOK_FUZZ_EXAMPLES", "80")),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(rows=damaged_rows(victim, opened))
    def every_command_survives(rows: list[tuple[Any, ...]]) -> None:
        home = damaged_copy(base_home)
        try:
            write_rows(home, rows)
            check_every_command(home, victim, other)
        finally:
            shutil.rmtree(home)

    every_command_survives()


def test_bytes_that_are_not_utf8_in_any_column_cost_one_row_not_the_log(
    base: tuple[Path, str, str],
) -> None:
    base_home, victim, other = base
    home = damaged_copy(base_home)
    try:
        with sqlite3.connect(home / DB_NAME) as con:
            # an incident whose id is not UTF-8, and a row of the victim with a bad actor
            con.execute(
                "INSERT INTO events (incident_id, seq, at, actor, type, payload, schema) VALUES ("
                "CAST(x'ff41' AS TEXT), 1, ?, 'root', 'opened', "
                "'{}', 1)",
                (T,),
            )
            con.execute(
                "INSERT INTO events (incident_id, seq, at, actor, type, payload, schema) VALUES ("
                "?, 4, ?, CAST(x'c3' AS TEXT), 'note_added', "
                '\'{"text": "x"}\', 1)',
                (victim, T),
            )
        listed = json.loads(invoke(home, "incidents", "--all", "--json").output)
        assert {i["id"] for i in listed} == {victim, other}  # the bad id is left out
        check_every_command(home, victim, other)
        shown = json.loads(invoke(home, "show", victim, "--json").output)
        assert [(u["seq"], u["type"]) for u in shown["unreadable"]] == [(4, "note_added")]
        assert "its actor" in shown["unreadable"][0]["why"]
    finally:
        shutil.rmtree(home)


@pytest.mark.parametrize(
    "case", ["deep nesting", "seq as text", "payload not UTF-8", "unknown severity change"]
)
async def test_the_app_opens_a_damaged_incident_and_names_the_bad_event(
    base: tuple[Path, str, str], case: str
) -> None:
    from helpers import ROOT
    from tui_support import SIZE, make_app, on_incident, until

    from playbook.adapters.plugins import load_playbook as load
    from playbook.service import Service
    from playbook.store.sqlite import SQLiteStore

    base_home, victim, _other = base
    home = damaged_copy(base_home)
    write_rows(home, attacker_rows(victim)[case])
    store = SQLiteStore(home)
    try:
        app = make_app(
            Service(store, actor="alice"), load(ROOT / "runbooks" / "data-integrity.yaml"), victim
        )
        async with app.run_test(size=SIZE) as pilot:
            screen = await on_incident(pilot)
            await until(pilot, lambda: any("unreadable" in s for s in app.said), "a notice")
            assert screen.state is not None and screen.state.title == "victim"
            assert raw_unsafe("\n".join(app.said)) == []
    finally:
        store.close()
        shutil.rmtree(home)


def test_a_skipped_events_time_does_not_move_the_clock(base: tuple[Path, str, str]) -> None:
    """New events are never stamped before the log's last time; a skipped event's time
    is no more trustworthy than the rest of it and is not that time."""
    base_home, victim, _other = base
    home = damaged_copy(base_home)
    try:
        future = "8000-01-01T00:00:00Z"
        write_rows(home, [(victim, 4, future, "root", "from_the_future", '{"x": 1}', 1)])
        assert invoke(home, "note", victim, "now").exit_code == 0
        with sqlite3.connect(home / DB_NAME) as con:
            (at,) = con.execute(
                "SELECT at FROM events WHERE incident_id = ? AND seq = 5", (victim,)
            ).fetchone()
        assert at < "3000"  # stamped now, not in the year 8000
        shown = json.loads(invoke(home, "show", victim, "--json").output)
        assert shown["timers"]["resolution"]["elapsed_seconds"] < 86400 * 365
    finally:
        shutil.rmtree(home)
