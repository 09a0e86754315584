"""Typed parameters in a query's structure, and verdicts from a run's numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from playbook.core.diagnostics import (
    ERROR,
    FAIL,
    PASS,
    WARN,
    ObjectIdValue,
    ParamError,
    evaluate,
    resolve,
    substitute,
)
from playbook.core.model import Expectation, Param

SAMPLES = {
    "string": "orders",
    "int": "5",
    "float": "0.5",
    "bool": "true",
    "datetime": "2026-03-14T02:10:00Z",
    "objectid": "65f0c0ffee0000000000abcd",
    "field": "parentId",
}


def test_every_shipped_diagnostic_substitutes_to_plain_typed_data(loaded) -> None:
    for name, diag in loaded.playbook.diagnostics.items():
        given = {
            p: (
                ",".join([SAMPLES[param.items or "string"]] * 2)
                if param.type == "list"
                else SAMPLES[param.type]
            )
            for p, param in diag.params.items()
            if param.default is None
        }
        if any(p.choices for p in diag.params.values()):
            given.update(
                {p: str(param.choices[0]) for p, param in diag.params.items() if param.choices}
            )
        values = resolve(diag.params, given)
        raw = diag.query.model_dump(mode="json", by_alias=True) if hasattr(diag, "query") else {}
        done = substitute(raw, values)
        assert "$param" not in repr(done), name


def test_values_are_typed_not_pasted() -> None:
    params = {
        "since": Param(type="datetime"),
        "ids": Param(type="list", items="objectid"),
        "field": Param(type="field"),
        "n": Param(type="int", default=10),
    }
    values = resolve(
        params,
        {
            "since": "2026-03-14T02:10:00+01:00",
            "ids": "65f0c0ffee0000000000abcd",
            "field": "user.email",
        },
    )
    query = {
        "filter": {
            "$param:field": {"$gt": {"$param": "since"}},
            "_id": {"$nin": {"$param": "ids"}},
        },
        "pipeline": [{"$group": {"_id": {"$param": "field", "as": "field_ref"}}}],
        "limit": {"$param": "n"},
    }
    assert substitute(query, values) == {
        "filter": {
            "user.email": {"$gt": datetime(2026, 3, 14, 1, 10, tzinfo=UTC)},
            "_id": {"$nin": [ObjectIdValue("65f0c0ffee0000000000abcd")]},
        },
        "pipeline": [{"$group": {"_id": "$user.email"}}],
        "limit": 10,
    }


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("field", "$where"),
        ("field", "a; db.dropDatabase()"),
        ("field", "x.$y"),
        ("int", "1.5"),
        ("int", "1 OR 1=1"),
        ("bool", "yes"),
        ("datetime", "yesterday"),
        ("datetime", "2026-03-14T02:10:00"),
        ("objectid", "not-an-id"),
    ],
)
def test_hostile_or_sloppy_values_are_refused(kind: str, raw: str) -> None:
    with pytest.raises(ParamError):
        resolve({"p": Param(type=kind)}, {"p": raw})


def test_missing_and_unknown_parameters_are_named_together() -> None:
    with pytest.raises(ParamError) as caught:
        resolve({"a": Param(type="int"), "b": Param(type="string")}, {"c": "1"})
    assert "unknown parameter(s) c" in caught.value.title
    assert "missing a" in caught.value.title and "missing b" in caught.value.title


def test_choices_are_enforced() -> None:
    with pytest.raises(ParamError, match="must be one of"):
        resolve({"t": Param(type="string", choices=["string", "date"])}, {"t": "object"})


def test_the_worst_check_decides_with_its_numbers() -> None:
    expect = [
        Expectation(metric="count", op="eq", value=0),
        Expectation(metric="drop_percent", op="le", value=10, verdict="warn"),
    ]
    assert evaluate(expect, {"count": 0, "drop_percent": 3}).verdict == PASS
    warned = evaluate(expect, {"count": 0, "drop_percent": 12.5})
    assert warned.verdict == WARN
    assert warned.checks[1].describe() == "drop_percent = 12.5 (healthy: <= 10): WARN"
    assert evaluate(expect, {"count": 2001, "drop_percent": 12.5}).verdict == FAIL
    missing = evaluate(expect, {"count": 0})
    assert missing.verdict == ERROR and "drop_percent" in missing.message


def test_a_time_compared_with_a_time_parameter_reads_as_times() -> None:
    from datetime import UTC, datetime

    from playbook.core.diagnostics import evaluate
    from playbook.core.model import Expectation

    newer = Expectation.model_validate(
        {"metric": "backup_time", "op": "ge", "value": {"$param": "newest_write"}}
    )
    verdict = evaluate(
        [newer],
        {"backup_time": datetime(2025, 10, 31, 9, 27, 49, tzinfo=UTC).timestamp()},
        {"newest_write": datetime(2025, 10, 31, 10, 30, 59, tzinfo=UTC)},
    )
    assert verdict.verdict == "fail"
    assert verdict.checks[0].describe() == (
        "backup_time = 2025-10-31 09:27:49Z (healthy: >= 2025-10-31 10:30:59Z): FAIL"
    )
