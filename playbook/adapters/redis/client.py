"""The connection a Redis diagnostic reads through: only reads, and no reply past a cap.

:class:`ReadOnlyGuard` asks the server itself (``COMMAND INFO``) whether a command is
read-only and refuses anything else, and the expensive or blocking reads, before it is
sent; :class:`GuardedRedis` and its pipelines put every command through it.
:class:`CappedParser` counts each reply's bytes as they arrive and drops the connection
past :data:`~playbook.adapters.redis.values.MAX_REPLY`, so no reply bigger than the cap
is ever held, whatever was asked.

This is the only module of the reader that imports redis-py (about 80 ms): the adapter
(:mod:`playbook.adapters.redis.reader`) is imported whenever the playbook model is built,
and imports this one only when a diagnostic runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import redis
from redis._parsers.hiredis import NOT_ENOUGH_DATA, _HiredisParser
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.retry import Retry

from playbook.adapters.base import Refused, RunContext, RunError
from playbook.adapters.redis.values import MAX_REPLY, _text

__all__ = [
    "CappedParser",
    "GuardedRedis",
    "ReadOnlyGuard",
    "ReplyTooLarge",
    "connect",
    "open_client",
]

DENIED = frozenset(
    {
        # walk the whole keyspace in one call, or never return
        "KEYS",
        "MONITOR",
        "SUBSCRIBE",
        "PSUBSCRIBE",
        "SSUBSCRIBE",
        "SYNC",
        "PSYNC",
        "WAIT",
        "WAITAOF",
        # blocking reads: they wait for data instead of answering
        "BLPOP",
        "BRPOP",
        "BRPOPLPUSH",
        "BLMOVE",
        "BLMPOP",
        "BZPOPMIN",
        "BZPOPMAX",
        "BZMPOP",
        "XREAD",
        "XREADGROUP",
        # code and introspection that can stall the server
        "DEBUG",
        "EVAL",
        "EVALSHA",
        "EVAL_RO",
        "EVALSHA_RO",
        "FCALL",
        "FCALL_RO",
        "SCRIPT",
        "FUNCTION",
        "SORT_RO",
    }
)
"""Refused even where the server calls them read-only (expensive or blocking)."""

NON_KEY_READS = frozenset({"INFO", "PING", "COMMAND", "TIME", "ECHO", "DBSIZE"})
"""Reads that touch no key (most of which Redis therefore does not flag ``readonly``)."""


class ReadOnlyGuard:
    """Decides, per command name, whether it may be sent; asks the server's flags once."""

    def __init__(self) -> None:
        self.flags: dict[str, frozenset[str]] = {}

    def learn(self, client: redis.Redis, names: Iterable[str]) -> int:
        """Fetch ``COMMAND INFO`` for ``names``; returns DBSIZE, asked in the same round trip."""
        wanted = sorted({n.upper() for n in names} - set(self.flags) - NON_KEY_READS)
        pipe = Pipeline(client.connection_pool, client.response_callbacks, False, None)
        if wanted:
            pipe.execute_command("COMMAND", "INFO", *wanted)
        pipe.execute_command("DBSIZE")
        *reply, dbsize = pipe.execute()
        for name, info in zip(wanted, reply[0] if reply else [], strict=False):
            flags = info[2] if info else []
            self.flags[name] = frozenset(_text(f) for f in flags)
            # Redis 7 describes a container command (MEMORY, OBJECT, …) by its
            # subcommands, each with its own flags: "memory|usage".
            for sub in (info[9] or []) if info and len(info) > 9 else []:
                if sub:
                    self.flags[_text(sub[0]).upper()] = frozenset(_text(f) for f in sub[2])
        return int(dbsize)

    def allows(self, client: redis.Redis, command: str) -> bool:
        """Whether ``command`` (e.g. ``"MEMORY USAGE"``) would pass :meth:`require`."""
        try:
            self.require(client, command)
        except Refused:
            return False
        return True

    def require(self, client: redis.Redis, name: str) -> None:
        """Raise :class:`Refused` unless ``name`` is a read this guard lets through.

        ``name`` may carry a subcommand (``"MEMORY USAGE"``): where the server describes
        the subcommand on its own (Redis 7 and later), its flags decide.
        """
        name, _, sub = name.strip().partition(" ")
        upper = name.upper()
        if upper in DENIED:
            raise Refused(
                f"Refused: {upper} is blocking or too expensive for a diagnostic.",
                "Nothing was sent. Use SCAN (for KEYS) or SSCAN / HSCAN (for big collections).",
            )
        if upper in NON_KEY_READS:
            return
        if upper not in self.flags:
            self.learn(client, [upper])
        flags = self.flags[upper]
        sub_name = f"{upper}|{sub.split(' ')[0].upper()}" if sub else ""
        if sub_name in self.flags:
            flags, upper = self.flags[sub_name], sub_name
        if not flags:
            raise Refused(f"Refused: {upper} is not a command this server knows.")
        if "readonly" not in flags or "write" in flags or "admin" in flags:
            raise Refused(
                f"Refused: the server does not flag {upper} as read-only "
                f"({', '.join(sorted(flags))}).",
                "Diagnostics only read; nothing was sent.",
            )


class GuardedRedis(redis.Redis):
    """A client that refuses, before sending, every command the guard does not allow."""

    guard: ReadOnlyGuard

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.guard.require(self, _command_name(args))
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = False, shard_hint: Any = None) -> GuardedPipeline:
        if transaction:
            raise Refused("Refused: MULTI/EXEC transactions are for writes.")
        pipe = GuardedPipeline(self.connection_pool, self.response_callbacks, False, shard_hint)
        pipe.guard, pipe.client = self.guard, self
        return pipe


class GuardedPipeline(Pipeline):
    """A pipeline whose commands are checked as they are queued, not when sent."""

    guard: ReadOnlyGuard
    client: GuardedRedis

    def pipeline_execute_command(self, *args: Any, **options: Any) -> Pipeline:
        self.guard.require(self.client, _command_name(args))
        return super().pipeline_execute_command(*args, **options)


def _command_name(args: tuple[Any, ...]) -> str:
    """The command and, for a container command, its subcommand: ``"MEMORY USAGE"``."""
    head = str(args[0])
    if " " not in head and len(args) > 1 and head.upper() in _CONTAINERS:
        return f"{head} {_text(args[1])}"
    return head


_CONTAINERS = frozenset({"MEMORY", "OBJECT", "CONFIG", "CLIENT", "COMMAND", "XINFO"})
"""Commands whose first argument names a subcommand (Redis 7 flags each on its own)."""


try:  # no CLIENT SETINFO on connect: two round trips saved per run
    import redis.driver_info

    _NO_CLIENT_SETINFO: dict[str, Any] = {"driver_info": None}
except ImportError:
    _NO_CLIENT_SETINFO = {"lib_name": None, "lib_version": None}


_C = TypeVar("_C", bound=redis.Redis)


def connect(uri: str, ctx: RunContext) -> GuardedRedis:
    """A guarded client with no retries, the run's timeouts and replies capped at
    :data:`MAX_REPLY`; closed at stop."""
    client = open_client(uri, ctx, GuardedRedis, parser_class=CappedParser)
    client.guard = ReadOnlyGuard()
    client.set_response_callback("COMMAND", lambda reply, **_: reply)  # raw flags, no parsing
    return client


def open_client(uri: str, ctx: RunContext, cls: type[_C], **options: Any) -> _C:
    """A client of ``cls`` with no retries and the run's timeouts; closed at stop.

    ``options`` go to the connection (``parser_class`` for :func:`connect`).
    """
    try:
        client = cls.from_url(
            uri,
            socket_connect_timeout=ctx.connect_timeout,
            socket_timeout=ctx.timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
            max_connections=1,  # commands and pipelines share one connection
            protocol=2,  # RESP2: one AUTH on connect, no HELLO or notification set-up
            **_NO_CLIENT_SETINFO,
            **options,
        )
    except ValueError:
        # redis-py's message quotes the token it stopped at, often the password
        # ("Port could not be cast to integer value as 'R3dis'"): it is not shown.
        raise RunError(
            "The target's URI could not be parsed by redis-py: check its form "
            "(the value is not shown: it may hold a password)."
        ) from None
    ctx.on_stop(client.connection_pool.disconnect)
    return client


class ReplyTooLarge(RunError):
    """The server sent a reply larger than :data:`MAX_REPLY`; the connection was dropped."""


class _CountingReader:
    """hiredis's reader, counting the bytes fed to it for the reply being read."""

    __slots__ = ("_reader", "fed")

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self.fed = 0

    def feed(self, buffer: Any, offset: int = 0, length: int = -1) -> None:
        self.fed += length if length >= 0 else len(buffer) - offset
        if self.fed > MAX_REPLY:
            raise ReplyTooLarge(
                f"Redis sent a reply larger than {MAX_REPLY // 2**20} MB; it was not read "
                "(the connection was dropped).",
                "A key or value this large cannot be part of a diagnostic's result; narrow "
                "the pattern, or look at the key with its own tools.",
            )
        self._reader.feed(buffer, offset, length)

    def gets(self, *args: Any) -> Any:
        reply = self._reader.gets(*args)
        if reply is not NOT_ENOUGH_DATA:
            # A reply is complete. Bytes of the next one already buffered (at most one
            # socket read, 64 KB) go uncounted: that is the cap's slack.
            self.fed = 0
        return reply

    def has_data(self) -> bool:
        return bool(self._reader.has_data())


class CappedParser(_HiredisParser):
    """redis-py's hiredis parser, refusing any single reply over :data:`MAX_REPLY` as its
    bytes arrive (one socket read of slack, 64 KB), before it is held whole.

    Costs one Python call per 64 KB socket read. It relies on redis-py's parser reading
    through ``self._reader.feed`` and ``gets``; ``tests/security/test_bounds.py`` fails
    if a redis-py upgrade changes that.
    """

    def on_connect(self, connection: Any, **kwargs: Any) -> None:
        super().on_connect(connection, **kwargs)
        self._reader = _CountingReader(self._reader)  # type: ignore[assignment]
