"""How long the seed incidents' guarded recoveries take through a slow link.

Run it with ``python bench/action_bench.py`` (``--quick`` uses a tenth of the data,
``--help`` for options). Every action goes through a proxy that adds 50 ms to each round
trip (seed 001's Upstash latency) and counts the round trips, and runs the whole guarded
sequence through the service, as a responder would: dry run, backup, confirmation, lock,
apply, verify (and, for seed 001, rollback). It prints figures and never fails a build.

* seed 000: every index deleted, rebuilt from 234,485 message hashes (6,049 sets, 703,455
  members, seed 001's sizes); then the rollback, which compares each index with what the
  rebuild left before it removes it.
* seed 001: the same rebuild over the 6,049 live sets, whose backup the "safer" script
  needed ten minutes for; then the rollback from that backup.
* seed 002: the lost staff record put back with a guarded INSERT … ON CONFLICT.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from figures import Figure, summary  # bench/figures.py: this script's folder is on the path

from playbook.service import Service
from playbook.store.sqlite import SQLiteStore
from playbook.targets import Target

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import (  # noqa: E402  (tests/ is put on the path just above)
    SEED_000_MESSAGES,
    LatencyProxy,
    load_seed_000,
    redis_server,
)

DELAY = 0.05
RUNBOOKS = ROOT / "runbooks"
NAIVE_BACKUP = 6049 * DELAY
"""Seed 001's backup: one SMEMBERS per set, one round trip each, at 50 ms."""


def say(text: str = "") -> None:
    print(text, flush=True)


class Stopwatch:
    """Times each stage of a guarded run and counts the proxy's round trips in it."""

    def __init__(self, proxy: LatencyProxy) -> None:
        self.proxy = proxy
        self.rows: list[tuple[str, float, int]] = []

    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        trips = self.proxy.round_trips
        started = time.perf_counter()
        result = fn()
        self.rows.append((name, time.perf_counter() - started, self.proxy.round_trips - trips))
        return result

    def total(self) -> float:
        return sum(seconds for _, seconds, _ in self.rows)

    def show(self, title: str) -> None:
        say(f"  {title}")
        for name, seconds, trips in self.rows:
            say(f"    {name:<22} {seconds:8.3f} s  {trips:5,} round trips")
        say(f"    {'total':<22} {self.total():8.3f} s")


def guarded(
    service: Service,
    incident: str,
    action: str,
    targets: dict[str, Target],
    watch: Stopwatch,
    given: dict[str, object] | None = None,
) -> Any:
    run = service.start_action(incident, action, given or {}, targets)
    plan = watch.stage("dry run", run.dry_run)
    watch.stage("backup", run.backup)
    run.confirm(run.phrase)
    outcome = watch.stage("lock, apply, verify", run.apply)
    if not outcome.ok:
        raise SystemExit(f"{action} did not verify: {outcome.error}")
    return run, plan


def redis_scenarios(messages: int, figures: list[Figure]) -> None:
    with redis_server() as server:
        client = server.client()
        started = time.perf_counter()
        counts = load_seed_000(client, messages=messages)
        say(
            f"loaded {counts['messages']:,} messages, {counts['indexes']:,} index sets, "
            f"{counts['members']:,} members in {time.perf_counter() - started:.1f} s"
        )
        proxy = LatencyProxy(server.port, DELAY)
        targets = {"cache": Target("cache", server.uri_via(proxy.port), "bench")}
        with tempfile.TemporaryDirectory() as home:
            service = Service(SQLiteStore(Path(home)), actor="bench")
            runbook = RUNBOOKS / "redis-index-loss.yaml"

            # Seed 001 first, while the 6,049 sets are live: the backup seed 001 needed.
            incident = service.open(runbook, "safer rebuild").id
            watch = Stopwatch(proxy)
            run, plan = guarded(service, incident, "rebuild-indexes", targets, watch)
            watch.stage("rollback", run.rollback)
            watch.show(f"seed 001: rebuild over {plan.counts['live_indexes']:,} live sets")
            backup = next(seconds for name, seconds, _ in watch.rows if name == "backup")
            backup_trips = next(trips for name, _, trips in watch.rows if name == "backup")
            figures.append(Figure("seed 001: backup of the live index sets", [backup], 10.0))
            figures.append(
                Figure(
                    f"seed 001: backup round trips (naive: {plan.counts['live_indexes']:,})",
                    [float(backup_trips)],
                    None,
                    lambda n: f"{n:,.0f}",
                )
            )
            figures.append(
                Figure(
                    f"seed 001: naive backup ({NAIVE_BACKUP:.0f} s) / ours",
                    [NAIVE_BACKUP / backup],
                    None,
                    lambda n: f"{n:,.0f}x",
                )
            )

            # Seed 000: the script deletes every index; the rebuild brings them back.
            for key in list(client.scan_iter(match="discord:messages:*", count=20_000)):
                client.unlink(key)
            incident = service.open(runbook, "indexes deleted").id
            watch = Stopwatch(proxy)
            run, _plan = guarded(service, incident, "rebuild-indexes", targets, watch)
            rebuild = watch.total()
            # The rollback compares every index with what the rebuild left before it
            # removes it: its round trips are the price of never removing a newer write.
            watch.stage("rollback", run.rollback)
            watch.show(f"seed 000: rebuild from {messages:,} messages, no index left")
            figures.append(Figure("seed 000: whole guarded rebuild", [rebuild], 60.0))
            trips = {name: n for name, _s, n in watch.rows}
            figures.append(
                Figure(
                    "seed 000: round trips, apply+verify / rollback",
                    [float(trips["lock, apply, verify"])],
                    None,
                    lambda n: f"{n:,.0f} / {trips['rollback']:,}",
                )
            )
        proxy.close()


def postgres_scenario(figures: list[Figure]) -> None:
    from pgserver import PostgresServer  # tests/pgserver.py

    # The seed's data, as the end-to-end test builds it (tests/runbooks/).
    sys.path.insert(0, str(ROOT / "tests" / "runbooks"))
    from test_stale_backup import OUTRID3R, SCHEMA, STAFF

    with PostgresServer() as pg:
        with pg.connect() as conn:
            conn.execute(SCHEMA)
            for row in STAFF:
                if row[0] != OUTRID3R:  # the stale restore lost him
                    conn.execute(
                        "INSERT INTO staff_invite_configs VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        row,
                    )
                conn.execute(
                    "INSERT INTO staff_audit VALUES (%s, %s, %s, 'add', %s)",
                    (row[0], row[1], row[2], row[6]),
                )
        proxy = LatencyProxy(pg.port, DELAY)
        with tempfile.TemporaryDirectory() as home:
            service = Service(SQLiteStore(Path(home)), actor="bench")
            incident = service.open(RUNBOOKS / "stale-backup.yaml", "staff record lost").id
            targets = {"db": Target("db", pg.uri_via(proxy.port), "bench")}
            watch = Stopwatch(proxy)
            given = {
                "staff_id": OUTRID3R,
                "staff_username": "OUTRID3R",
                "invite_code": "RDwD35HRMt",
            }
            guarded(service, incident, "reinsert-staff", targets, watch, given)
            watch.show("seed 002: the lost staff record re-inserted")
            figures.append(Figure("seed 002: whole guarded re-insert", [watch.total()], 10.0))
        proxy.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the messages")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--only-postgres", action="store_true", help="seed 002 only")
    args = parser.parse_args()
    messages = SEED_000_MESSAGES // 10 if args.quick else SEED_000_MESSAGES
    figures: list[Figure] = []
    say(f"guarded recoveries through a proxy adding {DELAY * 1000:.0f} ms per round trip")
    if not args.only_postgres:
        redis_scenarios(messages, figures)
    postgres_scenario(figures)
    say(summary(figures))
    if args.json:
        Path(args.json).write_text(
            json.dumps({f.name: f.median for f in figures}, indent=2), encoding="utf-8"
        )


if __name__ == "__main__":
    main()
