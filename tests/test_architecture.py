"""The core cannot see the UI or the drivers, the arrows between the house's folders point
down (README, "Layout"), and the project stays lint-clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from helpers import ROOT

NOT_IN_THE_CORE = {"textual", "jinja2", "sqlite3", "click", "redis", "pymongo", "psycopg"}

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
    # A drill is driven by the CLI and the app alike: it needs neither.
    "playbook.drill.run": {"textual", "click", "jinja2"},
}
HEADLESS |= {
    f"playbook.core.{path.stem}": NOT_IN_THE_CORE
    | HEADLESS.get(f"playbook.core.{path.stem}", set())
    for path in sorted((ROOT / "playbook" / "core").glob("[!_]*.py"))
}


@pytest.mark.parametrize(("module", "forbidden"), sorted(HEADLESS.items()))
def test_headless_modules_import_nothing_they_should_not(module: str, forbidden: set[str]) -> None:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.check_output([sys.executable, "-c", code], cwd=ROOT)))
    assert not (forbidden & loaded), f"{module} pulls in {sorted(forbidden & loaded)}"


def test_the_import_contracts_hold() -> None:
    """`lint-imports` checks the layers declared in pyproject.toml: a module that imports
    from a layer above its own (the service from the app, say) fails here."""
    run = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_no_module_imports_itself_back() -> None:
    """No cycle, even inside one folder or through an import inside a function (the
    layers cannot see those). Imports only made for type checking do not count."""
    graph = grimp.build_graph("playbook", exclude_type_checking_imports=True)
    cycles = {
        tuple(sorted(chain))
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if (chain := graph.find_shortest_chain(importer=imported, imported=module))
        and module not in {imported} | set(chain[1:-1])
        and not _package_and_child(module, imported)
    }
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in sorted(cycles))


def _package_and_child(a: str, b: str) -> bool:
    return a.startswith(b + ".") or b.startswith(a + ".")


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
