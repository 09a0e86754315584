"""A third-party adapter, installed for real: a playbook using its ``sqlite`` kind is
validated, documented by ``playbook schema``, and run from the CLI and from the app.

The adapter is its own package (``tests/plugins/playbook-sqlite``, built with hatchling),
installed with pip into a folder of this session; it reaches playbook only through its
entry point, as any third-party adapter would.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, run_playbook
from textual.widgets import DataTable, OptionList
from tui_support import make_app, on_incident, until

from playbook.adapters import plugins
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore

PLUGIN = ROOT / "tests" / "plugins" / "playbook-sqlite"

LEDGER = """\
version: 1
id: ledger
title: Ledger balance
service: Ledger
severity:
  default: P2
  levels:
    - {id: P2, name: High, response: 1h, resolution: 8h, status_update_every: 1h}
  escalation_path: [on-call]
assessment:
  id: assessment
  title: Assessment
  steps:
    - id: balance
      title: Check that every transaction balances
      diagnostics: [ledger-balance, ledger-wipe, ledger-attach]
phases:
  - id: investigation
    title: Investigation
    stage: investigation
    starts: 0m
    ends: 1h
    steps: [{id: dig, title: Dig}]
diagnostics:
  ledger-balance:
    kind: sqlite
    title: Transactions that do not balance
    target: ledger
    query:
      sql: >-
        SELECT count(*) AS unbalanced FROM
        (SELECT txn FROM entries GROUP BY txn HAVING sum(amount) <> 0)
    expect:
      - {metric: unbalanced, op: eq, value: 0, because: every debit has its credit}
  ledger-wipe:
    kind: sqlite
    title: A statement that writes, not marked as such
    target: ledger
    query: {sql: DELETE FROM entries}
  ledger-attach:
    kind: sqlite
    title: A statement that would create a file beside the database
    target: ledger
    query: {sql: "ATTACH 'file:ATTACHED?mode=rwc' AS other"}
"""

ENTRIES = [(1, "cash", -250), (1, "sales", 250), (2, "cash", 75), (2, "refunds", -75)]


@pytest.fixture(scope="session")
def sqlite_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin, built and installed by pip into a folder of its own (nothing fetched)."""
    target = tmp_path_factory.mktemp("third-party")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
            *("--no-deps", "--no-build-isolation", "--no-index", "--target", str(target)),
            str(PLUGIN),
        ],
        check=True,
        capture_output=True,
    )
    return target


@pytest.fixture
def installed(sqlite_plugin: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The plugin on this process's path (importlib.metadata then sees its entry point),
    and the environment that puts it on a subprocess's; gone again after the test."""
    monkeypatch.syspath_prepend(str(sqlite_plugin))
    plugins.refresh()
    yield {
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(sqlite_plugin), os.environ.get("PYTHONPATH")])
        )
    }
    monkeypatch.undo()
    plugins.refresh()


@pytest.fixture
def ledger(tmp_path: Path) -> tuple[Path, Path]:
    """The playbook (in a folder of its own) and a SQLite database whose books balance."""
    db = tmp_path / "books" / "ledger.db"
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE entries (txn INTEGER, account TEXT, amount INTEGER)")
        conn.executemany("INSERT INTO entries VALUES (?, ?, ?)", ENTRIES)
    conn.close()
    playbook = tmp_path / "runbooks" / "ledger.yaml"
    playbook.parent.mkdir()
    playbook.write_text(LEDGER.replace("ATTACHED", str(db.parent / "attached.db")))
    return playbook, db


def rows_in(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        found = conn.execute("SELECT txn, account, amount FROM entries ORDER BY rowid").fetchall()
    conn.close()
    return found


def test_validate_knows_the_kind_only_while_the_plugin_is_installed(
    installed: dict[str, str], ledger: tuple[Path, Path]
) -> None:
    playbook, _db = ledger
    ok = run_playbook("validate", str(playbook), env=installed)
    assert ok.returncode == 0, ok.stderr
    assert "3 diagnostics" in ok.stdout

    missing = run_playbook("validate", str(playbook))
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr
    line = next(x for x in missing.stderr.splitlines() if "ledger-balance.kind" in x)
    assert line.startswith(f"{playbook}:")
    assert "unknown kind 'sqlite'; the installed kinds are 'http', 'mongo', 'postgres'" in line
    assert "'playbook.adapters' entry-point group" in line


def test_the_schema_documents_the_kind(installed: dict[str, str]) -> None:
    schema = json.loads(run_playbook("schema", env=installed).stdout)
    union = schema["properties"]["diagnostics"]["patternProperties"]["^[a-z0-9][a-z0-9-]*$"]
    assert union["discriminator"]["mapping"]["sqlite"] == "#/$defs/SqliteDiagnostic"
    sqlite_kind = schema["$defs"]["SqliteDiagnostic"]
    assert sqlite_kind["description"].startswith("A SQLite database file, opened read-only")
    assert {"title", "target", "expect", "timeout", "query"} <= set(sqlite_kind["properties"])
    assert "first row" in schema["$defs"]["SqliteQuery"]["properties"]["sql"]["description"]

    without = json.loads(run_playbook("schema").stdout)
    assert "SqliteDiagnostic" not in without["$defs"]


def test_diag_run_from_the_cli_records_the_rows_as_evidence(
    installed: dict[str, str], ledger: tuple[Path, Path], tmp_path: Path
) -> None:
    playbook, db = ledger
    env = {**installed, "PLAYBOOK_HOME": str(tmp_path / "home")}
    opened = run_playbook("open", str(playbook), "--title", "books off by 75", "--json", env=env)
    assert opened.returncode == 0, opened.stderr
    incident = json.loads(opened.stdout)["id"]
    target = f"ledger=sqlite://{db}"

    ran = run_playbook("diag", "run", incident, "ledger-balance", "--target", target, env=env)
    assert ran.returncode == 0, ran.stderr
    assert "PASS  ledger-balance on ledger" in ran.stdout

    events = json.loads(run_playbook("export", incident, "--format", "json", env=env).stdout)
    run = events["events"][-1]["payload"]
    assert run["verdict"] == "pass" and run["metrics"]["unbalanced"] == 0
    evidence = [json.loads(line) for line in Path(run["file"]).read_text().splitlines()]
    assert evidence == [{"unbalanced": 0}]


def test_sqlite_itself_refuses_a_write_and_a_new_file(
    installed: dict[str, str], ledger: tuple[Path, Path], tmp_path: Path
) -> None:
    playbook, db = ledger
    env = {**installed, "PLAYBOOK_HOME": str(tmp_path / "home")}
    opened = run_playbook("open", str(playbook), "--title", "careless playbook", "--json", env=env)
    incident = json.loads(opened.stdout)["id"]
    target = f"ledger=sqlite://{db}"

    wipe = run_playbook("diag", "run", incident, "ledger-wipe", "--target", target, env=env)
    assert wipe.returncode == 8
    assert "readonly database" in wipe.stdout + wipe.stderr
    assert rows_in(db) == ENTRIES  # the rows are still in the file

    attach = run_playbook("diag", "run", incident, "ledger-attach", "--target", target, env=env)
    assert attach.returncode == 8
    assert sorted(p.name for p in db.parent.iterdir()) == ["ledger.db"]  # nothing created


async def test_the_app_runs_the_diagnostic_and_shows_its_verdict(
    installed: dict[str, str], ledger: tuple[Path, Path], tmp_path: Path, clock: Any
) -> None:
    playbook, db = ledger
    loaded = plugins.load_playbook(playbook)
    store = SQLiteStore(tmp_path / "data")
    service = Service(store, clock=clock, actor="alice")
    incident = service.open(loaded, "books off by 75").id
    app = make_app(service, loaded, resume=incident)
    app.target_overrides = (f"ledger=sqlite://{db}",)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await on_incident(pilot)
            await until(pilot, lambda: screen.playbook is not None, "the playbook read")
            screen.action_phase("assessment")
            checklist = screen.query_one("#checklist", OptionList)
            checklist.focus()
            checklist.highlighted = next(
                i
                for i in range(checklist.option_count)
                if (checklist.get_option_at_index(i).id or "").endswith(":ledger-balance")
            )
            await pilot.press("d")  # no parameters to ask: it runs at once

            def recorded() -> list[dict[str, Any]]:
                events = service.get(incident).events
                return [e.payload for e in events if e.type == "diagnostic_run"]

            await until(pilot, lambda: recorded(), "the run recorded")
            print(
                "EVENTS",
                [(e.type, e.seq, e.payload.get("file")) for e in service.get(incident).events],
                app.said,
            )
            assert [(r["diagnostic"], r["verdict"]) for r in recorded()] == [
                ("ledger-balance", "pass")
            ]
            await until(pilot, lambda: app.screen.query(DataTable), "the result shown")
            table = app.screen.query_one(DataTable)
            assert [str(cell) for cell in table.get_row_at(0)] == ["0"]
            await pilot.press("escape")
            line = str(screen.query_one("#checklist", OptionList).highlighted_option.prompt)
            assert "PASS" in line
    finally:
        store.close()
