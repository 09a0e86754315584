"""Shell diagnostics attacked by a hostile playbook or parameter, each checked where it lands.

Every case runs a real program through the service, as `playbook diag run` does, and
then looks at the outcome itself: the canary file's bytes, mode and time; /proc for
processes of the run; what a socket the test owns received; a process the test owns
still alive; the data directory's files grepped for a secret. Our own messages are
checked only after that.

On this kernel the sandbox (Landlock ABI >= 6 and the seccomp filter) is in force, and
the attacks run for real. On a kernel without it, every attack must be refused before
anything runs, and the same landing checks prove that nothing happened: nothing here is
ever skipped.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import RUNBOOK, run_playbook

from playbook.adapters.base import Refused, RunContext, Sink
from playbook.adapters.plugins import load_playbook as load
from playbook.adapters.shell import sandbox_linux
from playbook.adapters.shell.adapter import ShellAdapter
from playbook.adapters.shell.runner import MAX_LINE, MAX_OUTPUT, build_policy, child_env, supervise
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore
from playbook.targets import Target

SUPPORT = sandbox_linux.support()
SANDBOXED = SUPPORT.complete
"""The kernel here can keep every promise: the attacks run. Otherwise they are refused."""

PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
"""An interpreter the sandbox may run (the test's own may live in a home directory)."""

ORIGINAL = "canary: written by the test, never by a diagnostic\n"
TARGETS = {"local": Target("local", "local:", "test")}
_COUNTER = itertools.count()

BASE = {
    "version": 1,
    "id": "shell-attacks",
    "title": "Shell attacks",
    "service": "a service",
    "severity": {
        "default": "P2",
        "levels": [
            {
                "id": "P2",
                "name": "High",
                "response": "1h",
                "resolution": "8h",
                "status_update_every": "1h",
            }
        ],
        "escalation_path": ["on-call"],
    },
    "assessment": {"id": "assessment", "title": "Assessment", "steps": [{"id": "a", "title": "A"}]},
    "phases": [
        {
            "id": "investigation",
            "title": "Investigation",
            "stage": "investigation",
            "starts": "0m",
            "ends": "1h",
            "steps": [{"id": "dig", "title": "Dig", "diagnostics": ["attack"]}],
        }
    ],
}


class Harness:
    """A playbook with one shell diagnostic, written where a runbooks repo would be,
    run through the service against an SQLite data directory."""

    def __init__(self, root: Path) -> None:
        self.playbook_dir = root / "runbooks"
        self.playbook_dir.mkdir()
        self.data_dir = root / "data"
        self.store = SQLiteStore(self.data_dir)
        self.service = Service(self.store, actor="tester")
        self.incident = ""

    def run(
        self,
        argv: list[Any],
        *,
        given: dict[str, object] | None = None,
        opt_in: bool = False,
        **fields: Any,
    ) -> dict[str, Any]:
        """The evidence payload of one run (recorded in the incident).

        Raises:
            Refused: before anything ran.
        """
        diagnostic = {"kind": "shell", "title": "attack", "target": "local", "argv": argv}
        diagnostic.update({"timeout": "20s", **fields})
        path = self.playbook_dir / f"attack-{next(_COUNTER)}.yaml"
        path.write_text(yaml.safe_dump({**BASE, "diagnostics": {"attack": diagnostic}}))
        state = self.service.open(load(path), "shell attack")
        self.incident = state.id
        with pytest.MonkeyPatch.context() as patch:
            if opt_in:
                patch.setattr(ShellAdapter, "check", _opted_in(ShellAdapter.check))
            prepared = self.service.prepare_diagnostic(state.id, "attack", given or {}, TARGETS)
        payload = self.service.execute_diagnostic(prepared)
        self.service.record_diagnostic(state.id, payload)
        return payload

    def runs_recorded(self) -> int:
        events = self.service.get(self.incident).events
        return sum(1 for e in events if e.type == "diagnostic_run")

    def everything_written(self) -> str:
        """Every byte a reviewer could see: the log, evidence files, both exports."""
        parts = [self.service.export(self.incident, fmt) for fmt in ("json", "markdown")]
        for path in self.data_dir.rglob("*"):
            if path.is_file():
                parts.append(path.read_bytes().decode("utf-8", "replace"))
        return "\n".join(parts)


def _opted_in(check: Any) -> Any:
    """The adapter's check, on a request that carries the responder's opt-in, as the
    service puts it there from their own config's `[shell] allow_unsandboxed = true`."""

    def opted_in(self: ShellAdapter, request: Any) -> None:
        request.options = {**request.options, "allow_unsandboxed_shell": True}
        check(self, request)

    return opted_in


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.store.close()


def attack(h: Harness, argv: list[Any], **kw: Any) -> dict[str, Any] | None:
    """Run an attack: its payload where the sandbox is in force; where it is not, check
    that it was refused before anything ran, and return None."""
    if SANDBOXED:
        return h.run(argv, **kw)
    with pytest.raises(Refused, match="sandbox"):
        h.run(argv, **kw)
    assert h.runs_recorded() == 0
    return None


def canary(folder: Path, name: str = "canary.txt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(ORIGINAL)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    path.chmod(0o644)
    return path


def untouched(path: Path) -> None:
    info = path.stat()
    assert path.read_text() == ORIGINAL
    assert info.st_mtime == 1_700_000_000
    assert stat.S_IMODE(info.st_mode) == 0o644


@pytest.fixture
def system_dir() -> Iterator[Path]:
    """A folder under a system root the sandbox may read (/var/cache) when the test may
    create one there (as root), so a write is refused by the sandbox and not merely by
    file permissions; else a temporary folder."""
    try:
        path = Path(tempfile.mkdtemp(prefix="playbook-canary-", dir="/var/cache"))
    except OSError:
        path = Path(tempfile.mkdtemp(prefix="playbook-canary-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def survivors(marker: str) -> list[str]:
    """Command lines of live processes that hold ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            if marker.encode() in cmdline and b"pytest" not in cmdline:
                found.append(cmdline.replace(b"\0", b" ").decode())
    return found


def rows(payload: dict[str, Any] | None) -> list[str]:
    return [r["line"] for r in (payload or {}).get("rows", [])]


def assert_error(payload: dict[str, Any] | None, *words: str) -> None:
    if payload is None:
        return
    assert payload["verdict"] == "error", payload
    for word in words:
        assert word in payload["error"], payload["error"]


# --------------------------------------------------------------------------- the file system


WRITES = {
    "touch a new file": lambda c: ["touch", f"{c.parent}/created-by-diagnostic"],
    "sh -c echo into it": lambda c: ["sh", "-c", f"echo pwned > {c}"],
    "append to it": lambda c: ["sh", "-c", f"echo pwned >> {c}"],
    "tee": lambda c: ["tee", str(c)],
    "cp over it": lambda c: ["cp", "/etc/hostname", str(c)],
    "dd over it": lambda c: ["dd", "if=/dev/zero", f"of={c}", "bs=1", "count=8"],
    "truncate it": lambda c: ["truncate", "-s", "0", str(c)],
    "rm it": lambda c: ["rm", "-f", str(c)],
    "mv it away": lambda c: ["mv", str(c), f"{c}.moved"],
    "hard link it": lambda c: ["ln", str(c), f"{c.parent}/hard-link"],
    "mkdir beside it": lambda c: ["mkdir", f"{c.parent}/new-dir"],
    "chmod it": lambda c: ["chmod", "000", str(c)],
    "touch -d its time": lambda c: ["touch", "-d", "2000-01-01", str(c)],
    "python open(w)": lambda c: [PYTHON, "-c", f"open({str(c)!r}, 'w').write('pwned')"],
    "symlink in the private folder": lambda c: ["sh", "-c", f"ln -s {c} l && echo pwned > l"],
    "sed -i": lambda c: ["sed", "-i", "s/canary/pwned/", str(c)],
}


@pytest.mark.parametrize("where", ["playbook dir", "home", "/tmp", "cwd", "system root"])
@pytest.mark.parametrize("how", sorted(WRITES))
def test_a_diagnostic_cannot_change_a_file(
    h: Harness,
    where: str,
    how: str,
    tmp_path: Path,
    system_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    folder = {
        "playbook dir": h.playbook_dir,
        "home": home / ".ssh",
        "/tmp": Path(tempfile.gettempdir()) / f"playbook-canary-{secrets.token_hex(4)}",
        "cwd": cwd,
        "system root": system_dir,
    }[where]
    try:
        target = canary(folder)
        payload = attack(h, WRITES[how](target))
        untouched(target)
        left = sorted(p.name for p in folder.iterdir() if not p.name.startswith("attack-"))
        assert left == ["canary.txt"]  # nothing created, moved or linked beside it
        assert_error(payload)  # every one of these programs fails, and says so
    finally:
        if where == "/tmp":
            shutil.rmtree(folder, ignore_errors=True)


def test_nothing_is_written_under_etc_or_usr(h: Harness) -> None:
    name = f"playbook-canary-{secrets.token_hex(4)}"
    try:
        payload = attack(h, ["sh", "-c", f"touch /etc/{name}; touch /usr/{name}; echo done"])
        assert not Path(f"/etc/{name}").exists() and not Path(f"/usr/{name}").exists()
        assert rows(payload) == (["done"] if payload else [])
    finally:
        for folder in ("/etc", "/usr"):
            with contextlib.suppress(OSError):
                Path(folder, name).unlink()


def test_the_incident_store_is_neither_written_nor_read(h: Harness) -> None:
    h.service.open(load(RUNBOOK), "an incident titled title-in-the-store")
    db = h.store.path
    before = db.read_bytes()
    payload = attack(h, ["sh", "-c", f"strings {db} || cat {db}; echo pwned >> {db}"])
    assert db.read_bytes() == before
    assert "title-in-the-store" not in " ".join(rows(payload))
    assert_error(payload)


def test_the_private_folder_is_writable_and_removed_after_the_run(h: Harness) -> None:
    payload = attack(h, ["sh", "-c", "pwd; echo kept > note; cat note; echo $HOME $TMPDIR"])
    if payload is None:
        return
    folder, content, env = rows(payload)
    assert content == "kept" and env == f"{folder} {folder}"
    assert folder.startswith(tempfile.gettempdir()) and not Path(folder).exists()


def test_a_dash_parameter_is_refused_before_find_can_delete(h: Harness, tmp_path: Path) -> None:
    target = canary(tmp_path / "logs")
    params = {"flag": {"type": "string"}}
    with pytest.raises(Refused, match="'flag' starts with '-'"):
        h.run(
            ["find", str(target.parent), {"$param": "flag"}],
            params=params,
            given={"flag": "-delete"},
        )
    untouched(target)
    assert h.runs_recorded() == 0


def test_an_option_parameter_reaches_find_but_the_kernel_refuses_the_delete(
    h: Harness, system_dir: Path
) -> None:
    target = canary(system_dir)
    params = {"flag": {"type": "string", "option": True}}
    payload = attack(
        h, ["find", str(system_dir), {"$param": "flag"}], params=params, given={"flag": "-delete"}
    )
    untouched(target)
    assert_error(payload, "find exited with status 1")


def test_sort_o_as_a_parameter_is_refused_and_as_an_option_cannot_write(
    h: Harness, system_dir: Path
) -> None:
    target = canary(system_dir)
    with pytest.raises(Refused, match="option"):
        h.run(
            ["sort", {"$param": "how"}, "/etc/hostname"],
            params={"how": {"type": "string"}},
            given={"how": f"-o{target}"},
        )
    payload = attack(
        h,
        ["sort", {"$param": "how"}, "/etc/hostname"],
        params={"how": {"type": "string", "option": True}},
        given={"how": f"-o{target}"},
    )
    untouched(target)
    assert_error(payload, "sort exited")


def test_a_negative_number_is_an_option_too(h: Harness) -> None:
    with pytest.raises(Refused, match="'n' starts with '-'"):
        h.run(
            ["head", {"$param": "n"}, "/etc/hostname"],
            params={"n": {"type": "int"}},
            given={"n": -5},
        )


def test_a_default_value_starting_with_dash_is_refused_as_well(h: Harness) -> None:
    params = {"flag": {"type": "string", "default": "--delete"}}
    with pytest.raises(Refused, match="'flag'"):
        h.run(["echo", {"$param": "flag"}], params=params)


# --------------------------------------------------------------------------- processes


@pytest.fixture
def marker() -> Iterator[str]:
    """A number no other process holds, put in the run's command lines; whatever holds
    it after the test (only if the test failed) is killed by its pid."""
    value = str(secrets.randbelow(10**9)).zfill(9)
    yield value
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError, ValueError):
            if (
                entry.isdigit()
                and f"3000.{value}".encode() in Path(f"/proc/{entry}/cmdline").read_bytes()
            ):
                os.kill(int(entry), 9)


def sleeper(marker: str) -> str:
    return f"sleep 3000.{marker}"


@pytest.mark.parametrize(
    "script",
    [
        "{s} & echo started",
        "setsid {s} & echo started",
        "nohup {s} >/dev/null 2>&1 & echo started",
        "(sh -c '{s} &' &) ; echo started",  # double fork: the sleeper's parent is gone
        "setsid sh -c '(setsid {s} &)' & echo started",
        "sh -c 'trap \"\" TERM HUP INT; {s}' & echo started",
    ],
    ids=["background", "setsid", "nohup", "double-fork", "setsid-double-fork", "ignores-TERM"],
)
def test_no_process_of_the_run_survives_it(h: Harness, script: str, marker: str) -> None:
    payload = attack(h, ["sh", "-c", script.format(s=sleeper(marker))])
    assert survivors(marker) == []
    if payload is not None:
        assert payload["verdict"] == "pass" and rows(payload) == ["started"]
        assert payload["metrics"]["background_killed"] >= 1


@pytest.mark.parametrize(
    "script",
    [
        "trap '' TERM HUP INT; {s}",
        "setsid sh -c \"trap '' TERM; {s}\" & {s}",
        "(setsid {s} &); exec {s}",
        "exec >&- 2>&-; {s}",
    ],
    ids=["ignores-TERM", "setsid-child", "orphan-and-exec", "closes-its-output"],
)
def test_the_whole_tree_dies_at_the_deadline(h: Harness, script: str, marker: str) -> None:
    payload = attack(h, ["sh", "-c", script.format(s=sleeper(marker))], timeout="1s")
    assert survivors(marker) == []
    assert_error(payload, "deadline of 1 s")


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    """A process of the test's own, outside every run."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize(
    "argv",
    [
        lambda pid: ["kill", "-9", str(pid)],
        lambda pid: ["sh", "-c", f"kill -TERM {pid}"],
        lambda pid: [
            PYTHON,
            "-c",
            f"import os, signal; signal.pidfd_send_signal(os.pidfd_open({pid}), 9)",
        ],
    ],
    ids=["kill", "sh-kill", "pidfd"],
)
def test_a_process_outside_the_run_is_not_signalled(
    h: Harness, victim: subprocess.Popen[bytes], argv: Any
) -> None:
    payload = attack(h, argv(victim.pid))
    assert victim.poll() is None  # still alive
    assert_error(payload)


def test_the_program_cannot_kill_its_supervisor_to_escape(h: Harness, marker: str) -> None:
    payload = attack(
        h,
        ["sh", "-c", f"kill -9 $PPID; setsid {sleeper(marker)} & {sleeper(marker)}"],
        timeout="1s",
    )
    assert survivors(marker) == []
    assert_error(payload, "deadline")


def test_the_program_has_no_capabilities_even_when_playbook_runs_as_root(h: Harness) -> None:
    """Root's capabilities would undo Landlock: with CAP_SYS_PTRACE a sandboxed program
    still read /proc/PID/environ of a process outside it (measured on Linux 6.18)."""
    payload = attack(h, ["grep", "-E", "^(Cap|NoNewPrivs)", "/proc/self/status"])
    if payload is not None:
        status = dict(line.split(":\t") for line in rows(payload))
        none = "0000000000000000"
        assert [status[k] for k in ("CapEff", "CapPrm", "CapInh", "CapAmb")] == [none] * 4
        assert status["NoNewPrivs"] == "1"  # and no set-user-ID program can give them back
        if os.geteuid() == 0:  # only a privileged caller can empty the bounding set
            assert status["CapBnd"] == none


# --------------------------------------------------------------------------- the network


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port the test owns; a connection the program made would wait in its queue."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def received(sock: socket.socket) -> bytes | None:
    """What a connection to ``sock`` delivered; None when nobody connected."""
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return None
    with conn:
        conn.settimeout(5)
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
        return data


def port_of(sock: socket.socket) -> int:
    return sock.getsockname()[1]


TCP_ATTACKS = {
    "python": lambda p: [
        PYTHON,
        "-c",
        f"import socket; socket.create_connection(('127.0.0.1', {p})).send(b'x')",
    ],
    "curl": lambda p: ["curl", "-s", "-m", "3", f"http://127.0.0.1:{p}/"],
    "bash /dev/tcp": lambda p: ["bash", "-c", f"echo x > /dev/tcp/127.0.0.1/{p}"],
    "tcp fast open": lambda p: [
        PYTHON,
        "-c",
        f"import socket; socket.socket().sendto(b'x', socket.MSG_FASTOPEN, ('127.0.0.1', {p}))",
    ],
    "ipv4-mapped ipv6": lambda p: [
        PYTHON,
        "-c",
        "import socket; s = socket.socket(socket.AF_INET6); "
        f"s.connect(('::ffff:127.0.0.1', {p})); s.send(b'x')",
    ],
}


@pytest.mark.parametrize("how", sorted(TCP_ATTACKS))
def test_an_undeclared_port_receives_nothing(h: Harness, listener: socket.socket, how: str) -> None:
    if how == "curl" and shutil.which("curl") is None:
        how = "python"  # the same attack by another program; never a skip
    payload = attack(h, TCP_ATTACKS[how](port_of(listener)))
    assert received(listener) is None
    assert_error(payload)


def test_a_declared_port_is_reachable_and_only_that_one(
    h: Harness, listener: socket.socket
) -> None:
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(8)
    other.setblocking(False)
    p, q = port_of(listener), port_of(other)
    script = (
        "import socket\n"
        f"socket.create_connection(('127.0.0.1', {p})).sendall(b'hello')\n"
        f"try: socket.create_connection(('127.0.0.1', {q})).sendall(b'x')\n"
        "except PermissionError: print('refused')\n"
    )
    with other:
        payload = attack(h, [PYTHON, "-c", script], network=[f"localhost:{p}"])
        assert received(other) is None
        if payload is not None:
            assert received(listener) == b"hello"
            assert payload["verdict"] == "pass" and rows(payload) == ["refused"]
        else:
            assert received(listener) is None


def test_udp_reaches_nothing_without_a_declared_network(h: Harness) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        code = f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {port_of(udp)}))"
        payload = attack(h, [PYTHON, "-c", code])
        with pytest.raises(BlockingIOError):
            udp.recvfrom(100)
        assert_error(payload, "status 1")


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_a_unix_socket_receives_nothing(h: Harness, tmp_path: Path, abstract: bool) -> None:
    """A UNIX socket is how one reaches systemd, Docker or PostgreSQL's peer login."""
    address: str | bytes = (
        b"\0playbook-test-" + secrets.token_hex(4).encode() if abstract else str(tmp_path / "s")
    )
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(address)
        server.listen(8)
        server.setblocking(False)
        code = f"import socket; s = socket.socket(socket.AF_UNIX); s.connect({address!r}); s.send(b'x')"
        payload = attack(h, [PYTHON, "-c", code])
        assert received(server) is None
        assert_error(payload)


# --------------------------------------------------------------------------- secrets


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """A token in the responder's environment."""
    value = f"pb-secret-{secrets.token_hex(8)}"
    monkeypatch.setenv("PLAYBOOK_TEST_TOKEN", value)
    return value


@pytest.fixture
def holder(secret: str) -> Iterator[int]:
    """A process of the responder's with the token in its real (initial) environment,
    where /proc/PID/environ shows it. Without capabilities, so that when the tests run
    as root it is Landlock, not ptrace's capability rule, that keeps the program out."""
    setpriv = shutil.which("setpriv")
    drop = (
        [setpriv, "--bounding-set=-all", "--inh-caps=-all"] if setpriv and os.geteuid() == 0 else []
    )
    proc = subprocess.Popen([*drop, "sleep", "300"], env={**os.environ})
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.mark.parametrize(
    "argv",
    [
        lambda pid: ["env"],
        lambda pid: ["cat", f"/proc/{pid}/environ"],
        lambda pid: ["sh", "-c", "cat /proc/[0-9]*/environ | tr '\\0' '\\n'"],
        lambda pid: ["sh", "-c", "cat /proc/$PPID/environ; ps eww 2>/dev/null"],
    ],
    ids=["env", "proc-environ-of-a-responder-process", "every-environ", "supervisor-and-ps"],
)
def test_the_responders_environment_never_reaches_evidence(
    h: Harness, secret: str, holder: int, argv: Any
) -> None:
    payload = attack(h, argv(holder))
    if payload is not None:
        assert secret not in json.dumps(payload)
        assert secret not in h.everything_written()


def test_playbooks_own_environment_is_not_readable_from_diag_run(tmp_path: Path) -> None:
    """The real command: `playbook diag run` holds the token in its environment."""
    token = f"pb-secret-{secrets.token_hex(8)}"
    script = "cat /proc/[0-9]*/environ | tr '\\0' '\\n'; env"
    diagnostic = {"kind": "shell", "title": "t", "target": "local", "argv": ["sh", "-c", script]}
    path = tmp_path / "pb.yaml"
    path.write_text(yaml.safe_dump({**BASE, "diagnostics": {"attack": diagnostic}}))
    data = tmp_path / "data"
    env = {"PLAYBOOK_TEST_TOKEN": token}
    opened = run_playbook("--data-dir", str(data), "open", str(path), "-t", "t", "--json", env=env)
    assert opened.returncode == 0, opened.stderr
    incident = json.loads(opened.stdout)["id"]
    ran = run_playbook(
        "--data-dir",
        str(data),
        "diag",
        "run",
        incident,
        "attack",
        "--target",
        "local=local:",
        env=env,
    )
    assert ran.returncode == (0 if SANDBOXED else 7), ran.stdout + ran.stderr
    exported = run_playbook("--data-dir", str(data), "export", incident, "--format", "json")
    seen = ran.stdout + ran.stderr + exported.stdout
    seen += "".join(
        p.read_bytes().decode("utf-8", "replace") for p in data.rglob("*") if p.is_file()
    )
    assert token not in seen
    assert ("PATH=" in seen) == SANDBOXED  # the run did happen, and its output is there


def test_only_path_lang_tz_and_declared_variables_arrive(
    h: Harness, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("TZ", "UTC")
    payload = attack(
        h,
        ["env"],
        env={"REGION": "eu-west-1", "WHO": {"$param": "who"}},
        params={"who": {"type": "string"}},
        given={"who": "on-call"},
    )
    if payload is not None:
        names = {line.split("=", 1)[0] for line in rows(payload)}
        assert names <= {"PATH", "LANG", "TZ", "HOME", "TMPDIR", "REGION", "WHO", "PWD"}, names
        assert "REGION=eu-west-1" in rows(payload) and "WHO=on-call" in rows(payload)


def test_a_home_under_a_readable_root_stays_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Landlock grants whole trees; a home inside one is carved out, its siblings stay."""
    root = tmp_path / "srv"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "motd").write_text("readable\n")
    home = root / "home" / "alice"
    (home / ".ssh").mkdir(parents=True)
    key = f"ssh-key-{secrets.token_hex(8)}"
    (home / ".ssh" / "id_ed25519").write_text(key + "\n")
    (root / "home" / "bob.txt").write_text("a sibling of the home, readable\n")
    monkeypatch.setenv("HOME", str(home))
    support = sandbox_linux.support()
    if not support.complete:
        with pytest.raises(Refused):
            Harness(tmp_path).run(["cat", str(home / ".ssh" / "id_ed25519")])
        return
    folder = tmp_path / "private"
    folder.mkdir()
    policy = build_policy(folder, (), support, roots=(str(root), *sandbox_linux.SYSTEM_ROOTS))
    script = f"cat {root}/etc/motd {root}/home/bob.txt; cat {home}/.ssh/id_ed25519; ls {home}"
    ctx, sink = RunContext(10, 5), Sink(None)
    try:
        outcome = supervise(
            "/bin/sh",
            ["sh", "-c", script],
            child_env({}, folder, policy),
            folder,
            policy,
            ctx,
            sink,
            100,
        )
    finally:
        ctx.finish()
    lines = [r["line"] for r in sink.rows]
    assert lines == ["readable", "a sibling of the home, readable"]
    assert key not in outcome.stderr and "Permission denied" in outcome.stderr


def test_the_playbook_config_dir_is_unreadable(
    h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "xdg" / "playbook"
    config.mkdir(parents=True)
    token = f"redis://:{secrets.token_hex(8)}@cache:6379"
    (config / "playbook.toml").write_text(f'[targets]\ncache = "{token}"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    payload = attack(h, ["cat", str(config / "playbook.toml")])
    if payload is not None:
        assert token not in h.everything_written()
        assert_error(payload, "cat exited with status 1")


# --------------------------------------------------------------------------- output and exit


def test_endless_output_without_a_newline_stops_at_the_byte_cap(h: Harness) -> None:
    payload = attack(h, ["sh", "-c", "tr '\\000' x < /dev/zero"])
    if payload is None:
        return
    assert_error(payload, f"{MAX_OUTPUT:,} bytes")
    assert "deadline" not in payload["error"]
    evidence = Path(payload["file"])
    assert evidence.stat().st_size < MAX_LINE + 100
    assert [json.loads(line)["line"] for line in evidence.read_text().splitlines()] == [
        "x" * MAX_LINE
    ]


def test_endless_lines_stop_at_the_byte_cap_with_bounded_evidence(h: Harness) -> None:
    payload = attack(h, ["yes", "a line"])
    if payload is None:
        return
    assert_error(payload, "bytes of output")
    assert payload["rows_total"] == 1000  # the row limit; the file holds them all
    assert Path(payload["file"]).stat().st_size < 1000 * 40


def test_endless_stderr_is_capped_too(h: Harness) -> None:
    payload = attack(h, ["sh", "-c", "yes 'to stderr' >&2"])
    assert_error(payload, "bytes of output")


def test_a_non_zero_exit_is_an_error(h: Harness) -> None:
    payload = attack(h, ["sh", "-c", "echo partial; echo 'it broke' >&2; exit 2"])
    assert_error(payload, "sh exited with status 2; the diagnostic expects 0", "it broke")
    assert rows(payload) == (["partial"] if payload else [])


def test_an_expected_exit_code_passes(h: Harness) -> None:
    payload = attack(h, ["grep", "no-such-text-anywhere", "/etc/hostname"], exit_codes=[0, 1])
    if payload is not None:
        assert payload["verdict"] == "pass" and payload["metrics"]["exit_code"] == 1


def test_an_exit_code_not_listed_is_still_an_error(h: Harness) -> None:
    payload = attack(h, ["grep", "x", "/no/such/file"], exit_codes=[0, 1])
    assert_error(payload, "status 2; the diagnostic expects 0, 1")


def test_an_expectation_on_the_output_decides_a_passing_run(h: Harness) -> None:
    payload = attack(
        h,
        ["sh", "-c", "echo one; echo two"],
        expect=[{"metric": "lines", "op": "eq", "value": 2}],
    )
    if payload is not None:
        assert payload["verdict"] == "pass"
        assert payload["metrics"]["sandboxed"] is True


# --------------------------------------------------------------------------- no Landlock


@pytest.mark.parametrize("abi", ["0", "5"])
def test_without_landlock_shell_diagnostics_are_refused(
    h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, abi: str
) -> None:
    monkeypatch.setenv(sandbox_linux.ABI_CAP_VARIABLE, abi)
    target = canary(tmp_path / "victim")
    with pytest.raises(Refused) as refused:
        h.run(["sh", "-c", f"echo pwned > {target}"])
    untouched(target)
    assert h.runs_recorded() == 0
    said = str(refused.value)
    assert "allow_unsandboxed" in said
    assert ("no Landlock" in said) if abi == "0" else ("ABI 5" in said)


def test_the_responder_may_opt_in_to_running_without_landlock(
    h: Harness, secret: str, marker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(sandbox_linux.ABI_CAP_VARIABLE, "0")
    payload = h.run(["sh", "-c", f"env; setsid {sleeper(marker)} & echo done"], opt_in=True)
    assert payload["verdict"] == "pass"
    assert payload["metrics"]["sandboxed"] is False  # the evidence says so
    assert secret not in h.everything_written()  # the environment is still scrubbed
    assert survivors(marker) == []  # and the tree still dies
    assert "done" in rows(payload)


# --------------------------------------------------------------------------- the rule builder


def test_readable_rules_carve_out_unreadable_paths_and_skip_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a" / "secret" / "deep").mkdir(parents=True)
    (root / "a" / "open").mkdir()
    (root / "a" / "file.txt").write_text("x")
    (root / "b").mkdir()
    (root / "link").symlink_to(root / "a" / "secret")
    rules = {
        r.path: r.rights
        for r in sandbox_linux.readable_rules([str(root)], [str(root / "a" / "secret")])
    }
    assert set(rules) == {str(root / "a" / "open"), str(root / "a" / "file.txt"), str(root / "b")}
    assert rules[str(root / "a" / "file.txt")] & sandbox_linux.FS_READ_DIR == 0
