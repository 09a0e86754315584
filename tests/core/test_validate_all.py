"""`playbook validate` shows every problem of a playbook in one run: a value the model
refuses and a reference to nothing, together, each with file:line:key (the references of
the parts the model accepts are checked even though another part is refused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbook.adapters.plugins import load_playbook
from playbook.core.loader import PlaybookInvalid

BROKEN = """\
version: 1
id: broken
title: Broken
service: svc
severity:
  default: P1
  escalation_path: [on-call]
  levels:
    - id: P1
      name: one
      response: ten minutes
      resolution: 1h
      status_update_every: 30m
assessment:
  id: assess
  title: Assess
  steps:
    - id: look
      title: Look
      items: [Look around]
      diagnostics: [no-such-diag]
phases:
  - id: fix
    title: Fix
    starts: 0
    ends: 1h
    steps:
      - id: s1
        title: Step
        items: [Do it]
        procedures: [nope]
diagnostics:
  broken-diag:
    kind: no-such-kind
    title: A diagnostic of a kind nobody installed
    target: db
scenarios:
  - id: sc
    title: Scenario
    phase: fix
    investigation:
      id: inv
      title: Investigate
      items: [Check]
      diagnostics: [broken-diag]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_one_run_shows_a_schema_error_and_dangling_references(cli, tmp_path: Path) -> None:
    path = _write(tmp_path, BROKEN)
    result = cli("validate", str(path))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    # The model's refusals ...
    assert f"{path}:11:17: severity.levels[0].response: " in result.output
    assert any(
        line.startswith(f"{path}:23:5: phases[0]: missing required key 'stage'") for line in lines
    )
    # ... and, in the same run, the references of the parts it accepted.
    assert (
        f"{path}:21:21: assessment.steps[0].diagnostics[0]: no diagnostic named 'no-such-diag'"
        in result.output
    )
    assert (
        f"{path}:31:22: phases[0].steps[0].procedures[0]: no procedure named 'nope'"
        in result.output
    )
    assert "Traceback" not in result.output


def test_a_refused_part_is_not_reported_again_as_missing(tmp_path: Path) -> None:
    """The diagnostic of an unknown kind is refused by the model; the step that names it
    names something that exists, so no "no diagnostic named 'broken-diag'" follows."""
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook(_write(tmp_path, BROKEN))
    paths = [p.path for p in caught.value.problems]
    assert "diagnostics.broken-diag.kind" in paths
    assert not any("named 'broken-diag'" in p.message for p in caught.value.problems)
    assert "scenarios[0].investigation.diagnostics[0]" not in paths
    # Nothing is said twice, and nothing inside a refused subtree is added to it.
    said = [(p.path, p.message) for p in caught.value.problems]
    assert len(said) == len(set(said))
    assert not any(p.startswith("severity.levels[0].response.") for p in paths)


def test_a_step_with_a_refused_item_still_has_its_references_checked(tmp_path: Path) -> None:
    text = BROKEN.replace("        items: [Do it]\n", "        items: [Do it, 5]\n")
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook(_write(tmp_path, text))
    paths = [p.path for p in caught.value.problems]
    assert "phases[0].steps[0].items[1]" in paths
    assert "phases[0].steps[0].procedures[0]" in paths  # the same step, checked on


def test_a_reference_to_a_refused_id_is_not_called_dangling(tmp_path: Path) -> None:
    """A phase whose id the model refused may be the one a template names: no guess."""
    text = BROKEN.replace("  - id: fix\n", "  - id: Fix Phase\n")
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook(_write(tmp_path, text))
    problems = {p.path: p.message for p in caught.value.problems}
    assert "phases[0].id" in problems
    assert "scenarios[0].phase" not in problems
    assert all("unchecked" not in m for m in problems.values())


def test_random_breakage_never_crashes_and_never_leaks_the_stand_in() -> None:
    """Every way of breaking a real playbook ends in problems a person can read: the
    checks on a partial playbook never raise and never show the stand-in value."""
    import copy
    import random

    import yaml
    from helpers import RUNBOOK

    from playbook.adapters.plugins import parse_playbook

    base = yaml.safe_load(RUNBOOK.read_text(encoding="utf-8"))

    def paths(node: object, at: tuple = ()) -> list[tuple]:
        found = [at] if at else []
        if isinstance(node, dict):
            for key, value in node.items():
                found += paths(value, (*at, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                found += paths(value, (*at, i))
        return found

    every = paths(base)
    rng = random.Random(15)  # fixed: a failure is reproducible
    for _ in range(40):  # each parse is ~0.15 s of YAML reading
        data = copy.deepcopy(base)
        for _ in range(rng.randint(1, 4)):
            where = rng.choice(every)
            parent = data
            try:
                for key in where[:-1]:
                    parent = parent[key]
                if rng.random() < 0.3 and isinstance(parent, dict):
                    parent.pop(where[-1], None)
                else:
                    parent[where[-1]] = rng.choice([None, 5, "zz-nope", [], {}, True, "1h"])
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change removed the way there
        try:
            parse_playbook(yaml.safe_dump(data, sort_keys=False), "broken.yaml", RUNBOOK)
        except PlaybookInvalid as invalid:
            assert not any("unchecked" in str(p) for p in invalid.problems)
