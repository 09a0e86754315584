"""A drill's load and fault steps, carried out on a sandbox's handles."""

from __future__ import annotations

import json
from typing import Any

from playbook.adapters.redis import drill as redis_drill
from playbook.core.model import DrillStep
from playbook.drill.sandbox import DrillError, DrillSandbox


def apply_step(step: DrillStep, handle: Any, sandbox: DrillSandbox | None = None) -> str:
    """Carry out one load or fault step on its target's handle; what it did, in a line.

    An ``answer`` step needs the ``sandbox``: its routes read one of its services."""
    way = step.way
    if way == "redis":
        sent = redis_drill.run_commands(handle, step.redis or [])
        return f"{sent} Redis commands"
    if way == "delete":
        deleted = redis_drill.delete_matching(handle, step.delete or "")
        return f"deleted {deleted:,} keys matching {step.delete}"
    if way == "sql":
        with handle.transaction():
            handle.execute(step.sql)
        return "SQL run"
    if way == "mongo":
        return "; ".join(_mongo_op(handle, op) for op in step.mongo or [])
    if way == "serve":
        handle.serve(step.serve or {})
        return f"serving {', '.join(sorted(step.serve or {}))}"
    if way == "answer":
        return _answer(step, handle, sandbox)
    return _generate(step, handle)


def _mongo_op(db: Any, op: Any) -> str:
    from bson import json_util

    def ext(value: Any) -> Any:
        # an unquoted YAML date arrives as a datetime: keep it a date
        return json_util.loads(json.dumps(value, default=_extended))

    coll = db[op.collection]
    if op.op == "insert":
        if op.documents:
            coll.insert_many([ext(d) for d in op.documents])
        return f"{op.collection}: inserted {len(op.documents)}"
    if op.op == "update":
        done = coll.update_many(ext(op.filter), ext(op.update))
        return f"{op.collection}: updated {done.modified_count}"
    if op.op == "delete":
        done = coll.delete_many(ext(op.filter))
        return f"{op.collection}: deleted {done.deleted_count}"
    if op.op == "create_index":
        spec = op.index
        options: dict[str, Any] = {"unique": True} if spec.unique else {}
        if spec.name:
            options["name"] = spec.name
        if spec.expire_after_seconds is not None:
            options["expireAfterSeconds"] = spec.expire_after_seconds
        name = coll.create_index(list(spec.keys.items()), **options)
        return f"{op.collection}: index {name}"
    coll.drop_index(op.name)
    return f"{op.collection}: dropped index {op.name}"


def _extended(value: Any) -> Any:
    """JSON for what YAML builds that JSON lacks: dates become Extended JSON dates."""
    from datetime import date, datetime, time

    if isinstance(value, datetime):
        return {"$date": value.isoformat() if value.tzinfo else value.isoformat() + "Z"}
    if isinstance(value, date):
        return {"$date": datetime.combine(value, time()).isoformat() + "Z"}
    raise TypeError(f"{type(value).__name__} is not JSON")


def _answer(step: DrillStep, stub: Any, sandbox: DrillSandbox | None) -> str:
    from playbook.drill.routes import live

    routes = step.answer or {}
    if sandbox is None:
        raise DrillError("An answer step needs the drill's sandbox (its routes read it).")
    for spec in routes.values():
        if sandbox.kinds.get(spec.from_) != "postgres":  # `validate` says so first
            raise DrillError(f"An answer reads a postgres service; {spec.from_!r} is not one.")
    stub.answer(
        {
            path: live(path, spec, lambda name=spec.from_: sandbox.targets[name])
            for path, spec in routes.items()
        }
    )
    read = sorted({spec.from_ for spec in routes.values()})
    return f"answering {', '.join(sorted(routes))} from {', '.join(read)} at each request"


def generators() -> dict[str, Any]:
    """Registered data generators by name (nothing imported)."""
    from importlib.metadata import entry_points

    from playbook.drill.data import GROUP

    return {ep.name: ep for ep in entry_points(group=GROUP)}


def needs_superuser(step: DrillStep) -> bool:
    """Whether the step is an installed generator that asks for the sandbox superuser's
    PostgreSQL connection (a runbook's own SQL never gets it)."""
    if step.generate is None:
        return False
    found = generators().get(step.generate)
    return found is not None and bool(getattr(found.load(), "needs_superuser", False))


def trusted_functions(step: DrillStep) -> tuple[str, ...]:
    """Functions an installed generator made and says the drill's target may reach (as a
    responder's ``functions = […]`` would); a runbook's own SQL never adds any."""
    found = generators().get(step.generate or "") if step.generate else None
    return tuple(getattr(found.load(), "trusts", ())) if found is not None else ()


def _generate(step: DrillStep, handle: Any) -> str:
    found = generators().get(step.generate or "")
    if found is None:
        known = ", ".join(sorted(generators())) or "none"
        raise DrillError(f"No drill data generator {step.generate!r}.", f"Installed: {known}.")
    try:
        said = found.load()(handle, **step.with_)
    except TypeError as exc:
        raise DrillError(f"Generator {step.generate!r}: {exc}.") from None
    return str(said or f"generated {step.generate}")
