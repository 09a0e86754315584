"""How fast an incident with 100,000 events exports, as Markdown and as JSON.

Run it with ``python bench/export_bench.py`` (``--events N``, ``--rounds R``, ``--profile``
for a cProfile of one Markdown and one JSON export, ``--clock cpu`` on a busy machine).
``PYTHONPATH=/path/to/other/checkout python bench/export_bench.py`` times another
version's exporters on the same events (the script needs nothing of this branch). It prints figures and never fails a
build: bench/ is not part of the test run.

The incident is generated once into a SQLite store in a temporary folder (opened through
the service on the shipped data-integrity playbook, then appended to in batches). Each
round reads it back (untimed), then times the fold and the render, as the service does
them (read, fold, render): the target (≤ 1 s for fold + render, issue 15 §6) and the
figures before this work (2.3 s Markdown, 1.9 s JSON, measured on the same 2-core
machine) are printed beside the best of the rounds.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from figures import Figure, summary  # bench/figures.py: this script's folder is on the path

from playbook.adapters.plugins import load_playbook
from playbook.core.clock import FakeClock
from playbook.core.events import Event, NewEvent
from playbook.core.state import fold
from playbook.render import export as exporters
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = ROOT / "runbooks" / "data-integrity.yaml"
T0 = datetime(2026, 3, 14, 2, 0, tzinfo=UTC)
TARGET = 1.0
ZONE = None
"""The zone the Markdown exports show local times in: the system's, as `playbook export`
asks (a conversion per minute of events, which UTC would skip)."""
BEFORE = {"markdown": 2.3, "json": 1.9}
"""Seconds for fold + render of 100,000 events before this work (issue 15 §6's figures)."""

ACTORS = ("alice", "bob", "chloé", "dmitri", "eve")
NOTES = (
    "Checked the replica: lag 12 s and falling.",
    "Restored 1,204 orders from the 02:00 backup; see ticket OPS-42.",
    "Customer reports from EU-west: orders missing since 02:10 (see #incident-4711).",
    "Root cause candidate: the nightly *rebuild* job dropped `orders_idx` | retrying",
    "Two lines:\nfirst one\nsecond one with <angle> & [brackets]",
    "Über-langsam: die Abfrage dauert 4 s — naïve plan chosen",
)


def generate(playbook_events: list[Event], count: int) -> Iterator[NewEvent]:
    """``count`` events after the opening: the mix a long incident has (mostly notes
    and ticks, a diagnostic every 50 events, a status message every 200, a severity
    change every 1,000, ...), one second apart, from five responders."""
    state = fold(playbook_events)
    refs = list(state.checklist)
    phases = [p.id for p in state.phases]
    levels = list(state.levels)
    templates = list(state.snapshot.get("communications", {}).get("templates", {}))
    at = playbook_events[-1].at
    severity = state.severity
    for i in range(1, count + 1):
        at += timedelta(seconds=1)
        actor = ACTORS[i % len(ACTORS)]
        kind, payload = _event(i, refs, phases, levels, templates, severity)
        if kind == "severity_changed":
            severity = payload["to"]
        yield NewEvent(kind, payload, actor, at, event_id=f"bench-{i}", device="bench")


def _event(
    i: int,
    refs: list[str],
    phases: list[str],
    levels: list[str],
    templates: list[str],
    severity: str,
) -> tuple[str, dict[str, Any]]:
    if i == 1:
        return "acknowledged", {}
    if i % 1000 == 0:
        to = next(level for level in levels if level != severity)
        return "severity_changed", {"from": severity, "to": to, "reason": f"step {i}"}
    if i % 5000 == 1:
        return "phase_entered", {"phase": phases[(i // 5000) % len(phases)]}
    if i % 3000 == 2:
        return "escalated", {"to": f"oncall-{i % 7}", "reason": "no answer"}
    if i % 200 == 3 and templates:
        text = f"Update {i}: we are restoring orders.\n```\nstill ``` working\n```\n"
        return "status_rendered", {
            "template": templates[i % len(templates)],
            "status": "investigating",
            "text": text,
        }
    if i % 50 == 4:
        return "diagnostic_run", _diagnostic(i)
    if i % 500 == 5:
        return "action_stage", {
            "run": f"r{i // 500}",
            "action": "rebuild-indexes",
            "target": "cache",
            "stage": "apply",
            "outcome": "done",
            "counts": {"keys": i},
        }
    if i % 20_000 == 6:
        return "renamed", {"from": "Orders missing", "to": f"Orders missing ({i})"}
    if i % 3 == 0:
        return "item_checked", {"item": refs[i % len(refs)]}
    if i % 7 == 0:
        return "item_unchecked", {"item": refs[i % len(refs)]}
    return "note_added", {"text": NOTES[i % len(NOTES)]}


def _diagnostic(i: int) -> dict[str, Any]:
    rows = [{"key": f"order:{i}:{n}", "missing": n % 2 == 0, "note": "ok | `x`"} for n in range(5)]
    return {
        "diagnostic": "orders-count",
        "title": "Orders against the ledger",
        "kind": "redis",
        "target": "cache",
        "params": {"pattern": "order:*"},
        "started": "2026-03-14T02:01:00.000000Z",
        "ended": "2026-03-14T02:01:01.000000Z",
        "verdict": "fail" if i % 100 == 4 else "pass",
        "message": f"{i} keys scanned",
        "checks": [{"metric": "missing", "op": "le", "ok": False, "text": "missing ≤ 0"}],
        "metrics": {"missing": i % 17, "scanned": i},
        "rows": rows,
        "rows_total": 5,
        "partial": False,
        "error": "",
        "file": None,
        "sha256": None,
    }


def build(folder: Path, count: int) -> tuple[SQLiteStore, str]:
    """A SQLite store holding one incident of ``count`` + 1 events."""
    store = SQLiteStore(folder)
    service = Service(store, clock=FakeClock(T0), actor="alice")
    incident = service.open(load_playbook(RUNBOOK), "Orders missing", triggers=["pager"]).id
    opened = store.read(incident)
    seq = opened[-1].seq
    batch: list[NewEvent] = []
    for new in generate(opened, count):
        batch.append(new)
        if len(batch) == 5000:
            seq = store.append(incident, seq, batch)[-1].seq
            batch = []
    if batch:
        store.append(incident, seq, batch)
    return store, incident


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
"""``--clock cpu`` times this process's CPU seconds: on a shared 2-core machine under load
wall-clock figures measure the neighbours; the export is single-threaded, so its CPU time
is what it costs (and what it takes on a quiet machine, less cache effects)."""
clock = time.perf_counter


def best(
    rounds: int, fresh: Callable[[], list[Event]], work: Callable[[list[Event]], object]
) -> tuple[float, object]:
    """The best of ``rounds`` timings of ``work``, each on events just read from the store
    (untimed): an export reads its events afresh, so nothing an earlier round worked out
    and kept on an event (its schema check, say) may make a later round look faster."""
    times, result = [], None
    for _ in range(rounds):
        events = fresh()
        start = clock()
        result = work(events)
        times.append(clock() - start)
    return min(times), result


def _as_exported(work: Callable[..., object]) -> Callable[..., object]:
    """``work`` run the way the exports run their fold: with the cycle collector paused
    (where this checkout does that), so that "render only" is the export less its fold."""
    try:
        from playbook.render.export import cycle_collector_paused
    except ImportError:
        return work
    return cycle_collector_paused(work)


def _postmortem_exporter() -> Callable[..., str] | None:
    try:
        from playbook.render.postmortem import to_postmortem
    except ImportError:
        return None
    return to_postmortem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile one export of each")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    print(f"playbook from {Path(exporters.__file__).parent.parent}; clock {args.clock}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        store, incident = build(Path(tmp), args.events)
        made = time.perf_counter() - start
        start = time.perf_counter()
        events = store.read(incident)
        read = time.perf_counter() - start
        print(f"{len(events):,} events generated in {made:.1f} s; read back in {read:.3f} s")
        now = events[-1].at + timedelta(minutes=5)
        del events

        def fresh() -> list[Event]:
            return store.read(incident)

        try:
            figures = measure(args, fresh, now)
        finally:
            store.close()
    print(summary(figures))


def measure(args: argparse.Namespace, fresh: Callable[[], list[Event]], now: datetime) -> list:
    if args.profile:
        for name, render in (
            ("markdown", lambda events: exporters.to_markdown(events, now, ZONE)),
            ("json", lambda events: exporters.to_json(events, now)),
        ):
            profile = cProfile.Profile()
            profile.runcall(render, fresh())
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(18)
            print(f"--- cProfile, {name} (fold + render), by own time\n{out.getvalue()}")
    fold_time, _state = best(args.rounds, fresh, _as_exported(fold))
    figures = [Figure("fold", [fold_time], None, note="best")]
    for name, render in (
        ("markdown", lambda events: exporters.to_markdown(events, now, ZONE)),
        ("json", lambda events: exporters.to_json(events, now)),
    ):
        whole, text = best(args.rounds, fresh, render)
        render_only = max(0.0, whole - fold_time)
        assert isinstance(text, str)
        print(
            f"{name:>8}: fold + render {whole:.3f} s (fold {fold_time:.3f} s, render "
            f"{render_only:.3f} s, {len(text) / 1e6:.1f} MB); {whole / BEFORE[name]:.2f}× "
            f"the {BEFORE[name]} s before; {whole / TARGET:.2f}× the {TARGET:g} s target"
        )
        figures.append(Figure(f"{name}: fold + render", [whole], TARGET, note="best"))
        figures.append(Figure(f"{name}: render only", [render_only], None, note="best"))
    postmortem = _postmortem_exporter()
    if postmortem is not None:  # not in a checkout from before issue 15 §6
        whole, _text = best(args.rounds, fresh, lambda events: postmortem(events, now, ZONE))
        print(f"postmortem: fold + render {whole:.3f} s (no target; its appendix is the timeline)")
        figures.append(Figure("postmortem: fold + render", [whole], None, note="best"))
    return figures


if __name__ == "__main__":
    sys.exit(main())
