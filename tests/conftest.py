"""Shared fixtures: a fake clock, stores, a service, and a CLI runner with an isolated home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import RUNBOOK, T0

from playbook.adapters.plugins import load_playbook as load
from playbook.cli import main
from playbook.core.clock import FakeClock
from playbook.core.loader import LoadedPlaybook
from playbook.service import Service
from playbook.store.memory import MemoryStore
from playbook.store.sqlite import SQLiteStore


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the host's playbook data or config (its targets, the
    folders it trusts), or depends on its zone or user."""
    monkeypatch.setenv("PLAYBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("USER", "tester")
    monkeypatch.delenv("PLAYBOOK_ACTOR", raising=False)
    monkeypatch.delenv("PLAYBOOK_DEBUG", raising=False)


@pytest.fixture(scope="session")
def loaded() -> LoadedPlaybook:
    return load(RUNBOOK)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def service(clock: FakeClock) -> Service:
    return Service(MemoryStore(), clock=clock, actor="alice")


@pytest.fixture
def sqlite_service(tmp_path: Path, clock: FakeClock) -> Iterator[Service]:
    store = SQLiteStore(tmp_path / "data")
    yield Service(store, clock=clock, actor="alice")
    store.close()


class Cli:
    """Runs `playbook` in-process against an isolated data directory."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(
            main, ["--data-dir", str(self.home), *args], input=input, catch_exceptions=False
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "cli-home")
