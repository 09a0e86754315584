"""A drill's Mongo steps keep types exact: what a runbook author writes is what is stored."""

from __future__ import annotations

from datetime import UTC, datetime

import mongomock

from playbook.core.model import DrillStep
from playbook.drill.steps import apply_step


def step(ops: list[dict]) -> DrillStep:
    return DrillStep.model_validate({"target": "db", "mongo": ops}, strict=False)


def test_an_unquoted_yaml_date_is_stored_as_a_date_and_extended_json_keeps_int64() -> None:
    db = mongomock.MongoClient(tz_aware=True)["drill"]
    apply_step(
        step(
            [
                {
                    "op": "insert",
                    "collection": "posts",
                    "documents": [
                        {"at": datetime(2025, 10, 31, 9, 27, 49), "n": {"$numberLong": "7"}}
                    ],
                }
            ]
        ),
        db,
    )
    doc = db.posts.find_one()
    assert doc["at"] == datetime(2025, 10, 31, 9, 27, 49, tzinfo=UTC)
    assert doc["n"] == 7
