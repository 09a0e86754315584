"""How fast the Redis diagnostics are: snapshots, the naive way, parsers, a million keys.

Run it with ``python bench/diag_bench.py`` (``--quick`` skips the million keys, ``--help``
for options). It prints figures and never fails a build: bench/ is not part of the test
run. bench/README.md says what each figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import redis
from figures import Figure, summary  # bench/figures.py: this script's folder is on the path
from redis._parsers import _RESP2Parser

from playbook.adapters.base import RunContext, RunRequest, Sink
from playbook.adapters.redis import client as playbook_redis
from playbook.adapters.redis.reader import SCAN_COUNT, RedisAdapter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import (  # noqa: E402  (tests/ is put on the path just above)
    LatencyProxy,
    RedisServer,
    load_seed_001,
    redis_server,
    redis_server_binary,
    seed_001_sizes,
)

DELAY = 0.05
"""Latency the proxy adds to every round trip (a slow link to a far data centre)."""
SNAPSHOT_PATTERN = "discord:messages:*"
COUNT_PATTERN = "message:discord:*"
MILLION = 1_000_000
NAIVE_SAMPLE = 100

TARGET_SNAPSHOT = 2.0
TARGET_SNAPSHOT_TRIPS = 25
TARGET_COUNT_DIRECT = 1.5
TARGET_COUNT_PROXY = 8.0
TARGET_COUNT_MEMORY = 150.0  # MB
REDIS_CLI_COUNT = 10
"""redis-cli --scan sends SCAN with COUNT 10 (its default)."""


# ================================================================================ helpers


def secs(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds < 100 else f"{seconds:,.0f} s"


def trips(n: float) -> str:
    return f"{n:,.0f}"


def mb(n: float) -> str:
    return f"{n:.1f} MB"


def times(n: float) -> str:
    return f"{n:,.1f}x"


@dataclass
class Run:
    """One diagnostic run as the adapter did it."""

    wall: float
    round_trips: int | None
    metrics: dict[str, Any]
    sha: str | None
    size: int
    parser: str


def say(text: str = "") -> None:
    print(text, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], unit: Callable[[float], str]) -> str:
    """``median (min–max, n runs)`` for a progress line."""
    if len(values) == 1:
        return f"{unit(values[0])} (1 run)"
    return (
        f"{unit(median(values))} median ({unit(min(values))} – {unit(max(values))}, "
        f"{len(values)} runs)"
    )


# The adapter builds its client with ``GuardedRedis.from_url(uri, ...)`` and passes no
# ``parser_class``, so redis-py uses its default: ``_HiredisParser`` when hiredis is
# installed. To run the same code with redis-py's pure-Python parser, the bench wraps
# ``from_url`` for its own runs only (a monkeypatch, nothing in playbook/ changes) and
# adds ``parser_class=_RESP2Parser``, the connection keyword redis-py documents for this;
# on a RESP3 connection (redis-py 8's default protocol) redis-py itself swaps that for
# ``_RESP3Parser``. Commands are still *packed* by hiredis (``HiredisRespSerializer``,
# chosen from the module-level ``HIREDIS_AVAILABLE``): only reply parsing changes.
# The wrapper also records which parser each run's connection really used.
_FROM_URL = redis.Redis.from_url.__func__  # type: ignore[attr-defined]


@contextlib.contextmanager
def parser(kind: str) -> Iterator[list[Any]]:
    """Run adapters inside with ``kind`` ("hiredis" or "python"); yields the clients made."""
    clients: list[Any] = []

    def from_url(cls: type, url: str, **kwargs: Any) -> Any:
        if kind == "python":
            kwargs["parser_class"] = _RESP2Parser
        client = _FROM_URL(cls, url, **kwargs)
        clients.append(client)
        return client

    with mock.patch.object(playbook_redis.GuardedRedis, "from_url", classmethod(from_url)):
        yield clients


def parsers_used(clients: list[Any]) -> str:
    """The parser class and protocol of every connection the clients opened."""
    seen: set[str] = set()
    for client in clients:
        pool = client.connection_pool
        conns = [client.connection, *getattr(pool, "_available_connections", [])]
        conns += list(getattr(pool, "_in_use_connections", []))
        for conn in conns:
            if conn is not None:
                seen.add(f"{type(conn._parser).__name__} RESP{conn.protocol}")
    return ", ".join(sorted(seen)) or "?"


def run_op(
    uri: str,
    query: dict[str, Any],
    path: Path | None,
    proxy: LatencyProxy | None = None,
    kind: str = "hiredis",
) -> Run:
    """One adapter run, timed from the request to the result file closed (fsync)."""
    if proxy is not None:
        proxy.reset()
    request = RunRequest("bench", query, uri)
    with parser(kind) as clients:
        began = time.perf_counter()
        ctx = RunContext(600, 5, None)
        sink = Sink(path)
        try:
            metrics = RedisAdapter().run(request, ctx, sink)
        finally:
            ctx.finish()
            sha = sink.close()
        wall = time.perf_counter() - began
    size = path.stat().st_size if path is not None else 0
    if path is not None:
        path.unlink()
    return Run(
        wall, proxy.round_trips if proxy else None, metrics, sha, size, parsers_used(clients)
    )


def admin(server: RedisServer) -> redis.Redis:
    return server.client()


def scan_stats(client: redis.Redis) -> tuple[int, float]:
    """(calls, seconds) the server spent in SCAN since the last CONFIG RESETSTAT."""
    stats = client.info("commandstats").get("cmdstat_scan", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0)) / 1e6


# ================================================================================ machine


def redis_cli_binary() -> str | None:
    return shutil.which("redis-cli") or next(
        (str(p) for p in [Path(redis_server_binary()).with_name("redis-cli")] if p.exists()),
        None,
    )


def machine(server: RedisServer) -> str:
    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0))
    load1, load5, load15 = os.getloadavg()
    binary = redis_server_binary()
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    info = admin(server).info("server")
    cli = redis_cli_binary()
    hiredis_version = "not installed"
    with contextlib.suppress(ImportError):
        import hiredis  # type: ignore[import-untyped]

        hiredis_version = hiredis.__version__
    return (
        f"date: {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}\n"
        f"machine: {platform.machine()} {platform.system()} {platform.release()}; nproc {usable} "
        f"(cpu_count {cpus}); load average {load1:.2f} / {load5:.2f} / {load15:.2f} "
        f"(1 / 5 / 15 min)\n"
        f"python {platform.python_version()}; redis-py {redis.__version__}; "
        f"hiredis {hiredis_version}\n"
        f"redis-server {info.get('redis_version')} at {binary} ({version})\n"
        f"redis-cli: {cli or 'not found'}\n"
        f"latency proxy: +{DELAY * 1000:.0f} ms per round trip (tests/servers.py LatencyProxy); "
        f"SCAN_COUNT {SCAN_COUNT:,}"
    )


# ================================================================================ 1 + 3. snapshot


def bench_snapshot(server: RedisServer, runs: int, work: Path) -> tuple[list[Figure], float]:
    """Snapshot of the 6,049 index sets: hiredis vs pure Python, direct vs 50 ms proxy."""
    say("\n## 1 + 3. Snapshot of the 6,049 index sets (pattern discord:messages:*)")
    say(f"   to a real file in {work}; timed until the file is fsynced and closed")
    say(
        "   rounds interleave hiredis / pure-Python, direct / proxy, so load hits all alike; "
        "one uncounted warm-up run first"
    )
    query = {"op": "snapshot", "pattern": SNAPSHOT_PATTERN}
    proxy = LatencyProxy(server.port, DELAY)
    via = server.uri_via(proxy.port)
    try:
        run_op(server.uri, query, work / "warmup.jsonl")
        results: dict[tuple[str, str], list[Run]] = {}
        for n in range(runs):
            for kind in ("hiredis", "python"):
                for where in ("direct", "proxy"):
                    uri, px = (server.uri, None) if where == "direct" else (via, proxy)
                    r = run_op(uri, query, work / f"snap-{n}-{kind}-{where}.jsonl", px, kind)
                    results.setdefault((kind, where), []).append(r)
                    rt = f", {r.round_trips} round trips" if r.round_trips is not None else ""
                    say(
                        f"   run {n + 1} {kind:<7} {where:<6} {secs(r.wall):>9}{rt}; "
                        f"{r.metrics['count']:,} keys, {r.metrics['members']:,} members, "
                        f"{r.size / 1e6:.1f} MB; parser {r.parser}"
                    )
    finally:
        proxy.close()

    shas = {r.sha for rs in results.values() for r in rs}
    if len(shas) == 1:
        say(f"   every run wrote the same file (sha256 {next(iter(shas))[:16]}…)")
    else:
        say(f"   WARNING: the runs wrote {len(shas)} different files")

    def walls(kind: str, where: str) -> list[float]:
        return [r.wall for r in results[(kind, where)]]

    hp, hd = walls("hiredis", "proxy"), walls("hiredis", "direct")
    pp, pd = walls("python", "proxy"), walls("python", "direct")
    size = results[("hiredis", "direct")][0].size / 1e6
    proxy_trips = [float(r.round_trips or 0) for r in results[("hiredis", "proxy")]]
    say(f"   hiredis via proxy: {spread(hp, secs)}")
    say(f"   hiredis direct:    {spread(hd, secs)}")
    say(f"   python via proxy:  {spread(pp, secs)}")
    say(f"   python direct:     {spread(pd, secs)}")
    say(
        f"   pure-Python / hiredis: direct {median(pd) / median(hd):.2f}x, "
        f"via proxy {median(pp) / median(hp):.2f}x (medians)"
    )
    say(
        f"   round trips via proxy: {spread(proxy_trips, trips)} "
        f"x {DELAY * 1000:.0f} ms = {median(proxy_trips) * DELAY:.2f} s of the {median(hp):.2f} s "
        f"is the link's latency; the rest is client and server work (compare 'direct')"
    )
    return [
        Figure("1. snapshot via 50 ms proxy (hiredis)", hp, TARGET_SNAPSHOT),
        Figure("1. snapshot round trips via proxy", proxy_trips, TARGET_SNAPSHOT_TRIPS, trips),
        Figure("1. snapshot direct (hiredis)", hd, None),
        Figure("1. snapshot file size", [size], None, mb),
        Figure("3. snapshot direct, pure-Python parser", pd, None),
        Figure("3. snapshot via proxy, pure-Python parser", pp, None),
        Figure("3. pure-Python / hiredis, direct", [median(pd) / median(hd)], None, times),
        Figure("3. pure-Python / hiredis, via proxy", [median(pp) / median(hp)], None, times),
    ], median(hp)


# ================================================================================ 2. naive


def naive_sample() -> tuple[list[tuple[str, int]], dict[str, list[tuple[str, int]]]]:
    """100 index sets spread evenly over each prefix, in proportion to its key count.

    Returns the sample and, per prefix, all of seed 001's (key, members) (the same
    fixed-seed sizes :func:`load_seed_001` writes).
    """
    by_prefix: dict[str, list[tuple[str, int]]] = {}
    for key, size in seed_001_sizes(random.Random(1)):
        by_prefix.setdefault(key.split(":")[2], []).append((key, size))
    total = sum(len(v) for v in by_prefix.values())
    shares = {p: NAIVE_SAMPLE * len(v) / total for p, v in by_prefix.items()}
    take = {p: int(s) for p, s in shares.items()}
    for p in sorted(shares, key=lambda p: shares[p] - take[p], reverse=True):
        if sum(take.values()) == NAIVE_SAMPLE:
            break
        take[p] += 1  # largest remainder: 33 project, 34 user, 33 channel
    sample = []
    for p, keys in by_prefix.items():
        k = take[p]
        sample += [keys[round(i * (len(keys) - 1) / (k - 1))] for i in range(k)]
    return sample, by_prefix


def bench_naive(server: RedisServer, ours: float) -> list[Figure]:
    say("\n## 2. The naive way (seed 001's backup): one SMEMBERS per key, in sequence")
    sample, by_prefix = naive_sample()
    proxy = LatencyProxy(server.port, DELAY)
    client = redis.Redis.from_url(server.uri_via(proxy.port))  # redis-py defaults, hiredis
    per_key: dict[str, list[float]] = {p: [] for p in by_prefix}
    members = 0
    try:
        client.ping()  # connect (HELLO, AUTH, CLIENT SETINFO) before the clock starts
        proxy.reset()
        began = time.perf_counter()
        for key, _ in sample:
            t0 = time.perf_counter()
            members += len(client.smembers(key))
            per_key[key.split(":")[2]].append(time.perf_counter() - t0)
        measured = time.perf_counter() - began
        round_trips = proxy.round_trips
    finally:
        client.close()
        proxy.close()
    estimate = sum(median(per_key[p]) * len(keys) for p, keys in by_prefix.items())
    estimate_mean = sum(statistics.fmean(per_key[p]) * len(keys) for p, keys in by_prefix.items())
    population = sum(len(keys) for keys in by_prefix.values())
    say(
        f"   MEASURED ON A SAMPLE OF {len(sample)} KEYS, NOT ALL {population:,}: "
        + ", ".join(f"{len(per_key[p])} {p}" for p in by_prefix)
        + " (evenly spaced within each prefix)"
    )
    for p, keys in by_prefix.items():
        sampled = [size for key, size in sample if key.split(":")[2] == p]
        say(
            f"   {p:<8} {len(per_key[p]):>3} keys: median {median(per_key[p]) * 1000:.1f} ms per key "
            f"(mean {statistics.fmean(per_key[p]) * 1000:.1f}); sample holds "
            f"{statistics.fmean(sampled):.0f} members per set, all {len(keys):,} hold "
            f"{statistics.fmean([s for _, s in keys]):.0f}"
        )
    say(
        f"   the sample: {secs(measured)} for {len(sample)} keys, {members:,} members, "
        f"{round_trips} round trips through the proxy"
    )
    say(
        f"   EXTRAPOLATED to all {population:,} keys (per-prefix median x keys in that prefix): "
        f"{secs(estimate)} ({estimate / 60:.1f} min; with means instead: {secs(estimate_mean)}); "
        f"about {population:,} round trips"
    )
    say(f"   naive / ours (snapshot via the same proxy, median): {estimate / ours:.0f}x")
    say("   (reads only: the naive figure leaves out writing the file, so it flatters naive)")
    return [
        Figure(
            f"2. naive SMEMBERS x {population:,} (extrapolated)", [estimate], None, secs, "est."
        ),
        Figure(f"2. naive: measured on {len(sample)} keys", [measured], None),
        Figure("2. naive / ours, via proxy", [estimate / ours], None, times, "est."),
    ]


# ================================================================================ 4. a million keys

_CHILD = r"""
import json, sys, tempfile, time, tracemalloc
from pathlib import Path
from playbook.adapters.base import RunContext, RunRequest, Sink
from playbook.adapters.redis.reader import RedisAdapter

def hwm():  # this process's peak RSS in bytes (VmHWM: its own, reset at exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

uri, pattern, trace = sys.stdin.readline().strip(), sys.argv[1], sys.argv[2] == "trace"
with tempfile.TemporaryDirectory() as work:
    request = RunRequest("bench", {"op": "count_keys", "pattern": pattern}, uri)
    before = hwm()
    if trace:
        tracemalloc.start()
    began = time.perf_counter()
    ctx = RunContext(600, 5, None)
    sink = Sink(Path(work) / "count.jsonl")
    metrics = RedisAdapter().run(request, ctx, sink)
    ctx.finish()
    sink.close()
    wall = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    print(json.dumps({"count": metrics["count"], "wall": wall, "peak": peak,
                      "hwm_before": before, "hwm_after": hwm()}))
"""


def count_child(server: RedisServer, trace: bool) -> dict[str, Any]:
    """count_keys in a fresh interpreter, so its peak RSS is this run's alone."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, COUNT_PATTERN, "trace" if trace else "rss"],
        input=server.uri + "\n",  # on stdin, not in argv where ps would show the password
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def maxrss() -> float:
    """This process's ru_maxrss in MB (Linux gives kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def bench_million(server: RedisServer, runs: int, work: Path) -> list[Figure]:
    say("\n## 4. count_keys over a million keys (pattern message:discord:*)")
    client = admin(server)
    extra = MILLION - 6_049
    say(f"   loading {extra:,} message keys on top of the 6,049 index sets (20–35 s)…")
    began = time.perf_counter()
    load_seed_001(client, message_keys=extra)
    dbsize = int(client.dbsize())
    say(f"   loaded in {secs(time.perf_counter() - began)}; DBSIZE {dbsize:,}")
    query = {"op": "count_keys", "pattern": COUNT_PATTERN}

    # ours: direct, direct with no result file, via the proxy (interleaved); each run's
    # server-side SCAN time from INFO commandstats after CONFIG RESETSTAT
    proxy = LatencyProxy(server.port, DELAY)
    via = server.uri_via(proxy.port)
    direct: list[Run] = []
    nofile: list[Run] = []
    proxied: list[Run] = []
    server_time: dict[str, list[float]] = {}

    def timed_on_server(label: str, fn: Callable[[], Any]) -> Any:
        client.config_resetstat()
        result = fn()
        calls, used = scan_stats(client)
        server_time.setdefault(label, []).append(used)
        return result, calls, used

    rss_before = maxrss()
    peak_self = 0.0
    try:
        run_op(server.uri, query, work / "warmup.jsonl")
        for n in range(runs):
            d, calls, used = timed_on_server(
                "ours", lambda n=n: run_op(server.uri, query, work / f"count-{n}.jsonl")
            )
            direct.append(d)
            f, _, _ = timed_on_server("ours, no file", lambda: run_op(server.uri, query, None))
            nofile.append(f)
            p, _, used_p = timed_on_server(
                "ours via proxy", lambda n=n: run_op(via, query, work / f"px-{n}.jsonl", proxy)
            )
            proxied.append(p)
            say(
                f"   run {n + 1}: direct {secs(d.wall)} ({d.metrics['count']:,} keys, "
                f"{d.size / 1e6:.1f} MB file; server in SCAN {secs(used)}, {calls} calls, "
                f"{used / calls * 1000:.0f} ms each); "
                f"no file {secs(f.wall)}; via proxy {secs(p.wall)}, {p.round_trips} round trips "
                f"(server in SCAN {secs(used_p)})"
            )
        # the same once more under tracemalloc, in this process
        tracemalloc.start()
        run_op(server.uri, query, work / "count-traced.jsonl")
        peak_self = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    finally:
        proxy.close()
    rss_after = maxrss()
    counted = direct[0].metrics["count"]

    # the raw floor: a plain redis-py SCAN loop with the same COUNT, and the server's time
    plain = redis.Redis.from_url(server.uri)
    plain.ping()

    def raw_loop() -> tuple[float, int]:
        began = time.perf_counter()
        cursor, keys = 0, 0
        while True:
            cursor, batch = plain.scan(cursor, match=COUNT_PATTERN, count=SCAN_COUNT)
            keys += len(batch)
            if int(cursor) == 0:
                return time.perf_counter() - began, keys

    raw: list[float] = []
    for _ in range(runs):
        (wall, keys), calls, _ = timed_on_server("raw loop", raw_loop)
        raw.append(wall)
    plain.close()
    say(
        f"   plain redis-py SCAN loop, COUNT {SCAN_COUNT:,}: {spread(raw, secs)}; "
        f"{keys:,} keys in {calls} calls"
    )
    for label, used in server_time.items():
        say(f"   server time in SCAN, {label:<15} {spread(used, secs)}")
    floor_samples = server_time["ours"] + server_time["ours, no file"] + server_time["raw loop"]
    floor = median(floor_samples)
    say(
        f"   -> the floor (server's own SCAN time, COUNT {SCAN_COUNT:,}, direct runs): "
        f"{secs(floor)}; no client can beat it. Each SCAN call holds the (single-threaded) "
        f"server for about {floor / calls * 1000:.0f} ms"
    )

    # redis-cli --scan, directly
    cli = redis_cli_binary()
    cli_walls: list[float] = []
    cli_lines = cli_calls = 0
    if cli is None:
        say("   redis-cli: not found on PATH nor beside redis-server; skipped")
    else:
        argv = [cli, "-h", "127.0.0.1", "-p", str(server.port)]
        argv += ["-a", server.password or "", "--no-auth-warning"]
        argv += ["--scan", "--pattern", COUNT_PATTERN]

        def cli_run() -> tuple[float, int]:
            began = time.perf_counter()
            with subprocess.Popen(argv, stdout=subprocess.PIPE) as proc:
                assert proc.stdout is not None
                lines = sum(1 for _ in proc.stdout)
            return time.perf_counter() - began, lines

        for _ in range(runs):
            (wall, cli_lines), cli_calls, _ = timed_on_server("redis-cli", cli_run)
            cli_walls.append(wall)
        say(
            f"   redis-cli --scan --pattern '{COUNT_PATTERN}' -p {server.port} -a *** "
            f"--no-auth-warning, lines counted: {spread(cli_walls, secs)}; {cli_lines:,} lines, "
            f"{cli_calls:,} SCAN calls (server's count), server in SCAN "
            f"{secs(median(server_time['redis-cli']))}"
        )
    cli_calls_est = cli_calls or dbsize // REDIS_CLI_COUNT
    cli_proxy_est = cli_calls_est * DELAY + (median(cli_walls) if cli_walls else 0.0)
    say(
        f"   redis-cli via the proxy: ESTIMATE, not run: {cli_calls_est:,} SCAN calls (COUNT "
        f"{REDIS_CLI_COUNT}) x {DELAY * 1000:.0f} ms + its direct time = "
        f"{secs(cli_proxy_est)} ({cli_proxy_est / 3600:.1f} h)"
    )

    # memory: tracemalloc peak and peak RSS (VmHWM) of a run in a fresh interpreter. Its
    # ru_maxrss would be no use: on Linux a child started by vfork + exec inherits the
    # parent's high-water mark, so it reports this process's peak, not its own.
    traced = count_child(server, trace=True)
    clean = count_child(server, trace=False)
    peak = traced["peak"] / 1e6
    hwm_before, hwm_after = clean["hwm_before"] / 1e6, clean["hwm_after"] / 1e6
    say(
        f"   memory, fresh interpreter, direct: tracemalloc peak {mb(peak)} "
        f"(run took {secs(traced['wall'])} with tracing on); peak RSS (VmHWM, no tracing) "
        f"{mb(hwm_before)} after imports -> {mb(hwm_after)} after the run "
        f"(+{mb(hwm_after - hwm_before)}; run {secs(clean['wall'])})"
    )
    say(
        f"   memory, this process: tracemalloc peak {mb(peak_self)}; ru_maxrss {mb(rss_before)} "
        f"before part 4's runs -> {mb(rss_after)} after (its high-water mark since the bench "
        f"started)"
    )

    dw = [r.wall for r in direct]
    nw = [r.wall for r in nofile]
    pw = [r.wall for r in proxied]
    ptrips = [float(r.round_trips or 0) for r in proxied]
    say(
        f"   ours direct / floor: {median(dw) / floor:.2f}x; with no result file "
        f"{median(nw) / floor:.2f}x; counted {counted:,} keys"
    )
    figures = [
        Figure("4. count_keys 1M direct", dw, TARGET_COUNT_DIRECT),
        Figure("4. count_keys 1M direct, no result file", nw, None),
        Figure("4. count_keys 1M via 50 ms proxy", pw, TARGET_COUNT_PROXY),
        Figure("4. count_keys round trips via proxy", ptrips, None, trips),
        Figure("4. count_keys peak memory (tracemalloc)", [peak], TARGET_COUNT_MEMORY, mb),
        Figure("4. count_keys peak RSS, fresh process", [hwm_after], None, mb),
        Figure("4. bench process ru_maxrss (all parts)", [rss_after], None, mb),
        Figure("4. plain redis-py SCAN loop (raw)", raw, None),
        Figure("4. server time in SCAN (floor)", floor_samples, None),
        Figure("4. ours direct / floor", [median(dw) / floor], None, times),
    ]
    if cli_walls:
        figures.append(Figure("4. redis-cli --scan direct", cli_walls, None))
    figures.append(Figure("4. redis-cli --scan via proxy", [cli_proxy_est], None, secs, "est."))
    return figures


# ================================================================================ report


def main() -> None:
    parser_ = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser_.add_argument("--quick", action="store_true", help="skip the million keys (part 4)")
    parser_.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    args = parser_.parse_args()

    say("playbook Redis diagnostics benchmark" + (" (--quick: no part 4)" if args.quick else ""))
    began = time.perf_counter()
    figures: list[Figure] = []
    with redis_server() as server, tempfile.TemporaryDirectory(prefix="diag-bench-") as tmp:
        say(machine(server))
        work = Path(tmp)
        say("\nloading seed 001's 6,049 index sets (703,455 members)…")
        t0 = time.perf_counter()
        counts = load_seed_001(admin(server))
        say(f"loaded in {secs(time.perf_counter() - t0)}: {counts}")
        snapshot_figures, ours = bench_snapshot(server, args.runs, work)
        figures += snapshot_figures[:4]
        figures += bench_naive(server, ours)
        figures += snapshot_figures[4:]
        if not args.quick:
            figures += bench_million(server, args.runs, work)
    load1, load5, load15 = os.getloadavg()
    say(summary(figures))
    say(
        f"(the bench took {time.perf_counter() - began:.0f} s; load average at the end "
        f"{load1:.2f} / {load5:.2f} / {load15:.2f})"
    )


if __name__ == "__main__":
    main()
