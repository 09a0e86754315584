"""MongoDB for the tests: mongomock, or a real server when PLAYBOOK_TEST_MONGODB_URI is set.

Shared by the adapter, writer and runbook tests so that each opens a database, patches
the adapters' client factory and compares databases the same way.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mongomock
import mongomock.collection
import pytest
from bson.json_util import CANONICAL_JSON_OPTIONS, dumps

from playbook.adapters.mongo.reader import MongoAdapter

REAL_URI = os.environ.get("PLAYBOOK_TEST_MONGODB_URI", "")


@contextmanager
def database(
    kind: str, mock_uri: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, str]]:
    """(database, its URI): mongomock's (with the adapters pointed at it), or a fresh
    database on the real server, dropped afterwards. Skips "real" without a URI."""
    if kind == "mongomock":
        client = mongomock.MongoClient(mock_uri, tz_aware=True)
        monkeypatch.setattr(MongoAdapter, "client_factory", staticmethod(lambda _uri, _ctx: client))
        bulk_update_takes_sort(monkeypatch)
        yield client[name], mock_uri
        return
    if not REAL_URI:
        pytest.skip("set PLAYBOOK_TEST_MONGODB_URI to run against a real MongoDB")
    import pymongo

    fresh = f"playbook_test_{secrets.token_hex(4)}"
    client = pymongo.MongoClient(REAL_URI, tz_aware=True)
    base, _, query = REAL_URI.partition("?")
    host = base.rstrip("/").rsplit("/", 1)[0]
    if "//" not in host:  # the URI named no database
        host = base.rstrip("/")
    try:
        yield client[fresh], host + "/" + fresh + (f"?{query}" if query else "")
    finally:
        client.drop_database(fresh)
        client.close()


def bulk_update_takes_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    """mongomock 4.3's bulk builder predates pymongo 4.11's ``sort`` argument of
    UpdateOne; accept (and ignore) it so bulk_write can be emulated at all."""
    original = mongomock.collection.BulkOperationBuilder.add_update

    def add_update(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        return original(self, *args, **kwargs)

    monkeypatch.setattr(mongomock.collection.BulkOperationBuilder, "add_update", add_update)


def dump(db: Any, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every document (canonical Extended JSON) and index of every collection but
    ``skip``: equal dumps mean the same data."""
    out: dict[str, Any] = {}
    for name in sorted(db.list_collection_names()):
        if name in skip or name.startswith("system."):
            continue
        docs = sorted(dumps(d, json_options=CANONICAL_JSON_OPTIONS) for d in db[name].find())
        indexes = sorted(
            json.dumps(
                {k: v for k, v in i.items() if k not in ("v", "ns")}, sort_keys=True, default=str
            )
            for i in db[name].list_indexes()
        )
        out[name] = {"docs": docs, "indexes": indexes}
    return out
