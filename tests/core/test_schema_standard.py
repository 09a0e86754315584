"""`playbook schema` as an editor uses it: a standard JSON Schema validator (jsonschema,
Draft 2020-12) accepts the schema itself, every shipped playbook, and every default the
schema states. An editor pointed at the schema marks nothing red in a valid playbook."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from helpers import ROOT

RUNBOOKS = sorted((ROOT / "runbooks").glob("*.yaml"))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    from click.testing import CliRunner

    from playbook.cli import main

    result = CliRunner().invoke(main, ["schema"], catch_exceptions=False)
    assert result.exit_code == 0
    document = json.loads(result.output)
    # The schema names its own dialect; the validator for it must accept the schema first.
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(document)
    return document


def test_the_shipped_playbooks_are_found() -> None:
    assert len(RUNBOOKS) >= 4


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_every_shipped_playbook_passes_the_schema(schema: dict[str, Any], path: Path) -> None:
    # Plain YAML data, as an editor's YAML support reads it (not our loader).
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in validator.iter_errors(data)
    ]
    assert errors == []


def test_a_broken_playbook_fails_the_schema(schema: dict[str, Any]) -> None:
    """The schema is not vacuous: the faults an editor should mark are marked."""
    data = yaml.safe_load(RUNBOOKS[0].read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(data)
    assert not validator.is_valid({**data, "unknown_key": 1})
    action = next(iter(data["actions"]))
    lock = {**data["actions"][action].get("lock", {}), "ttl": "ten minutes"}
    broken = {
        **data,
        "actions": {**data["actions"], action: {**data["actions"][action], "lock": lock}},
    }
    assert not validator.is_valid(broken)


_MAPS = ("properties", "patternProperties", "$defs")
_ONE = ("items", "additionalProperties", "not", "propertyNames", "contains")
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")


def _subschemas(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema inside ``node`` (by JSON Schema keyword, not by every dict: a property
    called ``default`` is not a default)."""
    if not isinstance(node, dict):
        return
    yield "/".join(path), node
    for key in _MAPS:
        for name, sub in node.get(key, {}).items():
            yield from _subschemas(sub, (*path, key, name))
    for key in _ONE:
        yield from _subschemas(node.get(key), (*path, key))
    for key in _MANY:
        for i, sub in enumerate(node.get(key, [])):
            yield from _subschemas(sub, (*path, key, str(i)))


def test_every_default_is_valid_for_its_own_property(schema: dict[str, Any]) -> None:
    found = [(where, node) for where, node in _subschemas(schema) if "default" in node]
    # Durations among them: the fields that were typed string with integer defaults.
    durations = [w for w, node in found if isinstance(node.get("default"), int) and "anyOf" in node]
    assert len(found) > 100 and len(durations) >= 17
    wrong = []
    for where, node in found:
        own = {key: value for key, value in node.items() if key != "default"}
        own["$defs"] = schema.get("$defs", {})
        errors = list(jsonschema.Draft202012Validator(own).iter_errors(node["default"]))
        if errors:
            wrong.append(f"{where}: default {node['default']!r}: {errors[0].message}")
    assert wrong == []


def test_durations_accept_text_and_seconds_as_the_loader_does(schema: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from playbook.core.model import LockSpec

    ttl = schema["$defs"]["LockSpec"]["properties"]["ttl"]
    validator = jsonschema.Draft202012Validator({**ttl, "$defs": schema["$defs"]})
    for value in ("10m", 600):
        assert validator.is_valid(value)
        assert LockSpec.model_validate({"ttl": value}).ttl == 600
    for value in ("ten minutes", 0):
        assert not validator.is_valid(value)
        with pytest.raises(ValidationError):
            LockSpec.model_validate({"ttl": value})
