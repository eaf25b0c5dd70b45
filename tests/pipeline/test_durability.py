"""An acknowledged event survives `kill -9` of the server and is stored exactly once."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import duckdb
import httpx
import pytest
import redis

from cadlink.ingest.buffer import SpoolReader
from server_process import Server, base_env, cli, send_numbered

pytestmark = pytest.mark.slow

UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"


def _sender(url: str, site: str, acked: list[str], stop: threading.Event, resend: bool) -> None:
    with httpx.Client(timeout=5, headers={"User-Agent": UA}) as client:
        while not stop.is_set():
            ids = [uuid.uuid4().hex for _ in range(5)]
            events = [{"eventType": "page_view", "eventId": i, "pagePath": "/"} for i in ids]
            if resend and acked:
                # a retry of an event already acknowledged: must still be stored once
                events.append({"eventType": "page_view", "eventId": acked[-1], "pagePath": "/"})
            try:
                r = client.post(url + "/api/v1/collect", json={"siteId": site, "events": events})
            except httpx.HTTPError:
                continue  # the server is gone: nothing in this request was acknowledged
            if r.status_code == 204:
                acked.extend(ids)


def test_acknowledged_events_survive_kill_9_exactly_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # a slow loader keeps a backlog in the buffer at the moment of the kill
    env = base_env(data, CADLINK_LOADER_INTERVAL_SECONDS="0.3", CADLINK_SPOOL_SEGMENT_BYTES="20000")
    site = cli(env, "sites", "create", "--domain", "durable.example")["id"]
    server = Server(data, env)
    server.start()
    acked: list[list[str]] = [[] for _ in range(4)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=_sender, args=(server.url, site, acked[i], stop, i % 2 == 0))
        for i in range(4)
    ]
    for t in threads:
        t.start()
    try:
        # Kill once the load is well under way: on a loaded CI machine the first answers can
        # take seconds, and a fixed sleep then killed the server before anything was acked.
        deadline = time.monotonic() + 30
        while sum(map(len, acked)) < 1000 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        server.kill()
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(timeout=10)
        all_acked = {i for ids in acked for i in ids}
        assert len(all_acked) > 200, "the load did not get going"
        con = duckdb.connect(str(data / "events.duckdb"), read_only=True)
        positions = dict(con.execute("SELECT segment, position FROM loader_positions").fetchall())
        stored_at_kill = con.execute("SELECT count(*) FROM analytics_events").fetchone()
        con.close()
        # the interesting case: acknowledged events still only in the buffer when killed
        assert SpoolReader(data / "spool").unloaded_bytes(positions) > 0
        assert stored_at_kill is not None and stored_at_kill[0] < len(all_acked)

        server.start()  # restarts on the same data dir and loads what the buffer holds
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            q = httpx.get(server.url + "/api/health/queue").json()["data"]
            if q["backlogBytes"] == 0:
                break
            time.sleep(0.2)
        server.stop()
    finally:
        stop.set()
        server.stop()

    con = duckdb.connect(str(data / "events.duckdb"), read_only=True)
    rows = con.execute(
        "SELECT event_id, count(*) FROM analytics_events WHERE site_id = ? GROUP BY event_id",
        [site],
    ).fetchall()
    con.close()
    counts = dict(rows)
    missing = all_acked - counts.keys()
    assert not missing, f"{len(missing)} acknowledged events lost"
    assert max(counts.values()) == 1, "an event was stored twice"


def _entries_read(queue: redis.Redis, stream: str) -> int:
    groups = queue.xinfo_groups(stream) if queue.exists(stream) else []
    return int(groups[0]["entries-read"] or 0) if groups else 0


def test_kill_9_with_the_redis_queue_loses_nothing_and_stores_nothing_twice(
    tmp_path: Path, redis_url: tuple[str, str]
) -> None:
    """Embedded DuckDB fed by the Redis queue (server mode's buffer): `cadlink serve` and its
    store process die with entries delivered to the loader and not acknowledged; after a
    restart the new loader claims them, and the markers keep what was stored from being
    stored again."""
    url, prefix = redis_url
    stream = f"{prefix}events"
    data = tmp_path / "data"
    env = base_env(
        data,
        CADLINK_QUEUE_URL=url,
        CADLINK_QUEUE_STREAM=stream,
        CADLINK_QUEUE_CLAIM_IDLE_SECONDS="2",  # live workers touch theirs every 0.5 s
        # Small batches back to back behind a backlog: the loader holds entries it took
        # and has not acknowledged most of the time, so the kill most likely finds some.
        CADLINK_LOADER_BATCH_BYTES="20000",
    )
    site = cli(env, "sites", "create", "--domain", "queued.example")["id"]
    server = Server(data, env)
    server.start()
    acked: list[list[int]] = [[] for _ in range(4)]
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=send_numbered, args=(server.url, site, i * 10_000_000, acked[i], stop)
        )
        for i in range(4)
    ]
    for t in threads:
        t.start()
    queue = redis.Redis.from_url(url)
    try:
        # Kill once the loader works behind a backlog, in full batches back to back.
        deadline = time.monotonic() + 30
        while _entries_read(queue, stream) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(timeout=10)
        all_acked = {p for paths in acked for p in paths}
        assert len(all_acked) > 200, "the load did not get going"
        assert queue.xlen(stream) > 0  # acknowledged events still only in the queue
        held = int(queue.xpending(stream, "cadlink-loaders")["pending"])  # the dead loader's

        server.start()
        deadline = time.monotonic() + 60
        while queue.xlen(stream) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert queue.xlen(stream) == 0, "the restarted server did not load the queue"
        server.stop()
    finally:
        stop.set()
        server.stop()
        queue.close()

    con = duckdb.connect(str(data / "events.duckdb"), read_only=True)
    rows = con.execute(
        "SELECT page_path, count(*) FROM analytics_events WHERE site_id = ? GROUP BY page_path",
        [site],
    ).fetchall()
    markers = con.execute("SELECT count(*) FROM loader_markers").fetchone()
    con.close()
    counts = {int(path.rsplit("/", 1)[1]): n for path, n in rows}
    missing = all_acked - counts.keys()
    assert not missing, f"{len(missing)} acknowledged events lost"
    assert max(counts.values()) == 1, "an event was stored twice"
    # Markers are forgotten once their entries are acknowledged, except those of the entries
    # claimed from the dead loader: kept a day, should it only have been frozen.
    assert markers is not None and markers[0] <= held
