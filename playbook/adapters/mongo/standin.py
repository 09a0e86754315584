"""The MongoDB stand-in of drills: mongomock, in this process, named by a ``mongomock://`` URI.

No MongoDB server can be started on a machine with nothing installed, so a drill's Mongo
targets are emulated in memory. The adapter and the writer build their client through
:attr:`playbook.adapters.mongo.reader.MongoAdapter.client_factory`, which hands a
``mongomock://`` URI to :func:`client` here: every use of one URI shares one in-memory
database for as long as the process lives. Everything that shows such a target says it is
a stand-in (:data:`LABEL`): its behaviour is close to MongoDB's, not the same.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

SCHEME = "mongomock://"
LABEL = "mongomock: a MongoDB stand-in in this process, not a real server"

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def is_standin(uri: str) -> bool:
    return uri.startswith(SCHEME)


def new_uri(database: str) -> str:
    """A fresh stand-in's URI, holding ``database``."""
    return f"{SCHEME}standin-{secrets.token_hex(4)}/{database}"


def client(uri: str) -> Any:
    """The stand-in's client for ``uri``, made on first use (closing it keeps its data)."""
    try:
        import mongomock
    except ImportError:  # pragma: no cover - the drill extra brings it
        from playbook.adapters.base import RunError

        raise RunError(
            "The MongoDB stand-in needs mongomock.",
            "Install the drill extra: pip install 'playbook[drill]'.",
        ) from None
    with _lock:
        found = _clients.get(uri)
        if found is None:
            _teach_bulk_sort()
            found = _clients[uri] = mongomock.MongoClient(
                "mongodb://" + uri.removeprefix(SCHEME), tz_aware=True
            )
        return found


def forget(uri: str) -> None:
    """Drop a stand-in and its data (at the end of a drill)."""
    with _lock:
        _clients.pop(uri, None)


_taught = False


def _teach_bulk_sort() -> None:
    """mongomock 4.3's bulk builder predates pymongo 4.11's ``sort`` argument of
    UpdateOne, which the writer passes; accept (and ignore) it so bulk writes work."""
    global _taught
    if _taught:
        return
    import mongomock.collection

    builder = mongomock.collection.BulkOperationBuilder
    original = builder.add_update

    def add_update(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        return original(self, *args, **kwargs)

    builder.add_update = add_update
    _taught = True
