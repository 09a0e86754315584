"""The Redis writer's lock: a key on the same server as the data, which is what lets the
server itself refuse a write made without it.

``SET name value NX PX ttl``; the value (JSON) names the holder, since when, the run, and
a fence number. It is renewed every third of its TTL while held, released only if it
still holds this run's value, and expires on its own when its holder dies.

The value is also a fencing token. A write that must not happen without the lock (a
staging batch, checked by the script that makes it; the swap and every batch under
WATCH, which read it and watch it) compares the lock's value with the one this run
holds. :meth:`RedisLock.rotate` changes the value (same holder, next fence number): a
batch the process sent before and the server has not run yet is then refused, so a
clean-up that rotates first sees everything there will ever be. A lock that expired and
was taken by someone else refuses those writes the same way.
"""

from __future__ import annotations

import json
import threading

import redis
from redis.exceptions import RedisError

from playbook.adapters.base import RunError
from playbook.adapters.writers import Lock, LockHeld, shown

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_ROTATE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  local left = redis.call('PTTL', KEYS[1])
  if left > 0 then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', left)
  else
    redis.call('SET', KEYS[1], ARGV[2])
  end
  return 1
end
return 0
"""
"""Replace the lock's value, keeping its expiry, only if it still holds the old one."""


class LockLost(RunError):
    """The lock no longer holds this run's value: it expired and someone else took it,
    or it is gone. The stage stopped before its next write."""


class RedisLock(Lock):
    """A held lock, renewed every third of the TTL in a thread of its own."""

    def __init__(self, client: redis.Redis, name: str, value: str, ttl_ms: int) -> None:
        self.client = client
        self.name = name
        self.value = value
        """The value this run holds the lock with; changed by :meth:`rotate`."""
        self.ttl_ms = ttl_ms
        self._guard = threading.Lock()  # the value and the calls that compare it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lock-{name}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                with self._guard:
                    held = self.client.eval(_RENEW, 1, self.name, self.value, self.ttl_ms)
                if not held:
                    self.lost()  # no longer ours (expired, maybe taken): stop the writing
                    return
            except RedisError:
                continue  # the TTL still frees it if the server stays out of reach

    def rotate(self) -> bool:
        """Give the lock a new value (the next fence number), if it is still ours: any
        write still on its way with the old value is refused from now on. False when
        the lock is no longer ours (those writes are refused already).

        Raises:
            redis.exceptions.RedisError: the server could not be asked.
        """
        with self._guard:
            try:
                info = json.loads(self.value)
            except ValueError:
                info = {}
            info["fence"] = int(info.get("fence", 0)) + 1
            new = json.dumps(info)
            if not self.client.eval(_ROTATE, 1, self.name, self.value, new):
                return False
            self.value = new
            return True

    def release(self) -> None:
        self._stop.set()
        self._thread.join(5)
        try:
            with self._guard:
                self.client.eval(_RELEASE, 1, self.name, self.value)
        finally:
            self.client.close()


def held_message(name: str, held: bytes | None, left_ms: int) -> tuple[str, str]:
    """The title and advice of :class:`LockHeld`: who holds ``name`` and until when."""
    try:
        info = json.loads(held or b"{}")
    except ValueError:
        info = {}
    if not isinstance(info, dict):
        info = {}
    holder = info.get("holder") or (shown(held) if held else "an unknown holder")
    since = info.get("since", "an unknown time")
    expires = f"; it expires in {max(0, left_ms) // 1000} s" if left_ms and left_ms > 0 else ""
    return (
        f"The lock {name} is held by {holder} since {since}{expires}.",
        "Another responder or script is changing this data. Wait for it, or ask them; "
        "nothing was written.",
    )


def lost_message(name: str, held: bytes | None) -> LockLost:
    """The error for a lock found no longer this run's, naming who holds it now."""
    if held is None:
        now = "it is gone (it expired)"
    else:
        try:
            info = json.loads(held)
        except ValueError:
            info = {}
        holder = info.get("holder") if isinstance(info, dict) else None
        now = f"{holder or shown(held)} holds it now"
    return LockLost(
        f"The action's lock {name} is no longer this run's: {now}. The stage stopped "
        "before its next write.",
        "Someone else may be changing this data: find out who before running it again.",
    )


__all__ = ["LockHeld", "LockLost", "RedisLock", "held_message", "lost_message"]
