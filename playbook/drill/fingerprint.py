"""A drill's fingerprint: a digest of each item recovery must bring back, and how the
data now differs from it."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from playbook.adapters.redis import drill as redis_drill
from playbook.core.model import DrillFingerprint
from playbook.core.text import inline
from playbook.drill.sandbox import DrillError, DrillSandbox

EXAMPLES = 5
"""Differing items named in a check, per kind of difference and target."""

_TABLE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(?:\(([^)]*)\))?\s*$")


def _digest(value: Any) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:20]


def _postgres_items(conn: Any, tables: list[str]) -> dict[str, str]:
    from psycopg import sql

    out: dict[str, str] = {}
    for entry in tables:
        match = _TABLE.match(entry)
        if match is None:
            raise DrillError(
                f"Cannot read the fingerprint table {entry!r}.", "Write table or table(col, col)."
            )
        table, cols = (
            match.group(1),
            [c.strip() for c in (match.group(2) or "").split(",") if c.strip()],
        )
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in cols) if cols else sql.SQL("*")
        query = sql.SQL("SELECT row_to_json(r)::text FROM (SELECT {} FROM {}) AS r").format(
            columns, sql.Identifier(*table.split("."))
        )
        rows = sorted(r[0] for r in conn.execute(query).fetchall())
        seen: dict[str, int] = {}
        for row in rows:
            seen[row] = seen.get(row, 0) + 1
            name = f"{table} {row}" + (f" (copy {seen[row]})" if seen[row] > 1 else "")
            out[name] = _digest(row)
    return out


def _mongo_items(db: Any, collections: list[str]) -> dict[str, str]:
    from bson.json_util import CANONICAL_JSON_OPTIONS, dumps

    out: dict[str, str] = {}
    for name in collections:
        for doc in db[name].find():
            ident = dumps(doc.get("_id"), json_options=CANONICAL_JSON_OPTIONS)
            out[f"{name} {ident}"] = _digest(
                dumps(doc, json_options=CANONICAL_JSON_OPTIONS, sort_keys=True)
            )
        for index in db[name].list_indexes():
            spec = {k: v for k, v in dict(index).items() if k not in ("v", "ns")}
            out[f"{name} index {spec.get('name')}"] = _digest(
                json.dumps(spec, sort_keys=True, default=str)
            )
    return out


def summarise(items: Mapping[str, str]) -> dict[str, Any]:
    """A fingerprint as recorded: how many items and one SHA-256 over all of them."""
    whole = hashlib.sha256()
    for name in sorted(items):
        whole.update(f"{name}\0{items[name]}\n".encode())
    return {"items": len(items), "sha256": whole.hexdigest()}


def compare(
    expected: Mapping[str, Mapping[str, str]], found: Mapping[str, Mapping[str, str]]
) -> dict[str, Any]:
    """The payload of a ``drill_checked`` event: restored or not, and how each target differs."""
    targets: dict[str, Any] = {}
    for name, before in expected.items():
        now = found.get(name, {})
        missing = sorted(set(before) - set(now))
        extra = sorted(set(now) - set(before))
        changed = sorted(k for k in set(before) & set(now) if before[k] != now[k])
        examples = [f"missing {inline(k)[:120]}" for k in missing[:EXAMPLES]]
        examples += [f"changed {inline(k)[:120]}" for k in changed[:EXAMPLES]]
        examples += [f"extra {inline(k)[:120]}" for k in extra[:EXAMPLES]]
        targets[name] = {
            "expected": summarise(before),
            "found": summarise(now),
            "missing": len(missing),
            "changed": len(changed),
            "extra": len(extra),
            "examples": examples,
            "restored": not (missing or changed or extra),
        }
    return {"restored": all(t["restored"] for t in targets.values()), "targets": targets}


def items_of(sandbox: DrillSandbox, fp: DrillFingerprint) -> dict[str, str]:
    """The items one fingerprint entry names, read now from its target."""
    kind = sandbox.kinds[fp.target]
    with sandbox.handle(fp.target) as handle:
        if kind == "redis":
            return redis_drill.fingerprint(handle, fp.keys)
        if kind == "postgres":
            return _postgres_items(handle, fp.tables)
        if kind == "local":
            from playbook.drill.localfs import files_items

            try:
                return files_items(handle, fp.files)
            except ValueError as exc:
                raise DrillError(str(exc)) from None
        return _mongo_items(handle, fp.collections)
