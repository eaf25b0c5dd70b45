"""The ingest benchmark's section of docs/benchmarks.md."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

from bench import loadgen, procstats, report
from bench.ingest import BATCHES, REST_S, IngestResult, Phase

NAME = "ingest"

INTRO = """## Ingest

### What it measures
`POST /api/v1/collect` on a real `cadlink serve` over loopback: embedded mode with default
settings (spool-file buffer fsynced once a second, so an answered event survives `kill -9`;
DuckDB event store, owned by the store process that `cadlink serve` starts, whose loader
enriches in DuckDB) except that the per-IP rate limit is off. In the same run the same load
goes to a bare ASGI app that reads the body and answers 204, served by uvicorn with the
options `cadlink serve` uses (`bench/bare_app.py`; httptools and uvloop): the ratio between
the two is what CADLINK's own work costs.

- Bodies are what the tracker sends, `{"siteId": …, "events": […]}`, with ~600-byte events
  (`bench/payloads.py`); every event id is unique (wrk's Lua numbers them), a visitor sends 4
  requests, and the user agent is a desktop Chrome (a bot would be dropped by the loader).
- **Peak**: `wrk` (1 thread, 32 connections) as fast as it can, 10 s each with batches of 1
  and 10 events. The load generator shares the machine's cores with the server; its latencies
  are at saturation, so read them as queueing, not service time. Both servers run side by side
  and the measurements alternate (bare, cadlink, bare, …) so both see the same background load.
- **Latency**: `hey` at half of the peak request rate measured just before, 10 s; p50/p99 of
  the answered requests. hey repeats one body, so 8 hey processes (2 workers each, `-q` per
  worker) each send their own visitor's body, and the bodies leave out `eventId` so that the
  server assigns one and every request is stored.
- **Server CPU per 1,000 events**: utime + stime of the server process (all threads) and its
  child processes (cadlink's store process, which loads and owns the event store) from
  `/proc/PID/stat` over the load, and over the load plus the loader catching up.
  **Peak RSS**: `VmHWM` from `/proc/PID/status` at the end of the run, summed over the server
  and any child processes (each one's high-water mark: an upper bound of their joint peak).
- **Loader**: after each load, how many accepted events were not yet stored, and how fast the
  loader stored them (events/s while catching up; meaningful only when thousands of events
  are waiting: with a small backlog it mostly measures the loader's 0.2 s poll interval).
  *Sustained* = accepted events divided by the time from load start until the last of them
  was stored.
- **Nothing lost**: each phase posts to its own site; after the run the server is stopped
  (SIGTERM) and the DuckDB file is opened read-only: rows per site must equal the events the
  server counted as accepted.

### How to run
`make bench` (all benchmarks) or `.venv/bin/python -m bench ingest` (about 4 to 6 minutes;
installs Debian's `wrk` and `hey` with apt-get if missing). Options: `--seconds` per
measurement, `--rounds` of each peak, `--connections` for wrk, `--no-write` to leave this file
alone, `--keep` to keep the server logs and data, `--set CADLINK_X=VALUE` to try a non-default
setting, `--profile DIR` to record py-spy profiles (`.venv/bin/pip install py-spy`) of `cadlink
serve` during each measurement and print its hot spots, `--traffic varied` to give each of wrk's
visitors its own user agent (from 2,000) and address (from 50,000 networks, sent as
`X-Forwarded-For`) instead of one agent from the loopback address. Runs with `--set`,
`--profile` or `--traffic varied` are experiments and are not written here.
Run it on a quiet machine: the results say how much CPU other processes took meanwhile.
"""


def _f(value: float, digits: int = 0) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.0%}"


def _ok(good: bool) -> str:
    return "✅" if good else "❌"


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def render(r: IngestResult) -> str:
    cad = r.cadlink
    m = procstats.machine()
    o = r.options
    lines = [
        f"### Results — {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(r.started))}",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['memory']}, Linux {m['kernel']}; "
        f"load generator on the same cores. Run took {r.elapsed_s:.0f} s, "
        f"{o.seconds:g} s per measurement. Load average before the run: "
        f"{r.load_average_before:.1f}; *other load* below is the CPU (in cores) that processes "
        "other than the server and the load generator used during each measurement.",
        "",
        *(
            [
                f"Traffic: varied (wrk's visitors each with one of {loadgen.VARIED_AGENTS:,} "
                f"user agents and an address in one of {loadgen.VARIED_NETWORKS:,} networks).",
                "",
            ]
            if o.varied
            else []
        ),
        "Versions: "
        + report.versions(
            ("cadlink", "uvicorn", "uvloop", "httptools", "msgspec", "duckdb", "pyarrow")
        )
        + f"; wrk {report.tool_version(['wrk', '--version']).split()[1]}; "
        + f"hey {report.tool_version(['dpkg-query', '-W', '-f', '${Version}', 'hey'])}; "
        + f"commit {report.git_revision()}.",
        "",
    ]
    lines += _targets(r)
    lines += _ratios(r)
    lines += _absolute(r)
    lines += _loader(r)
    if cad.counters is not None:
        c = cad.counters
        lines += [
            f"Loader batches: {c.batches:,}; loaded again within the configured memory limit "
            f"(did not fit the ingest memory): {c.widened:,}; visitors whose sessions a batch "
            f"rebuilt from their stored events: {c.sessions_rebuilt:,}; row group merges "
            f"(when the loader kept up): {c.merges:,}.",
            "",
        ]
    lost = {s: n for s, n in cad.expected.items() if cad.stored.get(s) != n}
    total = sum(cad.expected.values())
    lines.append(
        f"Stored after the run: {sum(cad.stored.values()):,} rows for {total:,} accepted events "
        + (
            "— every accepted event is stored, once."
            if not lost
            else f"— MISMATCH per site: {lost}."
        )
    )
    return "\n".join(lines)


def _targets(r: IngestResult) -> list[str]:
    cad, bare = r.cadlink, r.bare
    sustained = cad.peak[10].sustained_events_per_s
    single = _ratio(cad.peak[1].load.events_per_s, bare.peak[1].load.events_per_s)
    p99 = max(cad.half[b].load.p99_ms for b in BATCHES)
    rows = [
        "#### Targets",
        "",
        "| target | goal | measured | |",
        "|---|---|---|---|",
        f"| sustained events/s, batches of 10 (accepted → stored) | ≥ 30,000 | {_f(sustained)} "
        f"(accepted at {_f(cad.peak[10].load.events_per_s)}/s) | {_ok(sustained >= 30_000)} |",
        f"| single-event throughput / bare ASGI | ≥ 50% | {_pct(single)}{_per_round(r, 1)} "
        f"| {_ok(single >= 0.5)} |",
        f"| p99 at half of peak (worse of batch 1, 10) | ≤ 20 ms | {_f(p99, 1)} ms "
        f"| {_ok(p99 <= 20)} |",
        f"| peak RSS | ≤ 300 MB | {_f(cad.peak_rss_mb)} MB | {_ok(cad.peak_rss_mb <= 300)} |",
        "",
    ]
    return rows


def _per_round(r: IngestResult, batch: int) -> str:
    """Each round's ratio (the servers alternate, so round n of one is paired with round n of
    the other), to show how much the median moves."""
    pairs = zip(
        r.cadlink.peak_rounds.get(batch, []), r.bare.peak_rounds.get(batch, []), strict=True
    )
    ratios = [_pct(_ratio(c.load.events_per_s, b.load.events_per_s)) for c, b in pairs]
    return f" (each round: {', '.join(ratios)})" if len(ratios) > 1 else ""


def _ratios(r: IngestResult) -> list[str]:
    cad, bare = r.cadlink, r.bare
    rows = [
        "#### `cadlink serve` as a ratio of the bare ASGI reference",
        "",
        "| | batch 1 | batch 10 |",
        "|---|---|---|",
    ]

    def row(label: str, fn: object, fmt: str = "pct") -> str:
        assert callable(fn)
        cells = []
        for b in BATCHES:
            value = _ratio(fn(cad, b), fn(bare, b))
            cells.append(_pct(value) if fmt == "pct" else f"{_f(value, 1)}x")
        return f"| {label} | " + " | ".join(cells) + " |"

    rows.append(row("peak events/s (higher is better)", lambda s, b: s.peak[b].load.events_per_s))
    rows.append(row("p50 latency at half peak", lambda s, b: s.half[b].load.p50_ms, "x"))
    rows.append(row("p99 latency at half peak", lambda s, b: s.half[b].load.p99_ms, "x"))
    rows.append(row("server CPU per 1,000 events at peak", lambda s, b: s.peak[b].cpu_per_1k, "x"))
    rows.append("")
    return rows


def _phases(r: IngestResult) -> Iterator[tuple[str, str, int, Phase]]:
    """Every reported load, in table order: server name, load label, batch size, phase."""
    for s in (r.bare, r.cadlink):
        for kind, phases in (("wrk peak", s.peak), ("hey ½ peak", s.half)):
            for b in BATCHES:
                yield s.name, f"{kind}, batch {b}", b, phases[b]


def _absolute(r: IngestResult) -> list[str]:
    rows = [
        "#### Absolute numbers",
        "",
        "| server | load | requests/s | events/s | p50 ms | p99 ms | failed | "
        "CPU-s / 1k events | incl. loading | body bytes | other load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label, _, p in _phases(r):
        load = p.load
        total = _f(p.cpu_per_1k_total, 3) if p.cpu_seconds_total else "n/a"
        rows.append(
            f"| {name} | {label} | {_f(load.requests_per_s)} | "
            f"{_f(load.events_per_s)} | {_f(load.p50_ms, 1)} | {_f(load.p99_ms, 1)} | "
            f"{load.failed} | {_f(p.cpu_per_1k, 3)} | {total} | {_f(load.body_bytes)} | "
            f"{p.others_cores:.2f} |"
        )
    rows += [
        "",
        "Where the server's CPU went during each load, in µs per event: the main thread (the "
        "event loop: the request path), its other threads (cadlink: the spool's fsync, the "
        "store process's keeper) and child processes (cadlink: the store process, whose "
        "loader runs DuckDB's work). *Preempted*: how often per "
        "request the scheduler took the core from the main thread while it could still run "
        "(nonvoluntary context switches): the request path waiting for a core, not working.",
        "",
        "| server | load | main thread | other threads | child processes | main thread "
        "preempted per request |",
        "|---|---|---|---|---|---|",
    ]
    for name, label, b, p in _phases(r):
        sp = p.split
        if sp is None:
            continue
        per = 1e6 / max(1, p.events_accepted)
        preempted = sp.main_preempted / max(1, p.events_accepted // b)
        rows.append(
            f"| {name} | {label} | {_f(sp.main * per, 1)} | "
            f"{_f(sp.threads * per, 1)} | {_f(sp.children * per, 1)} | {_f(preempted, 3)} |"
        )
    rows += [
        "",
        f"Peak RSS (VmHWM): `cadlink serve` {_f(r.cadlink.peak_rss_mb)} MB "
        f"(the server process {_f(r.cadlink.peak_rss_server_mb)} MB, child processes "
        f"{_f(r.cadlink.peak_rss_mb - r.cadlink.peak_rss_server_mb)} MB), "
        f"bare ASGI {_f(r.bare.peak_rss_mb)} MB. At rest, `cadlink serve` holds "
        f"{_f(r.cadlink.start_rss_mb)} MB before the first load and "
        f"{_f(r.cadlink.rest_rss_mb)} MB {REST_S:g} s after the loader caught up with the "
        "last one.",
        "",
    ]
    return rows


def _loader(r: IngestResult) -> list[str]:
    rows = [
        "#### Loader (`cadlink serve`)",
        "",
        "| load | events accepted | not yet stored when load stopped | catch-up s | "
        "loader events/s while catching up | sustained events/s |",
        "|---|---|---|---|---|---|",
    ]
    cad = r.cadlink
    for kind, phases in (("wrk peak", cad.peak), ("hey ½ peak", cad.half)):
        for b in BATCHES:
            p = phases[b]
            rows.append(
                f"| {kind}, batch {b} | {p.events_accepted:,} | {p.backlog_events:,} | "
                f"{p.catch_up_s:.1f} | {_f(p.loader_events_per_s)} | "
                f"{_f(p.sustained_events_per_s)} |"
            )
    rows.append("")
    return rows


def write(r: IngestResult) -> None:
    report.write_section(NAME, INTRO, render(r))
