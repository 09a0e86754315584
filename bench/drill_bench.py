"""How long a drill takes: the sandbox's start-up, and each shipped drill run headless.

1. Start-up of each sandbox service alone (``DrillSandbox({"t": kind})`` then stop), a
   few rounds each: redis-server, PostgreSQL (initdb included), the MongoDB stand-in and
   the HTTP stub. This is what a drill waits for before it loads any data.
2. Every shipped runbook that has a drill, run as a user runs it:
   ``playbook drill RUNBOOK --headless --json`` in a subprocess with a fresh data
   directory. Wall time of the whole command (imports, sandbox, data, fault, script,
   check, clean-up), and the drill's own figures from its JSON: sandbox, load,
   fingerprint and fault seconds, and the script's steps.

Usage: python bench/drill_bench.py [--rounds N] [--only RUNBOOK ...] [--no-startup]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import Figure, summary

from playbook.adapters.plugins import load_playbook as load
from playbook.drill.sandbox import DrillSandbox
from playbook.resources import builtin_runbooks

STARTUP_TARGET = 5.0
"""Seconds a sandbox service may take to start (PostgreSQL's initdb is the slow one)."""


def say(line: str) -> None:
    print(line, flush=True)


def startup(rounds: int, figures: list[Figure]) -> None:
    for kind in ("redis", "postgres", "mongo", "http"):
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            box = DrillSandbox({"t": kind})
            samples.append(time.perf_counter() - started)
            box.stop()
        say(f"start-up {kind:<9} " + " ".join(f"{s:.2f}" for s in samples) + " s")
        figures.append(Figure(f"sandbox start-up: {kind}", samples, STARTUP_TARGET))


def drills(only: list[str], figures: list[Figure]) -> None:
    playbook = Path(sys.executable).with_name("playbook")
    for name, path in builtin_runbooks().items():
        if only and name not in only:
            continue
        if load(path).playbook.drill is None:
            continue
        with tempfile.TemporaryDirectory() as home:
            started = time.perf_counter()
            done = subprocess.run(
                [str(playbook), "--data-dir", home, "drill", name, "--headless", "--json"],
                capture_output=True,
                text=True,
                env={**os.environ, "PLAYBOOK_HOME": home},
                check=False,
            )
            wall = time.perf_counter() - started
        if done.returncode != 0:
            say(f"{name}: exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
            continue
        report = json.loads(done.stdout)
        setup = report["setup"]
        steps = sum(s["seconds"] for s in report["steps"])
        slowest = max(report["steps"], key=lambda s: s["seconds"])
        say(
            f"{name}: {wall:.1f} s in all; sandbox {setup['sandbox_seconds']:.2f} s, "
            f"load {setup['load_seconds']:.2f} s, fingerprint {setup['fingerprint_seconds']:.2f} s, "
            f"fault {setup['fault_seconds']:.2f} s; {len(report['steps'])} steps "
            f"{steps:.1f} s (slowest: {slowest['step']} {slowest['seconds']:.1f} s); "
            f"restored: {report['restored']}"
        )
        figures.append(Figure(f"headless drill: {name}", [wall], None))
        before_app = sum(
            setup[k]
            for k in ("sandbox_seconds", "load_seconds", "fingerprint_seconds", "fault_seconds")
        )
        figures.append(Figure(f"  set-up before the incident opens: {name}", [before_app], None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="start-up rounds per service")
    parser.add_argument("--only", action="append", default=[], help="only this runbook's drill")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up rounds")
    args = parser.parse_args()
    say(
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, Python {sys.version.split()[0]}"
    )
    figures: list[Figure] = []
    if not args.no_startup:
        startup(args.rounds, figures)
    drills(args.only, figures)
    print(summary(figures))


if __name__ == "__main__":
    main()
