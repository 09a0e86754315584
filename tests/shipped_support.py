"""What the tests of the shipped playbooks share: the schema check with a standard
validator, the headless drill through the CLI, and a drill played in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from playbook.adapters.plugins import load_playbook as load
from playbook.drill.run import DrillRun
from playbook.drill.script import load_script, run_script
from playbook.resources import builtin_runbooks
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore


def schema_errors(name: str, tmp: Path) -> list[str]:
    """Every place the shipped playbook ``name`` breaks `playbook schema`, as a standard
    JSON Schema validator (jsonschema, the draft the schema names) sees it."""
    import jsonschema

    done = _cli(["schema"], tmp)
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    document = yaml.safe_load(builtin_runbooks()[name].read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(document)]


def headless(name: str, tmp: Path) -> tuple[int, dict[str, Any], str]:
    """`playbook drill NAME --headless --json` in a fresh data folder: exit, JSON, stderr."""
    done = _cli(["--data-dir", str(tmp / "data"), "drill", name, "--headless", "--json"], tmp)
    return done.returncode, json.loads(done.stdout or "{}"), done.stderr


def _cli(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(tmp), "XDG_CONFIG_HOME": str(tmp / "config")}
    return subprocess.run(
        [str(Path(sys.executable).with_name("playbook")), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@contextmanager
def drill(name: str, tmp: Path) -> Iterator[tuple[Service, DrillRun, str, Any]]:
    """The drill of ``name`` started and its incident opened (service, run, incident id,
    script); stopped afterwards."""
    loaded = load(builtin_runbooks()[name])
    spec = loaded.playbook.drill
    assert spec is not None and spec.script is not None
    script = load_script((loaded.path.parent / spec.script).resolve())
    store = SQLiteStore(tmp / "drills")
    service = Service(store, actor="drill-test")
    run = DrillRun.start(loaded)
    try:
        state = run.open(service, script.speed)
        yield service, run, state.id, script
    finally:
        run.stop()
        store.close()


def play(service: Service, run: DrillRun, incident: str, script: Any) -> None:
    """Play the whole script; fail naming every step that did not find what it expected."""
    results = run_script(service, run, incident, script)
    bad = "\n".join(f"{r.number}. {r.step}: {r.said}" for r in results if not r.ok)
    assert all(r.ok for r in results), bad


def verdicts(service: Service, incident: str) -> list[tuple[str, str]]:
    """Each diagnostic run recorded in the incident's log, in order: (id, verdict)."""
    return [(r.diagnostic, r.verdict) for r in service.get(incident).state.runs]
