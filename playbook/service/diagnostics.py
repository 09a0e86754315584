"""Diagnostics: prepared (every check made before anything is sent), executed (the full
result saved to a file, fsynced), and recorded as the incident's evidence.

The three steps are apart so a front end can show what will run, run it in a worker it
can cancel, and show the result before it is recorded; :func:`run_diagnostic` does all
three for a caller that need not.
"""

from __future__ import annotations

import contextlib
import difflib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playbook.core import events as ev
from playbook.core.state import IncidentState
from playbook.core.text import unpaired_escaped
from playbook.errors import Conflict, NotFound
from playbook.redaction import scrub_data
from playbook.service.context import Context, append_one, check_actor, get
from playbook.service.incidents import playbook_of

if TYPE_CHECKING:
    from playbook.adapters.base import Adapter, Progress, RunContext, RunRequest
    from playbook.core.model import Diagnostic
    from playbook.targets import Target


@dataclass
class PreparedRun:
    """A diagnostic checked and ready to run; :meth:`cancel` stops it from any thread."""

    incident_id: str
    diagnostic_id: str
    diagnostic: Diagnostic
    values: dict[str, object]
    target: str
    adapter: Adapter
    request: RunRequest
    context: RunContext | None = None
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.context is not None:
            self.context.cancel()


def prepare_diagnostic(
    ctx: Context,
    ref: str,
    diagnostic_id: str,
    given: Mapping[str, object],
    targets: Mapping[str, Target],
) -> PreparedRun:
    """Everything checked before a diagnostic runs; nothing is sent yet.

    Raises:
        NotFound: no such diagnostic in the incident's playbook.
        Refused: the diagnostic writes, or its query is not a bounded read.
        UsageError: a parameter or the target is missing or wrong.
    """
    # Imported here for start-up speed: the adapters and the expectations need
    # pydantic and the drivers, and the targets the configuration's readers, none of
    # which the CLI and the app's first frame must wait for.
    from playbook.adapters import plugins
    from playbook.adapters.base import Refused, RunRequest
    from playbook.core.diagnostics import resolve, substitute
    from playbook.service.targets import target_for
    from playbook.targets import check_scheme

    check_actor(ctx)  # before anything runs: its result is recorded under this name
    state = get(ctx, ref).state
    if state.closed_at is not None:
        raise Conflict(f"Incident {state.id} is closed.", "Open a new incident to run diagnostics.")
    pb = playbook_of(state)
    diagnostic = pb.diagnostics.get(diagnostic_id)
    if diagnostic is None:
        hint = difflib.get_close_matches(diagnostic_id, list(pb.diagnostics), n=1)
        raise NotFound(
            f"No diagnostic {diagnostic_id!r} in playbook {pb.id!r}.",
            f"Did you mean {hint[0]}?" if hint else "`playbook diag list` lists them.",
        )
    if diagnostic.writes:
        raise Refused(
            f"Refused: {diagnostic_id} changes data; it is never run as a diagnostic.",
            diagnostic.caution or "Run it by hand, deliberately, with a backup.",
        )
    values = resolve(diagnostic.params, defaults_from(state, diagnostic, given))
    options: dict[str, Any] = {"params": values}
    if diagnostic.kind == "shell":
        from playbook.adapters.shell.adapter import refuse_option_values

        dumped = diagnostic.model_dump(by_alias=True)
        raw_query: dict[str, Any] = {
            k: dumped[k] for k in ("argv", "env", "network", "exit_codes", "extract")
        }
        flagged = {name for name, param in diagnostic.params.items() if param.option}
        refuse_option_values(raw_query["argv"], values, flagged)
        # The program must not read the incidents, evidence or backups either.
        options["unreadable"] = [str(ctx.evidence_dir.parent)] if ctx.evidence_dir else []
    else:
        raw_query = diagnostic.query.model_dump(by_alias=True, exclude_none=True)
    query = substitute(raw_query, values)
    if diagnostic.kind == "shell":
        query["argv"] = [str(a) for a in query["argv"]]  # type: ignore[index]
        query["env"] = {k: str(v) for k, v in query["env"].items()}  # type: ignore[index]
    target = target_for(state, diagnostic.target, targets)
    adapter = plugins.load(diagnostic.kind)
    check_scheme(target, diagnostic.kind, adapter.schemes)  # nothing runs elsewhere
    # What the responder's own config allows, read by the adapters under these keys;
    # a playbook cannot set them (they come from the targets, not the diagnostic).
    options["target"] = target.options
    options["allow_unsandboxed_shell"] = bool(getattr(targets, "allow_unsandboxed_shell", False))
    request = RunRequest(diagnostic_id, query, target.uri, options=options)  # type: ignore[arg-type]
    adapter.check(request)
    return PreparedRun(state.id, diagnostic_id, diagnostic, values, target.name, adapter, request)


def execute_diagnostic(
    ctx: Context, prepared: PreparedRun, progress: Callable[[Progress], None] | None = None
) -> dict[str, Any]:
    """Run a prepared diagnostic; the evidence payload, whatever the outcome.

    Never raises for a failed run: an unreachable server, a deadline or a cancel
    is a result with verdict ``error`` and whatever rows arrived, labelled partial
    (and ``cancelled`` when it was cancelled). The full result is written to a file and
    fsynced before this returns.

    Raises:
        StoreError: the result file cannot be created; the diagnostic did not run.
    """
    from playbook.adapters.base import RunContext, RunError, Sink  # for speed, as above
    from playbook.core.diagnostics import ERROR, Verdict, evaluate
    from playbook.core.evidence import run_payload

    d = prepared.diagnostic
    started = ctx.clock.now()
    path = _evidence_path(ctx, prepared.incident_id, prepared.diagnostic_id, started)
    try:
        sink = Sink(path, redact=True)  # evidence is shown and exported
    except OSError as exc:
        from playbook.errors import StoreError

        raise StoreError(
            f"Cannot write the result file {path}: {exc.strerror or exc}. "
            "The diagnostic was not run and nothing was recorded.",
            "Free some space or fix the data directory's permissions, then run it again.",
        ) from None
    run_ctx = RunContext(float(d.timeout), float(d.connect_timeout), progress)
    prepared.context = run_ctx
    metrics: dict[str, Any] = {}
    error = ""
    try:
        if prepared.cancelled:
            run_ctx.cancel()
        run_ctx.check()
        metrics = prepared.adapter.run(prepared.request, run_ctx, sink)
    except RunError as exc:
        error = exc.title + (f" {exc.message}" if exc.message else "")
    except Exception as exc:  # a driver's surprise must still leave evidence
        from playbook.adapters.base import scrub

        error = scrub(f"{type(exc).__name__}: {exc}", prepared.request.uri)
    finally:
        run_ctx.finish()
    sha = sink.close()
    ended = ctx.clock.now()
    # this machine's clock, as the readers' ages use: a time compared with a parameter
    # and dated ahead of it cannot be judged (core.diagnostics.evaluate)
    verdict = (
        Verdict(ERROR, [], error)
        if error
        else evaluate(d.expect, metrics, prepared.values, now=time.time())
    )
    payload = run_payload(
        diagnostic=prepared.diagnostic_id,
        title=d.title,
        kind=d.kind,
        target=prepared.target,
        params=prepared.values,
        started=started,
        ended=ended,
        verdict=verdict,
        metrics=metrics,
        rows=sink.rows,
        rows_total=sink.count,
        partial=bool(error),
        error=error,
        file=str(path) if path else None,
        sha256=sha,
        cancelled=run_ctx.stopped == "cancel",
    )
    # The caller may show it before it is recorded: secrets masked, and a lone
    # surrogate an endpoint or a database returned written as its escape.
    return unpaired_escaped(scrub_data(payload))


def record_diagnostic(ctx: Context, ref: str, payload: dict[str, Any]) -> IncidentState:
    """Append a run's evidence to the incident (also after it was resolved or closed)."""
    return append_one(ctx, ref, ev.DIAGNOSTIC_RUN, payload)


def run_diagnostic(
    ctx: Context,
    ref: str,
    diagnostic_id: str,
    given: Mapping[str, object],
    targets: Mapping[str, Target],
    progress: Callable[[Progress], None] | None = None,
) -> tuple[IncidentState, dict[str, Any]]:
    """Prepare, run and record a diagnostic: the state after, and the evidence."""
    prepared = prepare_diagnostic(ctx, ref, diagnostic_id, given, targets)
    payload = execute_diagnostic(ctx, prepared, progress)
    return record_diagnostic(ctx, prepared.incident_id, payload), payload


def _evidence_path(ctx: Context, incident_id: str, diagnostic_id: str, at: datetime) -> Path | None:
    if ctx.evidence_dir is None:
        return None
    folder = ctx.evidence_dir / incident_id
    stem = f"{at:%Y%m%dT%H%M%S}Z-{diagnostic_id}"
    for n in range(1000):
        path = folder / (f"{stem}.jsonl" if n == 0 else f"{stem}-{n}.jsonl")
        if not path.exists():
            return path
    raise Conflict(f"Too many results named {stem} in {folder}.")


def defaults_from(
    state: IncidentState, diagnostic: Diagnostic, given: Mapping[str, object]
) -> dict[str, object]:  # also used by the app to pre-fill its parameter dialog
    """``given`` plus each unset parameter whose `default_from` names a number that an
    earlier run of this incident produced (times as seconds since the epoch)."""
    out = dict(given)
    last = state.last_runs()
    for name, param in diagnostic.params.items():
        if name in out or not param.default_from:
            continue
        source, metric = param.default_from.split(".", 1)
        run = last.get(source)
        value = (run.payload.get("metrics") or {}).get(metric) if run else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = value
            if param.type == "datetime":
                # A number the database chose (1e300) may be no time at all: it is then
                # left a number, and the parameter's check says so, naming it.
                with contextlib.suppress(OverflowError, OSError, ValueError):
                    out[name] = datetime.fromtimestamp(value, UTC).isoformat()
    return out
