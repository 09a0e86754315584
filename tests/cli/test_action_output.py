"""What `playbook action` prints: no secret the data holds, and a phrase taken only as it
is written. On a real Redis, checked on the server and in the real process's output."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import run_playbook
from redis_actions_support import write_playbook
from servers import PASSWORD, RedisServer, redis_server

from playbook import redaction
from playbook.errors import ExitCode

PLANTED = PASSWORD.encode()
"""The target's password, ``${RPW}`` in the responder's config, planted in key names."""
ODD = b"k:\xff" + PLANTED
"""The same, in a key that is not UTF-8 (shown with a \\xff escape)."""


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    """The in-process commands start as a new process would: knowing no secret yet."""
    redaction._forget_all()
    yield
    redaction._forget_all()


@pytest.fixture
def home(tmp_path: Path, redis: RedisServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of a responder whose config names the target with ``${RPW}``."""
    config = tmp_path / "config" / "playbook"
    config.mkdir(parents=True)
    (config / "playbook.toml").write_text(
        f'[targets]\ncache = "redis://:${{RPW}}@127.0.0.1:{redis.port}/0"\n'
    )
    monkeypatch.setenv("RPW", PASSWORD)
    return {
        "PLAYBOOK_HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "RPW": PASSWORD,
    }


def playbook(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_playbook(*args, env=env)


def opened(env: dict[str, str], tmp_path: Path) -> str:
    done = playbook(env, "open", str(write_playbook(tmp_path / "pb")), "--title", "t", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["id"]


def last_run(env: dict[str, str], incident: str) -> str:
    rows = json.loads(playbook(env, "action", "status", incident, "--json").stdout)
    return rows[-1]["run"]


def test_plan_and_kept_lines_show_a_planted_secret_masked_as_the_timeline_does(
    redis: RedisServer, home: dict[str, str], tmp_path: Path
) -> None:
    with redis.client() as client:
        client.flushall()
        client.set(b"k:" + PLANTED, b"v")
        client.set(ODD, b"odd")
        incident = opened(home, tmp_path)

        dry = playbook(home, "action", "run", incident, "rdrop", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "  delete k:***\n" in dry.stdout and "  delete k:\\xff***\n" in dry.stdout
        assert client.exists(b"k:" + PLANTED, ODD) == 2  # a dry run writes nothing

        applied = playbook(home, "action", "run", incident, "rdrop", "--confirm", "cache")
        assert applied.returncode == 0, applied.stderr
        assert client.exists(b"k:" + PLANTED, ODD) == 0
        client.set(b"k:" + PLANTED, b"newer")  # written after the apply: kept

        back = playbook(
            home, "action", "rollback", incident, last_run(home, incident), "--confirm", "cache"
        )
        assert back.returncode == 0, back.stderr
        assert "kept 1: k:*** changed after the apply" in back.stdout
        assert client.get(b"k:" + PLANTED) == b"newer" and client.get(ODD) == b"odd"

    for done in (dry, applied, back):
        assert PASSWORD not in done.stdout + done.stderr
    # the screen says what the timeline says, line for line
    exported = playbook(home, "export", incident, "--format", "json", "-o", str(tmp_path / "e"))
    assert exported.returncode == 0, exported.stderr
    timeline = (tmp_path / "e").read_text()
    assert PASSWORD not in timeline
    assert json.dumps("delete k:\\xff***") in timeline
    assert json.dumps("k:*** changed after the apply") in timeline


# --------------------------------------------------------------------------- the phrase


@pytest.mark.parametrize("typed", [" cache", "cache ", "cache\n", "\tcache", "cache\r"])
def test_a_phrase_with_anything_around_it_is_refused_and_nothing_is_written(
    redis: RedisServer, home: dict[str, str], tmp_path: Path, typed: str
) -> None:
    with redis.client() as client:
        client.flushall()
        client.set("k:x", "1")
        incident = opened(home, tmp_path)
        done = playbook(home, "action", "run", incident, "rdrop", "--confirm", typed)
        assert client.get("k:x") == b"1"
    assert done.returncode == ExitCode.REFUSED, done.stderr
    assert "--confirm must be 'cache', exactly" in done.stderr
    assert "without the spaces or line breaks around it" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_forced_rollback_phrase_with_a_trailing_space_is_refused(
    redis: RedisServer, home: dict[str, str], tmp_path: Path
) -> None:
    with redis.client() as client:
        client.flushall()
        client.set("k:x", "1")
        incident = opened(home, tmp_path)
        applied = playbook(home, "action", "run", incident, "rdrop", "--confirm", "cache")
        assert applied.returncode == 0, applied.stderr
        client.set("k:x", "newer")  # changed after the apply: only --force restores it
        run = last_run(home, incident)
        refused = playbook(
            home, "action", "rollback", incident, run, "--force", "--confirm", "force cache "
        )
        assert client.get("k:x") == b"newer"
        forced = playbook(
            home, "action", "rollback", incident, run, "--force", "--confirm", "force cache"
        )
        assert client.get("k:x") == b"1"  # the exact phrase does
    assert refused.returncode == ExitCode.REFUSED, refused.stderr
    assert "'force cache' exactly" in refused.stderr
    assert forced.returncode == 0, forced.stderr


def read_until(fd: int, wanted: bytes, seen: bytearray, within: float = 60.0) -> bool:
    """Read the terminal until ``wanted`` shows (bounded; a condition, not a sleep)."""
    deadline = time.monotonic() + within
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return False
            if not chunk:
                return False
            seen.extend(chunk)
    return wanted in seen


def test_a_phrase_typed_with_a_space_at_the_prompt_is_refused(
    redis: RedisServer, home: dict[str, str], tmp_path: Path
) -> None:
    with redis.client() as client:
        client.flushall()
        client.set("k:x", "1")
        incident = opened(home, tmp_path)
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "playbook", "action", "run", incident, "rdrop"],
            stdin=slave,
            stdout=subprocess.DEVNULL,
            stderr=slave,
            env={**os.environ, **home, "PYTHONUNBUFFERED": "1"},
        )
        os.close(slave)
        seen = bytearray()
        try:
            assert read_until(master, b"to apply (anything else stops here): ", seen), seen
            os.write(master, b" cache\r")  # as a terminal sends it
            assert proc.wait(timeout=60) == ExitCode.REFUSED
            read_until(master, b"Nothing was written.", seen, within=10)
        finally:
            os.close(master)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert client.get("k:x") == b"1"
    said = bytes(seen).decode(errors="replace")
    assert re.search(r"type 'cache' exactly", said), said
