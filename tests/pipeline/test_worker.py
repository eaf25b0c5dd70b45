"""Server mode end to end: `cadlink serve` appends to the Redis queue, `cadlink worker`s load it
into PostgreSQL; a worker killed with `kill -9` mid-load loses nothing and stores nothing
twice."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from cadlink.ingest.buffer.redis_stream import GROUP
from server_process import CADLINK, Server, base_env, cli, free_port, send_numbered

pytestmark = pytest.mark.slow


class Worker:
    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [CADLINK, "worker", *args], env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


@pytest.fixture
def server_mode(
    tmp_path: Path,
    redis_url: tuple[str, str],
    postgres_databases: Callable[[], AbstractContextManager[str]],
) -> Iterator[dict[str, str]]:
    """Settings for server mode: metadata and events in PostgreSQL, the queue in Redis."""
    url, prefix = redis_url
    with postgres_databases() as meta, postgres_databases() as events:
        yield base_env(
            tmp_path / "data",
            CADLINK_DATABASE_URL=meta,
            CADLINK_EVENTS_URL=events,
            CADLINK_QUEUE_URL=url,
            CADLINK_QUEUE_STREAM=f"{prefix}events",
            CADLINK_QUEUE_CLAIM_IDLE_SECONDS="2",  # live workers touch theirs every 0.5 s
            CADLINK_LOADER_INTERVAL_SECONDS="0.05",
        )


def _stored(events_url: str, site: str) -> tuple[int, int]:
    with psycopg.connect(events_url) as con:
        row = con.execute(
            "SELECT count(*), count(DISTINCT page_path) FROM analytics_events WHERE site_id = %s",
            [site],
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _pending(redis_url: str, stream: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.xpending(stream, GROUP)["pending"])
    finally:
        client.close()


def _stored_by(metrics_port: int) -> float:
    """A worker's `cadlink_events_stored_total` (0 until its metrics answer)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("cadlink_events_stored_total "):
            return float(line.split(" ")[1])
    return 0.0


def test_workers_store_every_accepted_event_once_across_a_kill_9(
    server_mode: dict[str, str], tmp_path: Path
) -> None:
    env = server_mode
    events_url, stream = env["CADLINK_EVENTS_URL"], env["CADLINK_QUEUE_STREAM"]
    site = cli(env, "sites", "create", "--domain", "queue.example")["id"]
    server = Server(tmp_path / "data", env)
    server.start()
    acked: list[list[int]] = [[], []]
    stop = threading.Event()
    with ExitStack() as stack:
        stack.callback(server.stop)
        queue = httpx.get(server.url + "/api/health/queue").json()["data"]
        assert queue["kind"] == "redis" and queue["loadsHere"] is False
        doomed = Worker(env, tmp_path / "worker-0.log")
        stack.callback(doomed.stop)
        senders = [
            threading.Thread(
                target=send_numbered, args=(server.url, site, i * 10_000_000, acked[i], stop)
            )
            for i in range(2)
        ]
        for t in senders:
            t.start()
        stack.callback(stop.set)
        deadline = time.monotonic() + 30
        while _stored(events_url, site)[0] < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Hold the worker inside a load: it has taken entries from the queue and waits for
        # the table; kill it there, so that the entries it took are claimed by another.
        with psycopg.connect(events_url) as lock:
            lock.execute("LOCK TABLE analytics_events IN EXCLUSIVE MODE")
            deadline = time.monotonic() + 20
            while _pending(env["CADLINK_QUEUE_URL"], stream) == 0:
                assert time.monotonic() < deadline, "the worker took nothing from the queue"
                time.sleep(0.05)
            doomed.stop(signal.SIGKILL)
            lock.rollback()
        assert _pending(env["CADLINK_QUEUE_URL"], stream) > 0  # what it took is still there
        metrics_port = free_port()
        # The worker with metrics starts first and has stored something before the second
        # joins: started together, the second could take every entry (seen in CI on a busy
        # machine), and the metrics below would have nothing to show.
        first = Worker(env, tmp_path / "worker-1.log", "--metrics-port", str(metrics_port))
        stack.callback(first.stop)
        deadline = time.monotonic() + 60
        while _stored_by(metrics_port) == 0:
            assert time.monotonic() < deadline, "the first worker stored nothing"
            time.sleep(0.1)
        second = Worker(env, tmp_path / "worker-2.log", "--json")
        stack.callback(second.stop)
        workers = [first, second]
        time.sleep(2.0)
        stop.set()
        for t in senders:
            t.join()
        total = sum(map(len, acked))
        assert total >= 300, "too few events were accepted to prove anything"
        deadline = time.monotonic() + 60
        while _stored(events_url, site)[0] < total and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # anything stored twice would arrive now
        count, distinct = _stored(events_url, site)
        assert distinct == total, "an accepted event was lost"
        assert count == total, f"{count - total} events were stored twice"
        assert _pending(env["CADLINK_QUEUE_URL"], stream) == 0
        # One worker serves its own metrics: what it stored, and the queue it loads.
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        samples = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in metrics.splitlines()
            if line and not line.startswith("#")
        }
        assert 0 < samples["cadlink_events_stored_total"] <= total
        assert samples["cadlink_buffer_backlog_entries"] == 0
        assert samples["cadlink_loader_errors_total"] == 0
        assert "process_resident_memory_bytes" in samples
        for w in workers:
            assert w.stop() == 0, w.log.read_text()
        lines = [json.loads(line) for line in workers[1].log.read_text().splitlines()]
        start = next(line for line in lines if "consumer" in line)  # --json: its start line
        assert start["stream"] == stream and start["events"] == "postgresql"
        assert start["consumer"] and start["metrics"] is None
        logs = "".join(w.log.read_text() for w in workers)
        assert "claimed" in logs  # the killed worker's entries were taken over


def test_the_worker_refuses_what_it_cannot_do(tmp_path: Path, redis_url: tuple[str, str]) -> None:
    embedded = base_env(tmp_path / "data")
    out = subprocess.run([CADLINK, "worker"], env=embedded, capture_output=True, text=True)
    assert out.returncode != 0 and "runs the loader itself" in out.stderr

    duck = base_env(tmp_path / "data", CADLINK_QUEUE_URL=redis_url[0])
    out = subprocess.run([CADLINK, "worker"], env=duck, capture_output=True, text=True)
    assert out.returncode != 0 and "DuckDB" in out.stderr and "postgresql://" in out.stderr


def test_a_worker_on_local_metadata_says_where_identified_users_go(
    tmp_path: Path, redis_url: tuple[str, str], postgres_url: str
) -> None:
    url, prefix = redis_url
    env = base_env(
        tmp_path / "data",
        CADLINK_EVENTS_URL=postgres_url,
        CADLINK_QUEUE_URL=url,
        CADLINK_QUEUE_STREAM=f"{prefix}events",
    )
    worker = Worker(env, tmp_path / "worker.log", "--json")
    deadline = time.monotonic() + 60
    while '"consumer"' not in worker.log.read_text():
        assert worker.proc.poll() is None and time.monotonic() < deadline, worker.log.read_text()
        time.sleep(0.1)
    assert worker.stop() == 0
    log = worker.log.read_text()
    assert "warning: identified users go to sqlite:///" in log
    assert "CADLINK_DATABASE_URL" in log
