"""What the trust and secret tests share: a small playbook, a listener that records what
reaches it, and every byte a run leaves behind."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

MINI = """\
version: 1
id: mini
title: A small playbook for the attack tests
service: Test service
severity:
  default: P2
  levels:
    - {id: P2, name: High, response: 1h, resolution: 8h, status_update_every: 1h}
  escalation_path: [Lead]
assessment:
  id: assessment
  title: Assessment
  steps:
    - id: look
      title: Look
      diagnostics: [pg-one, redis-size, api-status, api-echo, mongo-count]
      items: [Look at it]
phases:
  - id: investigation
    title: Investigation
    stage: investigation
    starts: 0m
    ends: 4h
    steps:
      - id: scope
        title: Scope
        items: [Scope it]
diagnostics:
  pg-one:
    kind: postgres
    title: One row
    target: db
    timeout: 10s
    connect_timeout: 3s
    query: {sql: "SELECT 1 AS one"}
  redis-size:
    kind: redis
    title: How many keys
    target: cache
    timeout: 10s
    connect_timeout: 3s
    query: {op: dbsize}
  api-status:
    kind: http
    title: The status endpoint
    target: api
    timeout: 10s
    connect_timeout: 3s
    query: {path: /status, pick: {n: count}}
  api-echo:
    kind: http
    title: An endpoint that echoes what it was sent
    target: api
    timeout: 10s
    connect_timeout: 3s
    query: {path: /echo, pick: {n: count, echo: echo}}
  mongo-count:
    kind: mongo
    title: Users
    target: docs
    timeout: 10s
    connect_timeout: 2s
    query: {op: count, collection: users}
"""


def write_playbook(folder: Path, extra: str = "") -> Path:
    """The small playbook in ``folder`` (created), with ``extra`` YAML appended."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mini.yaml"
    path.write_text(MINI + extra, encoding="utf-8")
    return path


class Listener:
    """A local TCP port the test owns: counts the connections that reach it and keeps
    every byte they send. It answers nothing and hangs up after the client is quiet."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self.received = b""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.connections += 1
            conn.settimeout(0.5)  # the client waits for an answer that never comes
            with conn, contextlib.suppress(OSError):
                while chunk := conn.recv(65536):
                    with self._lock:
                        self.received += chunk

    def close(self) -> tuple[int, bytes]:
        """Stop listening; (connections, bytes) including any still queued."""
        self.sock.setblocking(False)
        while True:  # a connection queued but not yet accepted counts too
            try:
                conn, _ = self.sock.accept()
            except OSError:
                break
            with conn, self._lock:
                self.connections += 1
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in the thread
        self.sock.close()
        self._thread.join(5)
        with self._lock:
            return self.connections, self.received

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sock.fileno() != -1:
            self.close()


def everything(home: Path, *outputs: str) -> str:
    """Every byte a user or reviewer could see: outputs, the log, evidence, backups."""
    parts = list(outputs)
    for path in sorted(home.rglob("*")):
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)
