"""A small playbook with two guarded Redis actions, for tests that need a few keys rather
than a seed: ``rdrop`` (drop_keys ``k:*``) and ``rebuild`` (rebuild_indexes of ``msg:*``
into ``idx:user:<author>``), both on target ``cache`` and in step ``recovery.fix``."""

from __future__ import annotations

from pathlib import Path

PLAYBOOK = """\
version: 1
id: small-redis
title: Small Redis actions
service: Svc
summary: two guarded actions on a handful of keys
severity:
  default: P2
  escalation_path: [on-call engineer]
  levels:
    - {id: P2, name: Medium, response: 1h, resolution: 1d, status_update_every: 2h}
assessment:
  id: assessment
  title: Assess
  steps:
    - {id: scope, title: Scope, items: [Look]}
phases:
  - id: recovery
    title: Recovery
    stage: recovery
    starts: 0
    ends: 1h
    steps:
      - id: fix
        title: Fix
        items: [Fix it]
        actions: [rdrop, rebuild]
actions:
  rdrop:
    kind: redis
    title: drop keys
    target: cache
    do: {operation: drop_keys, pattern: "k:*"}
  rebuild:
    kind: redis
    title: rebuild the user indexes
    target: cache
    lock: {name: "lock:rb", ttl: 10m}
    do:
      operation: rebuild_indexes
      source: "msg:*"
      member_field: id
      prefix: idx
      indexes: {user: author}
"""

DROP_STEP = "act:recovery.fix:rdrop"
"""The checklist line of ``rdrop`` in the app."""


def write_playbook(folder: Path) -> Path:
    """The playbook, written to ``folder``; its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "small-redis.yaml"
    path.write_text(PLAYBOOK)
    return path
