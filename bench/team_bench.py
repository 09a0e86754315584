"""Team mode: append and fan-out latency of the shared PostgreSQL log, and SQLite's.

Run it with ``python bench/team_bench.py`` (``--help`` for options). It prints figures and
never fails a build: bench/ is not part of the test run. bench/README.md says what each
figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg
from figures import Figure, duration, summary  # bench/figures.py: this folder is on the path

from playbook.core.events import NewEvent
from playbook.drill import servers as sandbox
from playbook.store.choice import StoreChoice, open_store
from playbook.store.postgres import PostgresStore, init
from playbook.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import LatencyProxy  # noqa: E402  (tests/ is put on the path just above)

DELAY = 0.05
"""Round trip the proxy adds (the diagnostics benchmarks' far data centre)."""
TARGET_FANOUT_LOOPBACK = 0.100
TARGET_FANOUT_PROXY = 1.0
TARGET_APPEND_LOOPBACK = 0.020

DURABLE = {"fsync=off": "fsync=on", "synchronous_commit=off": "synchronous_commit=on"}
DURABLE["full_page_writes=off"] = "full_page_writes=on"
"""The sandbox server trades durability for start-up speed; the bench puts it back."""


# ================================================================================ a client


def client(args: argparse.Namespace) -> None:
    """One responder: follows every incident, appends ``count`` notes to its own incident
    at one every ``interval`` seconds (or as fast as acknowledged, if slower), and reports
    when each append was acknowledged and when each event reached its feed."""
    local = None
    if args.kind == "postgres":
        store: Any = PostgresStore(args.url)
    elif args.kind == "wired":  # what the CLI and the app use: the outbox in front
        local = tempfile.TemporaryDirectory(prefix=f"team-bench-{args.name}-")
        store = open_store(Path(local.name), StoreChoice(args.url, "bench"))
    else:
        store = SQLiteStore(args.url)
    incident = f"bench-{args.name}"
    applied: dict[str, float] = {}
    expected = args.count * args.clients + args.clients  # every note, and every opening
    feed = store.follow()
    done = threading.Event()
    if args.no_follow:
        expected = 0

    def follow() -> None:
        while len(applied) < expected and not done.is_set():
            for event in feed.get(0.2):
                applied[event.event_id] = time.monotonic()

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"
    acks: list[tuple[str, float, float]] = []
    opening = NewEvent("opened", OPENED, args.name, datetime.now(UTC))
    store.append(incident, 0, [opening])
    start = time.monotonic()
    for k in range(args.count):
        due = start + k * args.interval
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # open-loop pacing: one note per interval
        note = NewEvent("note_added", {"text": f"{args.name}:{k}"}, args.name, datetime.now(UTC))
        sent = time.monotonic()
        store.append(incident, k + 1, [note])
        acks.append((note.event_id, sent, time.monotonic()))
    follower.join(60)
    done.set()
    feed.close()
    store.close()
    if local is not None:
        local.cleanup()
    print(json.dumps({"acks": acks, "applied": applied}), flush=True)


OPENED = {
    "title": "bench",
    "severity": "P2",
    "triggers": [],
    "playbook": {"id": "bench"},
    "snapshot": {},
    "sections": [],
}


# ================================================================================ a run


def run(
    kind: str, url: str, clients: int, count: int, interval: float, follow: bool = True
) -> dict[str, Any]:
    """``clients`` processes at once; append latencies and fan-out latencies (from one
    client's acknowledged commit to each other client's feed delivering the event)."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--client",
                "--kind",
                kind,
                "--url",
                url,
                "--name",
                f"c{n}",
                "--clients",
                str(clients),
                "--count",
                str(count),
                "--interval",
                str(interval),
                *([] if follow else ["--no-follow"]),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for n in range(clients)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        assert proc.returncode == 0, f"a client failed ({proc.returncode})"
        results.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.monotonic() - started
    appends = [ack - sent for r in results for _id, sent, ack in r["acks"]]
    fanout: list[float] = []
    from_send: list[float] = []
    missing = 0
    for n, r in enumerate(results):
        for event_id, sent, ack in r["acks"]:
            for m, other in enumerate(results):
                if m == n:
                    continue
                if event_id in other["applied"]:
                    # The notification can overtake the commit's reply to the writer:
                    # then the event was applied before "its commit", and counts as 0.
                    fanout.append(max(0.0, other["applied"][event_id] - ack))
                    from_send.append(other["applied"][event_id] - sent)
                else:
                    missing += 1
    return {
        "appends": appends,
        "fanout": fanout,
        "from_send": from_send,
        "missing": missing,
        "wall": wall,
    }


def quantile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=1000, method="inclusive")[int(q * 1000) - 1]


@contextlib.contextmanager
def durable_postgres(folder: str) -> Iterator[sandbox.PostgresServer]:
    real = subprocess.Popen

    def popen(args: Any, *rest: Any, **kw: Any) -> Any:
        if isinstance(args, list) and args and str(args[0]).endswith("/postgres"):
            args = [DURABLE.get(a, a) for a in args]
        return real(args, *rest, **kw)

    with mock.patch.object(sandbox.subprocess, "Popen", popen):
        server = sandbox.PostgresServer(folder=folder)
    try:
        yield server
    finally:
        server.stop()


# ================================================================================ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--count", type=int, default=1000, help="events per client")
    parser.add_argument(
        "--interval", type=float, default=0.05, help="seconds between a client's appends"
    )
    parser.add_argument(
        "--no-follow", action="store_true", help="appends only: no client follows (context)"
    )
    parser.add_argument("--skip-proxy", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--skip-wired",
        action="store_true",
        help="skip the loopback run through the store the CLI and the app open (the outbox "
        "in front of PostgreSQL)",
    )
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args)
        return

    print(
        f"team_bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; nproc {os.cpu_count()}, "
        f"load {os.getloadavg()[0]:.2f}, Python {platform.python_version()}, "
        f"psycopg {psycopg.__version__}; {args.clients} clients x {args.count} events, "
        f"one every {args.interval * 1000:.0f} ms per client"
    )
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="team-bench-", dir="/var/tmp") as folder:
        os.chmod(folder, 0o755)  # the server may run as nobody
        with durable_postgres(folder) as server:
            url = server.add_owner("team", "team-bench-pw", "team")
            init(url)
            with psycopg.connect(url) as conn:
                settings = {
                    name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                    for name in ("server_version", "fsync", "synchronous_commit")
                }
            print(
                f"PostgreSQL {settings['server_version']}, data on {folder}: "
                + ", ".join(f"{k}={v}" for k, v in settings.items() if k != "server_version")
            )
            modes = [("loopback", None, "postgres")]
            modes += [] if args.skip_wired else [("wired loopback", None, "wired")]
            modes += [] if args.skip_proxy else [("50 ms proxy", DELAY, "postgres")]
            for mode, delay, kind in modes:
                with contextlib.ExitStack() as stack:
                    target = url
                    if delay is not None:
                        proxy = stack.enter_context(LatencyProxy(server.port, delay=delay))
                        target = url.replace(f":{server.port}/", f":{proxy.port}/")
                    with psycopg.connect(url, autocommit=True) as conn:
                        conn.execute("TRUNCATE playbook.events")
                    print(f"\n-- PostgreSQL, {mode}", flush=True)
                    got = run(
                        kind,
                        target,
                        args.clients,
                        args.count,
                        args.interval,
                        not args.no_follow,
                    )
                report(figures, f"pg {mode}", got, delay)
        if not args.skip_sqlite:
            print("\n-- SQLite, one file, same clients", flush=True)
            got = run(
                "sqlite", str(Path(folder) / "sqlite"), args.clients, args.count, args.interval
            )
            report(figures, "sqlite", got, None)
    print(summary(figures))


def report(figures: list[Figure], label: str, got: dict[str, Any], delay: float | None) -> None:
    appends, fanout = got["appends"], got["fanout"]
    print(
        f"   {len(appends)} appends in {got['wall']:.1f} s "
        f"({len(appends) / got['wall']:.0f}/s); {len(fanout)} deliveries, "
        f"{got['missing']} missing"
    )
    loopback = delay is None and label.startswith("pg")
    for name, samples, target in (
        ("append", appends, TARGET_APPEND_LOOPBACK if loopback else None),
        (
            "fan-out",
            fanout,
            (TARGET_FANOUT_LOOPBACK if delay is None else TARGET_FANOUT_PROXY)
            if label.startswith("pg")
            else None,
        ),
        ("send to other's feed", got["from_send"], None),
    ):
        if not samples:
            continue
        p50, p99 = quantile(samples, 0.5), quantile(samples, 0.99)
        print(
            f"   {name}: p50 {duration(p50)}, p99 {duration(p99)}, worst {duration(max(samples))}"
        )
        figures.append(Figure(f"{label} {name} p50", [p50], None))
        figures.append(Figure(f"{label} {name} p99", [p99], target))


if __name__ == "__main__":
    main()
