"""Drills: a runbook's incident rehearsed on a sandbox made for it.

A runbook with a ``drill:`` block names the services its targets need. :class:`DrillRun`
starts them (a real ``redis-server`` and PostgreSQL from :mod:`playbook.sandbox`, the
MongoDB stand-in of :mod:`playbook.adapters.mongo.standin`, a local HTTP stub), loads the
drill's data, takes a fingerprint of what recovery must bring back, injects the fault,
and then opens an incident marked as a drill in the drills' own store, apart from real
incidents. :meth:`DrillRun.check` compares the data with the fingerprint again and
records the answer in the incident. :func:`run_script` plays a drill script headless.

The sandbox's folder and servers are removed by :meth:`DrillRun.stop`, and by the
sandbox's guardian process if this one dies first (Ctrl+C, a crash, a kill -9).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

from playbook.adapters.redis import drill as redis_drill
from playbook.core.loader import LoadedPlaybook
from playbook.core.model import Drill, DrillFingerprint, DrillStep
from playbook.core.state import IncidentState
from playbook.core.text import inline
from playbook.errors import PlaybookError, UsageError
from playbook.targets import SANDBOX, Target, Targets, responder_settings

Say = Callable[[str], None]
SETUP_LOGIN = "drill"
"""The Redis ACL user and the PostgreSQL role a drill's set-up steps run as."""
EXAMPLES = 5
"""Differing items named in a check, per kind of difference and target."""


class DrillError(PlaybookError):
    """A drill could not be set up (a service would not start, a step failed)."""

    exit_code = 12


def drills_dir(data_dir: Path) -> Path:
    """Where drills are kept: beside real incidents, never among them."""
    return data_dir / "drills"


# --------------------------------------------------------------------------- HTTP stub


class HttpStub:
    """A local HTTP server answering GET with the JSON a drill gave each path."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = routes.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # the app owns the terminal
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, routes: Mapping[str, Any]) -> None:
        for path, body in routes.items():
            self.routes["/" + path.lstrip("/")] = json.dumps(body).encode()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- the sandbox


class DrillSandbox:
    """One service per target the drill names, in one folder, gone with this process."""

    def __init__(self, services: Mapping[str, str], say: Say | None = None) -> None:
        from playbook.sandbox import Guardian

        started = time.monotonic()
        say = say or (lambda _line: None)
        self.folder = Path(tempfile.mkdtemp(prefix="playbook-drill-"))
        self.folder.chmod(0o755)  # PostgreSQL may run as another user below it
        self.guardian = Guardian(self.folder)
        self.targets: dict[str, Target] = {}
        self.labels: dict[str, str] = {}
        self.kinds = dict(services)
        self._servers: dict[str, Any] = {}
        self._logins: dict[str, Any] = {}
        """The set-up login of each Redis (user, password) and PostgreSQL (URI) target."""
        try:
            for name, kind in services.items():
                say(f"starting {kind} for target {name}")
                self._start(name, kind)
        except BaseException:
            self.stop()
            raise
        self.seconds = time.monotonic() - started

    def _start(self, name: str, kind: str) -> None:
        import secrets

        from playbook import sandbox

        if kind == "redis":
            try:
                server: Any = sandbox.RedisServer(secrets.token_hex(16), str(self.folder))
            except RuntimeError as exc:
                raise DrillError(f"Could not start redis-server for {name!r}.", str(exc)) from None
            self.guardian.watch(server.proc.pid)
            with contextlib.closing(server.client()) as client:
                version = client.info("server").get("redis_version", "?")
            self.labels[name] = f"redis-server {version} (sandbox, 127.0.0.1:{server.port})"
            login = (SETUP_LOGIN, secrets.token_hex(16))
            server.add_data_user(*login)
            self._logins[name] = login
        elif kind == "postgres":
            try:
                server = sandbox.PostgresServer(secrets.token_hex(16), str(self.folder))
            except RuntimeError as exc:
                raise DrillError(f"Could not start PostgreSQL for {name!r}.", str(exc)) from None
            self.guardian.watch(server.pid)
            with server.connect() as conn:
                row = conn.execute("SHOW server_version").fetchone()
            version = str(row[0]).split()[0] if row else "?"
            self.labels[name] = f"PostgreSQL {version} (sandbox, 127.0.0.1:{server.port})"
            # The drill's data, set-up steps and runbook all work as an ordinary role that
            # owns the drill's database; the superuser stays with the sandbox.
            self._logins[name] = server.add_owner(SETUP_LOGIN, secrets.token_hex(16), "drill")
        elif kind == "mongo":
            from playbook.adapters.mongo import standin

            server = standin.new_uri(name.replace("-", "_"))
            standin.client(server)  # fails now, with advice, if mongomock is missing
            self.labels[name] = standin.LABEL
        elif kind == "http":
            server = HttpStub()
            self.labels[name] = f"HTTP stub (sandbox, 127.0.0.1:{server.port})"
        else:  # the model allows no other kind
            raise DrillError(f"Unknown service kind {kind!r} for {name!r}.")
        self._servers[name] = server
        uri = server if isinstance(server, str) else server.uri
        if kind == "postgres":
            uri = self._logins[name]
        self.targets[name] = Target(name, uri, SANDBOX)

    @contextlib.contextmanager
    def handle(self, name: str) -> Iterator[Any]:
        """What a step, a generator or a fingerprint works on: a redis-py client, a
        psycopg connection (autocommit), a mongomock database or the HTTP stub.

        A Redis client logs in as an ACL user that may run data commands only, and a
        PostgreSQL connection as an ordinary role that owns the drill's database: a
        drill's ``load`` and ``fault`` steps come from its runbook, which is not trusted,
        and the sandbox servers run as the responder on the responder's machine. The
        servers refuse ``CONFIG SET dir`` + ``SAVE``, ``COPY … TO PROGRAM`` and the like.
        """
        kind, server = self.kinds[name], self._servers[name]
        if kind == "redis":
            with contextlib.closing(server.client(*self._logins[name])) as client:
                yield client
        elif kind == "postgres":
            with server.connect(self._logins[name]) as conn:
                yield conn
        elif kind == "mongo":
            from playbook.adapters.mongo import standin

            yield standin.client(server).get_default_database()
        else:
            yield server

    def stop(self) -> None:
        """Stop every service and remove the folder (the guardian makes sure of it)."""
        for name, server in self._servers.items():
            with contextlib.suppress(Exception):
                if isinstance(server, str):
                    from playbook.adapters.mongo import standin

                    standin.forget(server)
                else:
                    server.stop()
            self.kinds.pop(name, None)
        self._servers.clear()
        self.guardian.close()


# --------------------------------------------------------------------------- steps


def apply_step(step: DrillStep, handle: Any) -> str:
    """Carry out one load or fault step on its target's handle; what it did, in a line."""
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


def generators() -> dict[str, Any]:
    """Registered data generators by name (nothing imported)."""
    from importlib.metadata import entry_points

    from playbook.drilldata import GROUP

    return {ep.name: ep for ep in entry_points(group=GROUP)}


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


# --------------------------------------------------------------------------- fingerprints


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


# --------------------------------------------------------------------------- a drill


@dataclass
class DrillRun:
    """A drill's sandbox, its data's fingerprint and its figures; see :meth:`start`."""

    loaded: LoadedPlaybook
    sandbox: DrillSandbox
    baseline: dict[str, dict[str, str]] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def spec(self) -> Drill:
        assert self.loaded.playbook.drill is not None
        return self.loaded.playbook.drill

    @property
    def targets(self) -> Targets:
        """The sandbox's targets, with the responder's own machine-wide settings
        (``[shell]``): the drill's playbook and script give neither."""
        return Targets(
            self.sandbox.targets,
            allow_unsandboxed_shell=responder_settings().allow_unsandboxed_shell,
        )

    @classmethod
    def start(cls, loaded: LoadedPlaybook, say: Say | None = None) -> DrillRun:
        """Start the sandbox, load the data, take its fingerprint, inject the fault."""
        spec = loaded.playbook.drill
        if spec is None:
            raise UsageError(
                f"Playbook {loaded.playbook.id!r} has no drill.",
                "Add a drill: block (services, load, fault, fingerprint); "
                "`playbook drill --list` shows the playbooks that have one.",
            )
        tell: Say = say or (lambda _line: None)
        box = DrillSandbox(spec.services, tell)
        run = cls(loaded, box)
        try:
            run.figures["sandbox_seconds"] = round(box.seconds, 3)
            tell(f"sandbox ready in {box.seconds:.1f} s")
            run.figures["load_seconds"] = run._steps(spec.load, "load", tell)
            started = time.monotonic()
            run.baseline = run.fingerprint()
            run.figures["fingerprint_seconds"] = round(time.monotonic() - started, 3)
            counts = ", ".join(f"{t}: {len(i):,} items" for t, i in run.baseline.items())
            tell(f"fingerprint taken ({counts})")
            run.figures["fault_seconds"] = run._steps(spec.fault, "fault", tell)
        except BaseException:
            run.stop()
            raise
        return run

    def _steps(self, steps: list[DrillStep], part: str, say: Say) -> float:
        started = time.monotonic()
        for i, step in enumerate(steps):
            label = step.title or f"{part} step {i + 1}"
            try:
                with self.sandbox.handle(step.target) as handle:
                    done = apply_step(step, handle)
            except PlaybookError:
                raise
            except Exception as exc:
                raise DrillError(
                    f"The drill's {part} step {i + 1} ({inline(label)}) failed on "
                    f"{step.target!r}: {type(exc).__name__}: {inline(str(exc))[:300]}",
                    f"Check drill.{part}[{i}] in {self.loaded.path}.",
                ) from None
            say(f"{part}: {inline(label)} ({inline(done)})")
        return round(time.monotonic() - started, 3)

    def fingerprint(self) -> dict[str, dict[str, str]]:
        """Every fingerprinted target's items and their digests, read now."""
        out: dict[str, dict[str, str]] = {}
        for fp in self.spec.fingerprint:
            out.setdefault(fp.target, {}).update(self._items(fp))
        return out

    def _items(self, fp: DrillFingerprint) -> dict[str, str]:
        kind = self.sandbox.kinds[fp.target]
        with self.sandbox.handle(fp.target) as handle:
            if kind == "redis":
                return redis_drill.fingerprint(handle, fp.keys)
            if kind == "postgres":
                return _postgres_items(handle, fp.tables)
            return _mongo_items(handle, fp.collections)

    def payload(self, speed: float) -> dict[str, Any]:
        """The ``drill`` block of the incident's ``opened`` event."""
        return {
            "title": self.spec.title,
            "runbook": self.loaded.playbook.id,
            "source": self.spec.source,
            "briefing": self.spec.briefing,
            "speed": speed,
            "services": dict(self.sandbox.labels),
            "fingerprint": {t: summarise(i) for t, i in self.baseline.items()},
            "setup": dict(self.figures),
        }

    def open(self, service: Any, speed: float = 1.0, severity: str | None = None) -> IncidentState:
        """Open the drill's incident in ``service`` (whose store must be the drills')."""
        return service.open(
            self.loaded,
            f"Drill: {self.spec.title}",
            severity=severity,
            drill=self.payload(speed),
        )

    def check(self, service: Any, incident_id: str) -> tuple[IncidentState, dict[str, Any]]:
        """Compare the data with the fingerprint now, and record the answer."""
        started = time.monotonic()
        result = compare(self.baseline, self.fingerprint())
        result["seconds"] = round(time.monotonic() - started, 3)
        return service.record_drill_check(incident_id, result), result

    def stop(self) -> None:
        self.sandbox.stop()


# --------------------------------------------------------------------------- headless


def load_script(path: Path) -> Any:
    """A drill script read and validated (file, line and key in every problem)."""
    from playbook.core.drillscript import DrillScript
    from playbook.core.loader import parse_model, read_text

    text, _raw = read_text(path)
    return parse_model(text, str(path), DrillScript, "a drill script")


@dataclass
class StepResult:
    number: int
    step: str
    ok: bool
    said: str
    seconds: float


def run_script(
    service: Any,
    run: DrillRun,
    incident_id: str,
    script: Any,
    out: TextIO | None = None,
) -> list[StepResult]:
    """Play ``script``'s steps on the drill's incident; stop at the first that fails."""
    results: list[StepResult] = []
    for n, step in enumerate(script.steps, start=1):
        started = time.monotonic()
        try:
            ok, said = _play(service, run, incident_id, step)
        except PlaybookError as exc:
            ok, said = False, exc.title + (f" {exc.message}" if exc.message else "")
        result = StepResult(n, step.key, ok, inline(said), time.monotonic() - started)
        results.append(result)
        if out is not None:
            mark = "ok  " if ok else "FAIL"
            out.write(f"{mark} {n:>2}. {result.seconds:6.1f} s  {step.key}: {result.said}\n")
            out.flush()
        if not ok:
            break
    return results


def _play(service: Any, run: DrillRun, incident_id: str, step: Any) -> tuple[bool, str]:
    key = step.key
    if key == "acknowledge":
        service.acknowledge(incident_id)
        return True, "acknowledged"
    if key == "severity":
        service.change_severity(incident_id, step.severity, step.reason or "drill script")
        return True, f"severity {step.severity}"
    if key == "phase":
        service.enter_phase(incident_id, step.phase)
        return True, f"entered {step.phase}"
    if key == "tick":
        for ref in step.tick:
            service.check(incident_id, ref)
        return True, f"ticked {len(step.tick)}"
    if key == "note":
        service.note(incident_id, step.note)
        return True, "noted"
    if key == "escalate":
        state = service.escalate(incident_id, step.escalate or None, step.reason)
        return True, f"escalated to {state.escalations[-1].to}"
    if key == "diagnostic":
        _state, payload = service.run_diagnostic(
            incident_id, step.diagnostic, step.params, run.targets
        )
        verdict = payload["verdict"]
        wanted = step.expect
        failing = [c["text"] for c in payload.get("checks", []) if not c.get("ok")]
        detail = "; ".join(failing[:3]) or payload.get("error", "")
        ok = wanted is None or verdict == wanted
        said = f"{step.diagnostic} -> {verdict}" + (f" (expected {wanted})" if wanted else "")
        return ok, said + (f": {detail}" if detail else "")
    if key == "action":
        return _play_action(service, run, incident_id, step)
    if key == "check":
        _state, result = run.check(service, incident_id)
        restored = result["restored"]
        ok = restored == (step.check == "restored")
        said = (
            "data restored to its fingerprint" if restored else "data differs from its fingerprint"
        )
        if not restored:
            diffs = [
                f"{t}: {', '.join(r['examples'][:3])}"
                for t, r in result["targets"].items()
                if not r["restored"]
            ]
            said += " (" + "; ".join(diffs) + ")"
        return ok, said
    service.resolve(incident_id, step.resolve)
    return True, "resolved"


def _play_action(service: Any, run: DrillRun, incident_id: str, step: Any) -> tuple[bool, str]:
    wanted = step.expect or "verified"
    guarded = service.start_action(incident_id, step.action, step.params, run.targets)
    plan = guarded.dry_run()
    if plan.empty:
        return wanted == "nothing-to-do", f"{step.action}: the dry run found nothing to change"
    guarded.backup()
    guarded.confirm(step.confirm if step.confirm is not None else guarded.phrase)
    outcome = guarded.apply()
    if outcome.ok:
        ended = "verified"
    elif outcome.stage == "verify":
        ended = "verify-failed"
    else:
        ended = "apply-failed"
    counts = ", ".join(f"{k} {v:,}" for k, v in outcome.numbers.items() if isinstance(v, int))
    said = f"{step.action} -> {ended}" + (f" ({counts})" if counts else "")
    if outcome.error:
        said += f": {outcome.error}"
    return ended == wanted, said + ("" if ended == wanted else f" (expected {wanted})")
