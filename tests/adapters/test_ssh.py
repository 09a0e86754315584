"""Shell diagnostics on ssh:// targets: the program runs through the system ssh, every
argument quoted so the remote shell cannot reinterpret it.

No sshd is available here, so most cases put a fake ``ssh`` first on PATH: it records
its argv and runs the command string through ``sh -c``, as sshd hands it to the remote
login shell. What lands is checked: whether a file the injection would create exists,
what argv ssh got, what the program printed. One case runs the real ssh inside the
sandbox against a socket the test owns, and checks what that socket received.
"""

from __future__ import annotations

import shutil
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from numbers_harness import Harness

from playbook.adapters.base import Refused
from playbook.adapters.shell import sandbox_linux
from playbook.adapters.shell.remote import parse, remote_command
from playbook.targets import Target, Targets

SH = shutil.which("sh", path="/usr/bin:/bin")
PRINTF = "printf"


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ssh first on PATH; returns the file its argv is written to (NUL-separated).

    It runs outside the sandbox (a program in a temporary folder is not one the sandbox
    may execute), as the responder's opt-in allows; the quoting under test is the same.
    """
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "ssh-argv"
    script = folder / "ssh"
    script.write_text(
        f"#!{SH}\n"
        f"for a in \"$@\"; do printf '%s\\0' \"$a\"; done > '{log}'\n"
        "for last; do :; done\n"
        f'exec {SH} -c "$last"\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    incomplete = sandbox_linux.Support(0, "x86_64", True, ["(test) no Landlock"])
    monkeypatch.setattr(sandbox_linux, "support", lambda: incomplete)
    return log


def remote(tmp_path: Path, uri: str = "ssh://alice@db.internal:2222") -> Harness:
    h = Harness(tmp_path)
    h.targets = Targets({"box": Target("box", uri, "test")}, allow_unsandboxed_shell=True)
    return h


def diagnostic(argv: list[Any], **fields: Any) -> dict[str, Any]:
    return {
        "kind": "shell",
        "title": "remote",
        "target": "box",
        "timeout": "20s",
        "argv": argv,
        "params": {"p": {"type": "string", "default": "-"}},
        **fields,
    }


def argv_of(log: Path) -> list[str]:
    return [a.decode() for a in log.read_bytes().split(b"\0")[:-1]]


@pytest.mark.parametrize(
    "value",
    [
        "; touch {x}",
        "$(touch {x})",
        "`touch {x}`",
        "'; touch {x}; '",
        "x\ntouch {x}",
        "x && touch {x}",
        "x | tee {x}",
        "> {x}",
    ],
)
def test_a_parameter_cannot_run_a_second_command_remotely(
    tmp_path: Path, fake_ssh: Path, value: str
) -> None:
    canary = tmp_path / "created-remotely"
    text = value.format(x=canary)
    payload = remote(tmp_path).run(diagnostic([PRINTF, "%s", {"$param": "p"}]), {"p": text})
    assert not canary.exists()  # the injection did not run
    assert payload["verdict"] == "pass", payload
    assert Harness.file_rows(payload) == [{"line": line} for line in text.split("\n")]


def test_ssh_gets_batch_mode_a_connect_timeout_and_the_target(
    tmp_path: Path, fake_ssh: Path
) -> None:
    payload = remote(tmp_path).run(diagnostic(["true"], connect_timeout="3s"))
    assert payload["verdict"] == "pass", payload
    assert payload["metrics"]["remote"] is True  # the evidence says it ran elsewhere
    argv = argv_of(fake_ssh)
    pairs = {argv[i + 1] for i, a in enumerate(argv) if a == "-o"}
    assert {"BatchMode=yes", "ConnectTimeout=3", "StrictHostKeyChecking=yes"} <= pairs
    assert argv[argv.index("-F") + 1] == "none"  # no ssh_config: no ProxyCommand
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "alice"
    assert argv[-3:] == ["--", "db.internal", "true"]


def test_declared_env_reaches_the_remote_program(tmp_path: Path, fake_ssh: Path) -> None:
    d = diagnostic([SH, "-c", 'printf "%s" "$WHO"'], env={"WHO": {"$param": "p"}})
    payload = remote(tmp_path).run(d, {"p": "it's $HOME; `x`"})
    assert Harness.file_rows(payload) == [{"line": "it's $HOME; `x`"}]


def test_numbers_extracted_from_remote_output(tmp_path: Path, fake_ssh: Path) -> None:
    d = diagnostic(
        [PRINTF, "Use%%\\n 95%%\\n"],
        extract={
            "columns": ["use_percent"],
            "skip": 1,
            "fields": {"use_percent": {"as": "number", "strip": "%"}},
        },
        expect=[{"metric": "use_percent", "op": "le", "value": 90}],
    )
    payload = remote(tmp_path).run(d)
    assert payload["verdict"] == "fail", payload
    assert payload["metrics"]["use_percent"] == 95


def test_the_deadline_ends_a_remote_run(tmp_path: Path, fake_ssh: Path) -> None:
    payload = remote(tmp_path).run(diagnostic(["sleep", "30"], timeout="1s"))
    assert payload["verdict"] == "error" and "deadline" in payload["error"]


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("ssh://alice:secret@db.internal", "no password"),
        ("ssh://-oProxyCommand=touch@db.internal", "option"),
        ("ssh://alice@db.internal/etc", "no path"),
        ("ssh://alice@db.internal?identity=key", "absolute path"),
        ("ssh://alice@db.internal?proxy=x", "only ?identity"),
        ("ssh://", "ssh://user@host"),
    ],
)
def test_a_malformed_ssh_target_is_refused_before_ssh_runs(
    tmp_path: Path, fake_ssh: Path, uri: str, says: str
) -> None:
    with pytest.raises(Refused) as caught:
        remote(tmp_path, uri).run(diagnostic(["true"]))
    assert says in caught.value.title + caught.value.message
    assert "secret" not in caught.value.title + caught.value.message
    assert not fake_ssh.exists()  # ssh never started


def test_network_is_refused_for_a_remote_run(tmp_path: Path, fake_ssh: Path) -> None:
    with pytest.raises(Refused, match="network"):
        remote(tmp_path).run(diagnostic(["true"], network=["db.internal:5432"]))
    assert not fake_ssh.exists()


def test_remote_command_splits_back_into_the_same_argv() -> None:
    import shlex

    argv = ["grep", "-e", "a b", "it's", "$(x)", "`y`", "\n", "", "*"]
    assert shlex.split(remote_command(argv, {})) == argv
    assert shlex.split(remote_command(argv, {"A": "1 2"})) == ["env", "A=1 2", *argv]


def test_parse_keeps_the_files_and_the_port() -> None:
    t = parse("ssh://bob@[::1]:2200?identity=/k/id&known_hosts=/k/kh")
    assert (t.user, t.host, t.port, t.identity, t.known_hosts) == (
        "bob",
        "::1",
        2200,
        "/k/id",
        "/k/kh",
    )


def test_the_real_ssh_runs_in_the_sandbox_and_reaches_only_its_port(tmp_path: Path) -> None:
    """The system ssh, confined like any program, connects to the target's port (a socket
    the test owns, which receives ssh's greeting), then fails to agree and says so."""
    if shutil.which("ssh", path="/usr/bin:/bin") is None:
        pytest.fail("this test needs the system ssh")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(10)
            got.append(conn.recv(200))
            conn.sendall(b"not an ssh server\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    h = Harness(tmp_path)
    h.targets = {"box": Target("box", f"ssh://alice@127.0.0.1:{port}", "test")}
    if not sandbox_linux.support().complete:
        with pytest.raises(Refused, match="sandbox"):
            h.run(diagnostic(["true"]))
        assert not got
        return
    payload = h.run(diagnostic(["true"]))
    thread.join(10)
    server.close()
    assert got and got[0].startswith(b"SSH-2.0-")  # ssh itself reached the port
    assert payload["verdict"] == "error"
    assert f"ssh to 127.0.0.1:{port} failed" in payload["error"], payload
    assert payload["metrics"] == {} or payload["metrics"].get("sandboxed") is not False
