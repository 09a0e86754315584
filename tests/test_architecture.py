"""The core cannot see the UI or the drivers, and the project stays lint-clean."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

HEADLESS = {
    "playbook.core.model": {"textual", "jinja2", "sqlite3", "click"},
    "playbook.core.loader": {"textual", "jinja2", "sqlite3", "click"},
    "playbook.core.state": {"textual", "jinja2", "sqlite3", "click", "pydantic"},
    "playbook.core.timers": {"textual", "jinja2", "sqlite3", "click", "pydantic"},
    "playbook.store.sqlite": {"textual", "jinja2", "click"},
    "playbook.render.export": {"textual", "sqlite3", "click"},
    "playbook.service": {"textual", "click", "pydantic", "jinja2", "redis", "pymongo"},
    "playbook.core.evidence": {"textual", "click", "pydantic", "redis", "pymongo"},
    "playbook.adapters.base": {"textual", "pydantic", "redis", "pymongo"},
    "playbook.adapters.plugins": {"textual", "pydantic", "redis", "pymongo"},
    "playbook.core.diagnostics": {"textual", "jinja2", "sqlite3", "click", "pymongo", "redis"},
    "playbook.adapters.mongo.readonly": {"textual", "pymongo", "bson", "redis", "pydantic"},
    "playbook.targets": {"textual", "pydantic", "jinja2"},
    # The playbook model imports every adapter's class on each load: none may load its driver.
    "playbook.adapters.redis.reader": {"textual", "redis", "hiredis"},
    "playbook.adapters.mongo.reader": {"textual", "pymongo", "bson"},
    "playbook.adapters.postgres.reader": {"textual", "psycopg", "pglast"},
    "playbook.adapters.http.reader": {"textual", "http.client", "ssl"},
    "playbook.adapters.shell.adapter": {"textual", "ctypes", "subprocess"},
    # Start-up speed: the first frame must not wait for pydantic (it is loaded later,
    # off the event loop), and the CLI must not load the app until `playbook run`.
    "playbook.cli": {"textual", "pydantic", "jinja2", "redis", "pymongo"},
    "playbook.tui.app": {"pydantic", "jinja2", "redis", "pymongo"},
    "playbook.tui.screens.start": {"pydantic", "redis", "pymongo"},
}


@pytest.mark.parametrize(("module", "forbidden"), sorted(HEADLESS.items()))
def test_headless_modules_import_nothing_they_should_not(module: str, forbidden: set[str]) -> None:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.check_output([sys.executable, "-c", code], cwd=ROOT)))
    assert not (forbidden & loaded), f"{module} pulls in {sorted(forbidden & loaded)}"


def test_ruff_check_and_format_are_clean() -> None:
    check = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout
    fmt = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout
