"""A local target is exactly ``local:``: one that names a host, a user or a path, or is
spelt another way, is refused and nothing runs here.

``local://app-host/`` and ``local:ops@app-host`` read as "on app-host", yet the local
scheme runs everything on this machine. A diagnostic that ran leaves an evidence file
(the sandbox lets it write nowhere else), so each refused case checks that none exists
and that the incident holds no run; a shell action's apply would create a file, and
the file does not exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from numbers_harness import BASE, Harness

from playbook.adapters.base import Refused, RunRequest
from playbook.adapters.shell import sandbox_linux
from playbook.adapters.shell.adapter import ShellAdapter
from playbook.errors import ExitCode
from playbook.service import Service
from playbook.targets import SchemeRefused, Target, is_local

NOT_LOCAL = [
    "local://app-host.internal/",
    "local:ops@app-host.internal",
    "local://",
    "local:x",
    "local:/",
    "local:#a",
    "LOCAL:",
    "Local:x",
    " local:",
    "local:\n",
]


@pytest.mark.parametrize("uri", NOT_LOCAL)
def test_only_the_bare_form_is_local(uri: str) -> None:
    assert is_local("local:")
    assert not is_local(uri)
    # (local:?host=a is refused too, earlier: libpq's parser reads host= as its own)
    assert not is_local("local:?host=a")


@pytest.mark.parametrize("uri", NOT_LOCAL)
def test_a_diagnostic_on_a_local_target_naming_more_runs_nothing(tmp_path: Path, uri: str) -> None:
    h = Harness(tmp_path, {"t": uri})
    with pytest.raises(SchemeRefused) as caught:
        h.run(PRINTS)
    assert caught.value.exit_code == ExitCode.REFUSED
    assert "'t'" in caught.value.title and "local:" in caught.value.message
    assert ran(tmp_path) == []


def test_the_bare_form_still_runs_here(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"t": "local:"})
    payload = h.run(PRINTS)
    assert payload["verdict"] == "pass" and Harness.file_rows(payload) == [{"line": "ran"}]
    assert len(ran(tmp_path)) == 1


PRINTS = {"kind": "shell", "title": "t", "target": "t", "argv": ["printf", "ran"]}


def ran(root: Path) -> list[Path]:
    """The evidence files written under ``root``; each run writes one."""
    return sorted(root.rglob("*.jsonl"))


@pytest.mark.parametrize("uri", ["local://other/", "local:ops@other", "LOCAL:"])
def test_the_shell_adapter_alone_refuses_them(uri: str) -> None:
    """A caller that skips the service (a plugin, a test) is held to the same rule."""
    with pytest.raises(Refused, match="exactly local:"):
        ShellAdapter().run(RunRequest("d", {"argv": ["true"]}, uri), None, None)  # type: ignore[arg-type]


def _action_playbook(tmp_path: Path, canary: Path) -> Path:
    doc: dict[str, Any] = {
        **BASE,
        "diagnostics": {"check": PRINTS},
        "actions": {
            "touch": {
                "kind": "shell",
                "title": "Touch a file",
                "target": "here",
                "do": {
                    "operation": "commands",
                    "plan": {"argv": ["true"]},
                    "backup": "none",
                    "apply": {"argv": ["touch", str(canary)]},
                    "writes": [str(tmp_path)],
                },
            }
        },
    }
    path = tmp_path / "action.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.mark.skipif(
    not sandbox_linux.support().complete, reason="a shell action runs only in the sandbox"
)
@pytest.mark.parametrize("uri", ["local://otherhost/", "local:ops@otherhost", "Local:"])
def test_a_shell_action_on_such_a_target_runs_nothing(
    sqlite_service: Service, tmp_path: Path, uri: str
) -> None:
    canary = tmp_path / "applied-here"
    incident = sqlite_service.open(_action_playbook(tmp_path, canary), "t").id
    with pytest.raises(SchemeRefused, match="exactly local:"):
        run = sqlite_service.start_action(incident, "touch", {}, {"here": Target("here", uri, "t")})
        run.dry_run()
        run.backup()
        run.confirm(run.phrase)
        run.apply()
    assert not canary.exists()


def test_the_cli_refuses_with_exit_7(tmp_path: Path, cli: Any) -> None:
    import json

    path = Harness(tmp_path).playbook(PRINTS)
    opened = cli("open", str(path), "--title", "x", "--json")
    incident = json.loads(opened.output)["id"]
    result = cli("diag", "run", incident, "check", "--target", "t=local://app-host/")
    assert result.exit_code == ExitCode.REFUSED, result.output
    assert "exactly local:" in result.output and "Traceback" not in result.output
    assert ran(tmp_path) == []  # no evidence file: the program never ran
