"""Ingest benchmark: `cadlink serve` against a bare ASGI app on the same uvicorn, same run.

Both servers run side by side and the measurements alternate (bare, cadlink, bare, …), so
both see the same machine, background load included. Per server: wrk at full speed (batches
of 1 and 10 events) for peak throughput, then hey at half of that request rate for latency.
For `cadlink serve` also: the loader catching up after each load, and a final count of stored
rows (each phase posts to its own site, so each is checked on its own).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import loadgen, payloads, procstats, servers
from bench.profile import Profiler

BATCHES = (1, 10)


@dataclass(frozen=True, slots=True)
class Options:
    seconds: float = 10.0  # per measurement
    rounds: int = 3  # peak measurements per server and batch size (alternating); the median counts
    connections: int = 32  # wrk, one thread: it shares the two cores with the server
    hey_connections: int = 16
    hey_visitors: int = 8  # hey processes, each repeating its own body
    catch_up_timeout: float = 90.0
    profile_dir: Path | None = None
    keep: bool = False
    settings: tuple[tuple[str, str], ...] = ()  # CADLINK_* overrides, for experiments
    varied: bool = False  # wrk: agents and addresses per visitor (loadgen.VARIED_*)


@dataclass
class Phase:
    """One load run against one server, with what the server spent on it."""

    load: loadgen.LoadResult
    cpu_seconds: float  # server CPU (all threads) during the load
    events_accepted: int  # server-side count for cadlink (includes requests in flight at the end)
    others_cores: float  # CPU used meanwhile by processes other than server and load generator
    # `cadlink serve` only: the loader finishing the load.
    backlog_events: int = 0  # accepted but not yet stored when the load stopped
    catch_up_s: float = 0.0
    cpu_seconds_total: float = 0.0  # load plus catch-up
    end_to_end_s: float = 0.0  # load start until every accepted event is stored
    split: procstats.CpuSplit | None = None  # where the server's CPU went during the load

    @property
    def cpu_per_1k(self) -> float:
        return self.cpu_seconds / max(1, self.events_accepted) * 1000

    @property
    def cpu_per_1k_total(self) -> float:
        return self.cpu_seconds_total / max(1, self.events_accepted) * 1000

    @property
    def loader_events_per_s(self) -> float:
        return self.backlog_events / self.catch_up_s if self.backlog_events else math.nan

    @property
    def sustained_events_per_s(self) -> float:
        """Accepted events over the time until all of them were stored."""
        return self.events_accepted / self.end_to_end_s if self.end_to_end_s else math.nan


@dataclass
class ServerResult:
    name: str
    peak: dict[int, Phase] = field(default_factory=dict)  # batch → wrk run
    half: dict[int, Phase] = field(default_factory=dict)  # batch → hey run at half the peak
    peak_rounds: dict[int, list[Phase]] = field(default_factory=dict)  # batch → every wrk run
    peak_rss_mb: float = 0.0  # the server and its child processes
    peak_rss_server_mb: float = 0.0  # the server process alone
    start_rss_mb: float = 0.0  # the server at rest before the first load
    rest_rss_mb: float = 0.0  # the server at rest, REST_S after the loader caught up at the end
    stored: dict[str, int] = field(default_factory=dict)  # site → rows in the store
    counters: servers.IngestCounters | None = None  # /metrics once the loader caught up
    expected: dict[str, int] = field(default_factory=dict)  # site → accepted events


@dataclass
class IngestResult:
    bare: ServerResult
    cadlink: ServerResult
    options: Options
    started: float
    load_average_before: float
    elapsed_s: float = 0.0


REST_S = 15.0  # rest before memory at rest is read: the loader settles after 5 s idle


def _run_id() -> str:
    return f"b{os.getpid():x}{time.time_ns() % 10**10:x}-"


class _Run:
    def __init__(self, opts: Options, work: Path) -> None:
        self.opts = opts
        self.work = work
        self.profiler = Profiler(opts.profile_dir) if opts.profile_dir else None
        self.env = servers.cadlink_env(work / "data") | dict(opts.settings)
        self.bare = servers.bare(work)
        self.cadlink = servers.cadlink(work, self.env)

    def run(self) -> tuple[ServerResult, ServerResult]:
        names = ["warmup"] + [f"{k}-{b}" for b in BATCHES for k in ("peak", "half")]
        sites = {n: servers.create_site(self.env, f"{n}.bench.example") for n in names}
        bare, cad = ServerResult(self.bare.name), ServerResult(self.cadlink.name)
        self.bare.start()
        try:
            self.cadlink.start()
            try:
                cad.start_rss_mb = procstats.tree_sample(self.cadlink.pid).rss_mb
                self._measure_all(bare, cad, sites)
                for result, server in ((bare, self.bare), (cad, self.cadlink)):
                    result.peak_rss_mb = procstats.tree_sample(server.pid).peak_rss_mb
                    result.peak_rss_server_mb = procstats.sample(server.pid).peak_rss_mb
                # Memory a burst leaves behind: what an idle server still holds afterwards.
                self._catch_up()
                cad.counters = servers.ingest_counters(self.cadlink)
                time.sleep(REST_S)
                cad.rest_rss_mb = procstats.tree_sample(self.cadlink.pid).rss_mb
            finally:
                self.cadlink.stop(timeout=self.opts.catch_up_timeout)  # drains the buffer
        finally:
            self.bare.stop()
        db = self.work / "data" / "events.duckdb"
        cad.stored = servers.count_stored(db, list(sites.values()))
        return bare, cad

    def _measure_all(self, bare: ServerResult, cad: ServerResult, sites: dict[str, str]) -> None:
        before = servers.ingest_counters(self.cadlink).accepted
        for server, site in ((self.bare, "warmup"), (self.cadlink, sites["warmup"])):
            loadgen.run_wrk(server.url, site, 1, _run_id(), seconds=2, connections=8, threads=1)
        self._catch_up()
        cad.expected[sites["warmup"]] = servers.ingest_counters(self.cadlink).accepted - before
        for batch in BATCHES:
            # The machine is shared and noisy: the peaks are measured in rounds, alternating
            # the servers, and each server's median round is the one reported.
            for result in (bare, cad):
                result.peak_rounds[batch] = []
            for n in range(self.opts.rounds):
                for server, result in ((self.bare, bare), (self.cadlink, cad)):
                    phase = self._peak(server, sites[f"peak-{batch}"], batch, n)
                    result.peak_rounds[batch].append(phase)
            for result in (bare, cad):
                ranked = sorted(result.peak_rounds[batch], key=lambda p: p.load.events_per_s)
                result.peak[batch] = ranked[(len(ranked) - 1) // 2]
            for server, result in ((self.bare, bare), (self.cadlink, cad)):
                rate = result.peak[batch].load.requests_per_s / 2
                result.half[batch] = self._half(server, sites[f"half-{batch}"], batch, rate)
        for batch in BATCHES:
            cad.expected[sites[f"peak-{batch}"]] = sum(
                p.events_accepted for p in cad.peak_rounds[batch]
            )
            cad.expected[sites[f"half-{batch}"]] = cad.half[batch].events_accepted

    def _peak(self, server: servers.Server, site: str, batch: int, round_no: int) -> Phase:
        name = f"{server.name} wrk batch={batch}"
        rounds = f" (round {round_no + 1} of {self.opts.rounds})" if self.opts.rounds > 1 else ""
        print(f"  {name}: {self.opts.seconds:g} s at full speed{rounds} …", flush=True)
        return self._measure(server, batch, name, lambda: loadgen.run_wrk(
            server.url, site, batch, _run_id(), seconds=self.opts.seconds,
            connections=self.opts.connections, threads=1, varied=self.opts.varied,
        ))  # fmt: skip

    def _half(self, server: servers.Server, site: str, batch: int, rate: float) -> Phase:
        name = f"{server.name} hey batch={batch}"
        print(f"  {name}: {self.opts.seconds:g} s at {rate:,.0f} requests/s …", flush=True)
        bodies = [payloads.fixed_body(site, batch, v) for v in range(self.opts.hey_visitors)]
        return self._measure(server, batch, name, lambda: loadgen.run_hey(
            server.url, bodies, batch, seconds=self.opts.seconds,
            connections=self.opts.hey_connections, rate=rate,
        ))  # fmt: skip

    def _measure(
        self,
        server: servers.Server,
        batch: int,
        name: str,
        load: Callable[[], loadgen.LoadResult],
    ) -> Phase:
        is_cadlink = server is self.cadlink
        self._catch_up()  # start with an idle loader
        accepted0 = servers.ingest_counters(self.cadlink).accepted if is_cadlink else 0
        if self.profiler and is_cadlink:
            self.profiler.start(server.pid, name, self.opts.seconds)
        # The server's CPU includes its child processes (cadlink's enrichment process).
        t0, p0 = time.monotonic(), procstats.tree_sample(server.pid)
        busy0, kids0 = procstats.machine_busy_seconds(), procstats.children_cpu_seconds()
        split0 = procstats.cpu_split(server.pid)
        result = load()
        t1, p1 = time.monotonic(), procstats.tree_sample(server.pid)
        split1 = procstats.cpu_split(server.pid)
        busy1, kids1 = procstats.machine_busy_seconds(), procstats.children_cpu_seconds()
        if self.profiler and is_cadlink:
            self.profiler.stop()
        server_cpu = p1.cpu_seconds - p0.cpu_seconds
        others = (busy1 - busy0) - server_cpu - (kids1 - kids0)
        phase = Phase(result, server_cpu, result.requests * batch, max(0.0, others) / (t1 - t0))
        phase.split = split1 - split0
        if is_cadlink:
            end = servers.ingest_counters(server)
            phase.events_accepted = end.accepted - accepted0
            phase.backlog_events = end.accepted - end.stored - end.dropped
            t2 = self._catch_up()
            phase.catch_up_s = t2 - t1
            phase.end_to_end_s = t2 - t0
            phase.cpu_seconds_total = procstats.tree_sample(server.pid).cpu_seconds - p0.cpu_seconds
        return phase

    def _catch_up(self) -> float:
        """Wait until the loader stored everything accepted; returns when (monotonic)."""
        deadline = time.monotonic() + self.opts.catch_up_timeout
        while True:
            c = servers.ingest_counters(self.cadlink)
            now = time.monotonic()
            if c.backlog_bytes == 0 and c.stored + c.dropped >= c.accepted:
                return now
            if now > deadline:
                limit = self.opts.catch_up_timeout
                raise RuntimeError(f"the loader did not catch up in {limit} s: {c}")
            time.sleep(0.05)


def run(opts: Options) -> IngestResult:
    loadgen.ensure_tools()
    load_before = procstats.load_average()
    if load_before > 0.5:
        print(f"ingest: warning: load average {load_before:.1f}; other work skews the numbers")
    work = Path(tempfile.mkdtemp(prefix="cadlink-bench-"))
    started, t0 = time.time(), time.monotonic()
    print("ingest: cadlink serve (embedded, durable spool, no rate limit) vs bare ASGI", flush=True)
    try:
        bare, cad = _Run(opts, work).run()
    except Exception:
        print(f"ingest: failed; logs and data kept in {work}")
        raise
    if opts.keep:
        print(f"ingest: logs and data kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return IngestResult(bare, cad, opts, started, load_before, time.monotonic() - t0)
