"""A target scheme a kind cannot honour is refused; nothing silently runs elsewhere.

Each case gives a diagnostic a target of the wrong scheme that points at a socket the
test owns (or, for shell, a command that would create a file), and checks where it
would land: the socket received no connection, the file does not exist.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from numbers_harness import Harness

from playbook.adapters.base import Refused
from playbook.errors import ExitCode
from playbook.targets import SchemeRefused, Target


class Listener:
    """A TCP socket the test owns; says whether anyone connected."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def connected(self) -> bool:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True


@pytest.fixture
def listener() -> Any:
    box = Listener()
    yield box
    box.sock.close()


def _shell(canary: Path) -> dict[str, Any]:
    return {"kind": "shell", "argv": ["touch", str(canary)]}


def _http(canary: Path) -> dict[str, Any]:
    return {"kind": "http", "query": {"path": "/"}}


def _prometheus(canary: Path) -> dict[str, Any]:
    return {"kind": "prometheus", "query": {"promql": "up"}}


@pytest.mark.parametrize(
    ("make", "scheme"),
    [
        (_shell, "redis"),
        (_shell, "postgresql"),
        (_shell, "http"),
        (_shell, "mongodb"),
        (_http, "ssh"),
        (_http, "redis"),
        (_http, "local"),
        (_prometheus, "ssh"),
        (_prometheus, "redis"),
        (_prometheus, "postgresql"),
    ],
)
def test_a_foreign_scheme_is_refused_before_anything_runs(
    tmp_path: Path, listener: Listener, make: Any, scheme: str
) -> None:
    canary = tmp_path / "ran-locally"
    h = Harness(tmp_path)
    uri = "local:" if scheme == "local" else f"{scheme}://u:pw-not-shown@127.0.0.1:{listener.port}/"
    h.targets = {"t": Target("t", uri, "test")}
    diagnostic = {"title": "t", "target": "t", "timeout": "10s", **make(canary)}
    with pytest.raises(SchemeRefused) as caught:
        h.run(diagnostic)
    assert caught.value.exit_code == ExitCode.REFUSED
    text = caught.value.title + caught.value.message
    assert "'t'" in text and f"scheme '{scheme}'" in text and "pw-not-shown" not in text
    assert not canary.exists()  # the shell program did not run here
    assert not listener.connected()  # nothing reached the target either


@pytest.mark.parametrize("scheme", ["ssh", "http", "local"])
@pytest.mark.parametrize("kind", ["redis", "postgres", "mongo"])
def test_database_kinds_send_nothing_to_a_foreign_scheme(
    tmp_path: Path, listener: Listener, kind: str, scheme: str
) -> None:
    """Their drivers' URI parsers are the authority (no list of ours): a foreign scheme
    is an error before a connection is made, never a connection somewhere else."""
    query = {
        "redis": {"op": "dbsize"},
        "postgres": {"sql": "SELECT 1"},
        "mongo": {"op": "list_indexes", "collection": "c"},
    }[kind]
    h = Harness(tmp_path)
    uri = "local:" if scheme == "local" else f"{scheme}://u@127.0.0.1:{listener.port}/x"
    h.targets = {"t": Target("t", uri, "test")}
    diagnostic = {"kind": kind, "title": "t", "target": "t", "timeout": "5s", "query": query}
    try:
        payload = h.run(diagnostic)
    except (Refused, SchemeRefused):
        payload = {"verdict": "error"}
    assert payload["verdict"] == "error", payload
    assert not listener.connected()


def test_the_shell_adapter_alone_refuses_a_foreign_scheme() -> None:
    """A caller that skips the service (a plugin, a test) is held to the same rule."""
    from playbook.adapters.base import RunRequest
    from playbook.adapters.shell.adapter import ShellAdapter

    request = RunRequest("d", {"argv": ["true"]}, "redis://127.0.0.1:6379/0")
    with pytest.raises(Refused, match="'local' and 'ssh', not 'redis'"):
        ShellAdapter().check(request)


def test_the_cli_refuses_with_exit_7_and_no_traceback(tmp_path: Path, cli: Any) -> None:
    """`playbook diag run` of a shell diagnostic whose target is redis://: a clear
    refusal, the REFUSED exit code, and the program never ran."""
    import json

    canary = tmp_path / "ran-locally"
    path = Harness(tmp_path).playbook(
        {"title": "t", "target": "t", "timeout": "10s", **_shell(canary)}
    )
    opened = cli("open", str(path), "--title", "disk", "--json")
    assert opened.exit_code == 0, opened.output
    incident = json.loads(opened.output)["id"]
    result = cli("diag", "run", incident, "check", "--target", "t=redis://127.0.0.1:1/0")
    assert result.exit_code == ExitCode.REFUSED, result.output
    assert "scheme 'redis'" in result.output and "Traceback" not in result.output
    assert not canary.exists()
