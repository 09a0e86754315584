"""Reading a log checks every event's payload against its type's schema. The check is
compiled once per type for speed (a 100,000-event export); it must refuse exactly what
the readable one refuses, or a damaged event would be folded (or a good one skipped)."""

from __future__ import annotations

import copy
import random

import pytest

from playbook.core import events as ev

ODD = [1, 1.5, True, None, "s", float("inf"), float("nan"), -3, "", [], {}]


def _valid(schema: object, rng: random.Random) -> object:
    if isinstance(schema, dict):
        if "*" in schema:
            return {"a": _valid(schema["*"], rng), "b": _valid(schema["*"], rng)}
        return {
            k.removesuffix("?"): _valid(c, rng)
            for k, c in schema.items()
            if not k.endswith("?") or rng.random() < 0.6
        }
    if isinstance(schema, list):
        return [_valid(schema[0], rng) for _ in range(rng.randint(0, 2))]
    kind = rng.choice(schema if isinstance(schema, tuple) else (schema,))
    return {str: "x", int: 3, float: 2.5, bool: False, type(None): None}.get(kind, "x")


def _damaged(value: object, rng: random.Random) -> object:
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(list(value))
        if rng.random() < 0.2:
            value.pop(key)
        else:
            value[key] = _damaged(value[key], rng)
        return value
    if isinstance(value, list) and value and rng.random() < 0.7:
        i = rng.randrange(len(value))
        value[i] = _damaged(value[i], rng)
        return value
    return rng.choice(ODD)


@pytest.mark.parametrize("kind", sorted(ev.SCHEMAS))
def test_the_fast_check_refuses_exactly_what_the_worded_one_refuses(kind: str) -> None:
    rng = random.Random(kind)  # seeded per type: a failure reproduces
    schema = ev.SCHEMAS[kind]
    refused = 0
    for _ in range(300):
        payload = _valid(schema, rng)
        if rng.random() < 0.7:
            payload = _damaged(copy.deepcopy(payload), rng)
        problem = ev.payload_problem(kind, payload)
        worded = ev.shape_problem(payload, schema) if isinstance(payload, dict) else "not a dict"
        assert (problem is None) == (worded is None), (payload, problem, worded)
        refused += problem is not None
    assert refused > 0  # the damage did reach the check
