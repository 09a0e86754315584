"""The playbook model is made from the installed adapters, cheaply and robustly."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import Literal

import pytest
from helpers import ROOT, RUNBOOK

from playbook.adapters import plugins
from playbook.adapters.base import Adapter
from playbook.core.loader import PlaybookInvalid
from playbook.core.model import DiagnosticBase, Model

DRIVERS = {"redis", "hiredis", "pymongo", "bson", "psycopg", "pglast", "mongomock"}


def test_listing_the_kinds_imports_no_adapter() -> None:
    code = (
        "import sys, json\n"
        "from playbook.adapters import plugins\n"
        "print(json.dumps([plugins.names(), plugins.writer_names(), sorted(sys.modules)]))"
    )
    names, writers, loaded = json.loads(
        subprocess.check_output([sys.executable, "-c", code], cwd=ROOT)
    )
    assert {"http", "mongo", "postgres", "redis", "shell"} <= set(names)
    assert {"mongo", "postgres", "redis"} <= set(writers)
    back_ends = [m for m in loaded if m.startswith("playbook.adapters.") and m.count(".") > 2]
    assert back_ends == [], back_ends


def test_building_the_model_loads_no_driver() -> None:
    code = (
        "import sys, json\n"
        "from playbook.adapters import plugins\n"
        "model = plugins.playbook_model()\n"
        "print(json.dumps([sorted(sys.modules), model.__pydantic_complete__]))"
    )
    loaded, complete = json.loads(subprocess.check_output([sys.executable, "-c", code], cwd=ROOT))
    assert not DRIVERS & set(loaded), sorted(DRIVERS & set(loaded))
    assert complete  # built now, not lazily by whichever thread validates first


class _Query(Model):
    text: str


class _OtherKind(DiagnosticBase):
    kind: Literal["something-else"]
    query: _Query


class LyingAdapter(Adapter):
    """Registered as ``liar`` but describing another kind."""

    kind = "liar"
    diagnostic_model = _OtherKind

    def check(self, request: object) -> None:  # pragma: no cover - never run
        raise NotImplementedError

    def run(self, *args: object) -> dict[str, object]:  # pragma: no cover - never run
        raise NotImplementedError


@pytest.fixture
def broken_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two more adapters are installed: one whose module is missing, one that lies."""
    real = plugins._entry_points
    extra = {
        "broken": EntryPoint("broken", "playbook_adapter_not_installed:Adapter", plugins.GROUP),
        "liar": EntryPoint("liar", f"{__name__}:LyingAdapter", plugins.GROUP),
    }

    def with_extra(group: str = plugins.GROUP) -> dict[str, EntryPoint]:
        found = real(group)
        return {**found, **extra} if group == plugins.GROUP else found

    monkeypatch.setattr(plugins, "_entry_points", with_extra)
    plugins.refresh()
    yield
    monkeypatch.undo()
    plugins.refresh()


def test_an_adapter_that_cannot_load_spoils_only_the_playbooks_that_use_it(
    broken_plugins: None,
) -> None:
    assert plugins.load_playbook(RUNBOOK).playbook.id == "data-integrity"
    model = plugins.playbook_model()
    assert {"broken", "liar"} <= set(model.unavailable)

    text = (
        RUNBOOK.read_text(encoding="utf-8")
        .replace("kind: mongo", "kind: broken", 1)
        .replace("kind: redis", "kind: liar", 1)
    )
    with pytest.raises(PlaybookInvalid) as caught:
        plugins.parse_playbook(text, "uses-them.yaml")
    said = [p.message for p in caught.value.problems]
    assert any(
        "kind 'broken' is installed but cannot be used: its module cannot be imported "
        "(ModuleNotFoundError: No module named 'playbook_adapter_not_installed')" in m
        for m in said
    ), said
    assert any(
        "kind 'liar' is installed but cannot be used: its model does not fit "
        "(_OtherKind declares kind 'something-else', not 'liar')" in m
        for m in said
    ), said


def test_threads_asking_at_once_get_one_model() -> None:
    plugins.refresh()
    start = threading.Barrier(4)
    got: list[type] = []

    def ask() -> None:
        start.wait()
        got.append(plugins.playbook_model())

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 4 and len({id(model) for model in got}) == 1
