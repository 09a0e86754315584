"""Servers that playbook starts itself never outlive it: stopped in order, or by the
guardian when the process that started them is killed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import redis
from drill_support import gone

from playbook.drill.servers import Sandbox

OWNER = textwrap.dedent(
    """
    import json, sys, threading
    from playbook.drill.servers import Sandbox
    box = Sandbox(postgres=True)
    print(json.dumps({"folder": str(box.folder), "redis": box.redis.proc.pid,
                      "postgres": box.postgres.pid, "port": box.redis.port}), flush=True)
    threading.Event().wait()  # until killed
    """
)


def test_a_sandbox_serves_and_leaves_nothing_behind() -> None:
    with Sandbox() as box:
        assert box.redis is not None and box.postgres is not None
        with redis.Redis(port=box.redis.port, password=box.redis.password) as client:
            assert client.ping()
        with box.postgres.connect() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        pids = [box.redis.proc.pid, box.postgres.pid]
        folder = box.folder
    assert all(gone(pid) for pid in pids)
    assert not folder.exists()


def test_a_killed_owner_leaves_no_server_running_and_no_folder() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        assert line, owner.stderr.read() if owner.stderr else ""
        started = json.loads(line)
        assert Path(started["folder"]).exists()
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.communicate()  # reaps it and closes its pipes, whatever happened

    assert gone(started["redis"]) and gone(started["postgres"])
    deadline = time.monotonic() + 10
    while Path(started["folder"]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the guardian removes it right after the servers are gone
    assert not Path(started["folder"]).exists()
    with redis.Redis(port=started["port"], socket_connect_timeout=1) as client:
        try:
            client.ping()
        except redis.ConnectionError:
            pass
        else:
            raise AssertionError("the sandbox's port still answers")
