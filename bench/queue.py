"""Queue loading (server mode): tracker events from the Redis queue into PostgreSQL by 1 and 2
`cadlink worker` processes, against the same records loaded from a spool by one in-process
loader into the same kind of database (the reference, measured in the same run).

Each measurement gets a fresh database; the records (`--events`, in envelopes of 10 realistic
~600-byte events with unique ids, like the ingest benchmark's batches) are written to the
buffer first, untimed. The queue's clock starts when the first entry is delivered to a worker
(so the workers' start-up, about 2 s of loading parsers and the geo database, is not counted)
and stops when the stream is empty and every event is in the table: each run checks that
every event was stored exactly once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import psycopg
import redis
from psycopg import sql

from bench import payloads
from bench.report import git_revision, versions, write_section
from cadlink.events import Envelope, IncomingEvent, encode_envelope
from cadlink.ingest.buffer import SpoolReader, SpoolWriter
from cadlink.ingest.buffer.redis_stream import GROUP, connect
from cadlink.ingest.enrich.geo import GeoLocator
from cadlink.pipeline.enrichment import Enricher
from cadlink.pipeline.loader import Loader
from cadlink.services import build_ua_parser
from cadlink.store.events.postgres_store import PostgresEventStore

ADMIN_URL = os.environ.get(
    "CADLINK_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("CADLINK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CADLINK = str(Path(sys.executable).parent / "cadlink")
SITE = "bench-queue"
PER_ENVELOPE = 10

INTRO = """## Queue loading (PostgreSQL)

Server mode's loading path: `cadlink worker` processes taking buffer records from the Redis queue
(`CADLINK_QUEUE_URL`) and storing them in the PostgreSQL event store, against the same records
loaded from a spool by one loader in one process, into the same kind of database, in the same
run (`bench/queue.py`; `.venv/bin/python -m bench queue [--events N]`). PostgreSQL and Redis run
on the same two cores as the workers."""


def _records(events: int) -> list[bytes]:
    """Buffer records of `PER_ENVELOPE` events each, as the collect endpoint writes them."""
    rng = random.Random(11)
    templates = payloads.templates()
    now = int(time.time() * 1000)
    decoder = msgspec.json.Decoder(IncomingEvent)
    out: list[bytes] = []
    n = 0
    while n < events:
        batch: list[IncomingEvent] = []
        visitor = rng.getrandbits(63)
        for _ in range(min(PER_ENVELOPE, events - n)):
            pieces = rng.choice(templates)
            ids = (uuid.uuid4().hex, f"s{visitor:x}", f"v{visitor:x}")
            text = pieces[0] + ids[0] + pieces[1] + ids[1] + pieces[2] + ids[2] + pieces[3]
            batch.append(decoder.decode(text))
            n += 1
        out.append(
            encode_envelope(Envelope(now, SITE, visitor, "203.0.113.0", payloads.USER_AGENT, batch))
        )
    return out


@contextlib.contextmanager
def _database() -> Iterator[str]:
    name = f"cadlink_bench_queue_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlsplit(ADMIN_URL)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as con:
            con.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _stored(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as con:
        row = con.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM analytics_events"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def spool_reference(records: list[bytes]) -> tuple[float, int]:
    """Seconds for one in-process loader to store `records` from a spool; events stored."""
    with _database() as url, tempfile.TemporaryDirectory() as tmp:
        writer = SpoolWriter(Path(tmp) / "spool", fsync="never")
        for record in records:
            writer.put(record)
        writer.close()
        store = PostgresEventStore(url)
        enricher = Enricher(build_ua_parser(), GeoLocator(), late_event_hours=72)
        loader = Loader(SpoolReader(Path(tmp) / "spool"), store, enricher)
        started = time.perf_counter()
        loader.drain()
        took = time.perf_counter() - started
        store.close()
        count, distinct = _stored(url)
        if count != distinct:
            raise SystemExit(f"the spool loader stored {count - distinct} events twice")
        return took, count


def queue_run(records: list[bytes], workers: int) -> tuple[float, int]:
    """Seconds for `workers` worker processes to store `records` from the queue (from the
    first delivery until the stream is empty and every event stored); events stored."""
    stream = f"cadlink-bench:{uuid.uuid4().hex[:8]}"
    client = connect(REDIS_URL)
    with _database() as url, tempfile.TemporaryDirectory() as tmp:
        PostgresEventStore(url).close()  # its schema, before the workers race to make it
        pipe = client.pipeline(transaction=False)
        for i, record in enumerate(records, 1):
            pipe.xadd(stream, {b"r": record})
            if i % 5_000 == 0:
                pipe.execute()
        pipe.execute()
        client.xgroup_create(stream, GROUP, id="0")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CADLINK_")}
        env |= {
            "CADLINK_DATA_DIR": tmp,
            "CADLINK_EVENTS_URL": url,
            "CADLINK_QUEUE_URL": REDIS_URL,
            "CADLINK_QUEUE_STREAM": stream,
            "CADLINK_LOG_LEVEL": "warning",
        }
        procs = [
            subprocess.Popen([CADLINK, "worker"], env=env, stdout=subprocess.DEVNULL)
            for _ in range(workers)
        ]
        try:
            deadline = time.monotonic() + 120
            while _delivered(client, stream) == 0:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise SystemExit("the workers did not start loading")
                time.sleep(0.005)
            started = time.perf_counter()
            total = len(records) * PER_ENVELOPE
            while client.xlen(stream) or _stored(url)[0] < total:
                if time.monotonic() > deadline + 600:
                    raise SystemExit("the workers did not finish")
                time.sleep(0.02)
            took = time.perf_counter() - started
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=60)
            client.delete(stream)
            client.close()
        count, distinct = _stored(url)
        if count != distinct:
            raise SystemExit(f"the workers stored {count - distinct} events twice")
        return took, count


def _delivered(client: redis.Redis, stream: str) -> int:
    groups = client.xinfo_groups(stream)
    return int(groups[0]["entries-read"] or 0) if groups else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench queue", description=__doc__)
    parser.add_argument("--events", type=int, default=200_000, help="events per measurement")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks.md")
    args = parser.parse_args(argv)
    missing = _unreachable()
    if missing:
        print(
            f"queue: skipped: {missing} (set CADLINK_BENCH_POSTGRES_URL, CADLINK_BENCH_REDIS_URL)"
        )
        return
    records = _records(args.events)
    size = sum(map(len, records))
    print(f"queue: {args.events:,} events in {len(records):,} records ({size / 1e6:.0f} MB)")
    rows: list[tuple[str, float, int]] = []
    took, count = spool_reference(records)
    rows.append(("spool, one loader in-process (reference)", took, count))
    print(f"  spool loader: {count / took:,.0f} events/s", flush=True)
    for workers in (1, 2):
        took, count = queue_run(records, workers)
        label = f"Redis queue, {workers} `cadlink worker`" + ("s" if workers > 1 else "")
        rows.append((label, took, count))
        print(f"  {workers} worker(s): {count / took:,.0f} events/s", flush=True)
    reference = rows[0][2] / rows[0][1]
    lines = [
        f"### Results — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"{args.events:,} events in {len(records):,} buffer records ({size / 1e6:.0f} MB); "
        f"{os.cpu_count()} cores. Versions: {versions(('cadlink', 'psycopg', 'redis'))}; "
        f"{_servers()}; commit {git_revision()}.",
        "",
        "| loader | seconds | events/s | of the spool loader | stored once |",
        "|---|---|---|---|---|",
    ]
    for label, took, count in rows:
        rate = count / took
        once = "yes" if count == args.events else f"no ({count:,})"
        lines.append(f"| {label} | {took:.1f} | {rate:,.0f} | {rate / reference:.0%} | {once} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("queue", INTRO, text)


def _unreachable() -> str:
    """What this benchmark needs and cannot reach ("" when both answer)."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            pass
    except psycopg.Error as e:
        return f"PostgreSQL at {ADMIN_URL} is not reachable ({e})".strip()
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as e:
        return f"Redis at {REDIS_URL} is not reachable ({e})"
    finally:
        client.close()
    return ""


def _servers() -> str:
    with psycopg.connect(ADMIN_URL, autocommit=True) as con:
        row = con.execute("SHOW server_version").fetchone()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        info = client.info("server")
    finally:
        client.close()
    pg = str(row[0]).split()[0] if row else "unknown"
    return f"PostgreSQL {pg}, Redis {info.get('redis_version', 'unknown')}"


if __name__ == "__main__":
    main()
