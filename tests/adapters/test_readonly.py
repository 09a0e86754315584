"""A read-only MongoDB diagnostic refuses anything that writes or runs code, before sending."""

from __future__ import annotations

import pytest

from playbook.adapters.base import Refused
from playbook.adapters.mongo.readonly import check

# Each entry: (what, query). None of these may pass the guard.
DESTRUCTIVE = [
    *[
        (f"{op} in a filter", {"op": "find", "collection": "c", "filter": {"a": {op: "x"}}})
        for op in ("$where", "$function", "$accumulator", "$eval")
    ],
    *[
        (
            f"{op} nested deep",
            {
                "op": "find",
                "collection": "c",
                "filter": {"$and": [{"$or": [{"b": {"$expr": {op: {}}}}]}]},
            },
        )
        for op in ("$where", "$function", "$accumulator")
    ],
    *[
        (
            f"{stage} stage",
            {"op": "aggregate", "collection": "c", "pipeline": [{"$match": {}}, {stage: "other"}]},
        )
        for stage in ("$out", "$merge", "$currentOp", "$listSessions", "$planCacheStats")
    ],
    *[
        (
            f"{stage} in a $lookup sub-pipeline",
            {
                "op": "aggregate",
                "collection": "c",
                "pipeline": [{"$lookup": {"from": "d", "pipeline": [{stage: "x"}], "as": "y"}}],
            },
        )
        for stage in ("$out", "$merge")
    ],
    (
        "$function in $group",
        {
            "op": "aggregate",
            "collection": "c",
            "pipeline": [{"$group": {"_id": {"$function": {"body": "x"}}}}],
        },
    ),
    (
        "$accumulator in $group",
        {
            "op": "aggregate",
            "collection": "c",
            "pipeline": [{"$group": {"_id": 1, "a": {"$accumulator": {}}}}],
        },
    ),
    (
        "$where in projection",
        {"op": "find", "collection": "c", "projection": {"x": {"$where": "1"}}},
    ),
    *[
        (f"command {name}", {"op": "command", "command": {name: "c"}})
        for name in (
            "drop",
            "dropDatabase",
            "delete",
            "insert",
            "update",
            "findAndModify",
            "reIndex",
            "dbCheck",
            "compact",
            "repairDatabase",
            "createIndexes",
            "dropIndexes",
            "renameCollection",
            "shutdown",
            "killOp",
            "fsync",
            "eval",
            "create",
            "collMod",
            "convertToCapped",
            "cloneCollectionAsCapped",
            "emptycapped",
            "applyOps",
            "setParameter",
            "replSetReconfig",
            "moveChunk",
            "logRotate",
            "createUser",
            "dropUser",
            "grantRolesToUser",
        )
    ],
    *[
        (f"operation {op}", {"op": op, "collection": "c"})
        for op in (
            "insert",
            "update",
            "delete",
            "drop",
            "replace",
            "bulk_write",
            "find_one_and_delete",
        )
    ],
]


def test_the_refusal_table_is_large_enough_to_mean_something() -> None:
    assert len(DESTRUCTIVE) >= 50


@pytest.mark.parametrize(("what", "query"), DESTRUCTIVE, ids=[w for w, _ in DESTRUCTIVE])
def test_destructive_or_code_running_queries_are_refused(what: str, query: dict) -> None:
    with pytest.raises(Refused):
        check(query)


def test_reads_get_a_time_limit_and_a_row_limit() -> None:
    bounded = check({"op": "find", "collection": "c", "filter": {}}, limit=100, timeout_seconds=2)
    assert bounded.query["limit"] == 100 and bounded.query["max_time_ms"] == 2000
    agg = check({"op": "aggregate", "collection": "c", "pipeline": [{"$match": {}}]}, limit=50)
    assert agg.query["pipeline"][-1] == {"$limit": 50}
    smaller = check({"op": "find", "collection": "c", "limit": 10}, limit=100)
    assert smaller.limit == 10


def test_every_shipped_read_passes_and_every_writing_diagnostic_is_refused(loaded) -> None:
    for name, diag in loaded.playbook.diagnostics.items():
        if diag.kind != "mongo":
            continue
        query = diag.query.model_dump(mode="json", by_alias=True)
        if diag.writes:
            with pytest.raises(Refused):
                check(query)
        else:
            check(query)  # no refusal
            assert name
