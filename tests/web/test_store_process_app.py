"""The app as `cadlink serve` runs it: the loader and the event store in a store process, the
API reading through it (DuckDB) or straight from the shared server (PostgreSQL)."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cadlink.pipeline.store_process import StoreProcess
from cadlink.store.events.remote import RemoteEventStore
from cadlink_fixtures import Running, make_settings, start_app, wait_for

UA = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}


@pytest.fixture
def split(tmp_path: Path) -> Iterator[Running]:
    yield from start_app(make_settings(tmp_path / "data"), store_process=True)


def _send(run: Running, n: int) -> list[str]:
    now = int(time.time() * 1000)
    ids = [uuid.uuid4().hex for _ in range(n)]
    events = [
        {"eventType": "page_view", "eventId": i, "timestamp": now + k, "pagePath": f"/p{k % 2}",
         "properties": {"k": k}}
        for k, i in enumerate(ids)
    ]  # fmt: skip
    r = run.client.post(
        "/api/v1/collect", json={"siteId": run.site_id, "events": events}, headers=UA
    )
    assert r.status_code == 204, r.text
    return ids


def test_collect_reports_and_exports_through_the_store_process(split: Running) -> None:
    assert isinstance(split.services.loader, StoreProcess)
    assert isinstance(split.services.events, RemoteEventStore)
    ids = _send(split, 8)
    stored = split.stored(8)
    assert {e["eventId"] for e in stored} == set(ids)
    assert stored[0]["properties"] == {"k": 0}

    dash = split.client.get(
        "/api/v1/analytics/dashboard", params={"siteId": split.site_id}, headers=split.auth
    )
    assert dash.status_code == 200, dash.text
    assert dash.json()["data"]["summary"]["pageViews"] == 8

    export = split.client.get(
        "/api/v1/analytics/export",
        params={"siteId": split.site_id, "format": "parquet"},
        headers=split.auth,
    )
    assert export.status_code == 200, export.text
    assert [r["eventId"] for r in pq.read_table(io.BytesIO(export.content)).to_pylist()] == ids

    db = split.client.get("/api/health/db").json()["data"]
    assert db["events"]["engine"] == "duckdb" and db["events"]["process"] == "store"
    # The web process reads the loader's numbers as of the keeper's last poll of the child
    # (every 0.2 s; later on a busy machine).
    deadline = time.monotonic() + 10
    queue = split.client.get("/api/health/queue").json()["data"]
    while queue["eventsStored"] < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
        queue = split.client.get("/api/health/queue").json()["data"]
    assert queue["eventsStored"] == 8 and queue["backlogBytes"] == 0
    metrics = split.client.get("/metrics").text
    rss = next(
        line for line in metrics.splitlines()
        if line.startswith("cadlink_store_process_resident_memory_bytes ")
    )  # fmt: skip
    assert float(rss.split()[1]) > 50e6  # the store process holds DuckDB and the parsers
    assert "cadlink_store_process_restarts_total 0.0" in metrics
    assert "cadlink_events_stored_total 8.0" in metrics


def test_reads_answer_503_while_the_store_process_restarts(split: Running) -> None:
    keeper = split.services.loader
    assert isinstance(keeper, StoreProcess)
    _send(split, 3)
    split.stored(3)
    assert keeper._child is not None
    keeper._child.proc.kill()
    keeper._child.proc.wait()
    r = split.client.get(
        "/api/v1/analytics/events", params={"siteId": split.site_id}, headers=split.auth
    )
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "store_unavailable"
    assert r.headers["retry-after"] == "5"
    # Collect keeps accepting; the restarted store process loads what waited.
    _send(split, 2)

    def back() -> bool:
        reply = split.client.get(
            "/api/v1/analytics/events", params={"siteId": split.site_id}, headers=split.auth
        )
        return reply.status_code == 200

    wait_for(back, timeout=60)
    split.stored(5)
    assert keeper.restarts == 1


def test_on_postgres_the_web_process_reads_the_server_itself(
    tmp_path: Path, postgres_url: str
) -> None:
    settings = make_settings(tmp_path / "d", database_url=postgres_url, events_url=postgres_url)
    app = start_app(settings, store_process=True)
    run = next(app)
    try:
        assert isinstance(run.services.loader, StoreProcess)
        assert not isinstance(run.services.events, RemoteEventStore)
        ids = _send(run, 4)
        assert {e["eventId"] for e in run.stored(4)} == set(ids)
    finally:
        app.close()


def test_identified_users_reach_the_crm_through_the_store_process(split: Running) -> None:
    """The store process does not open the metadata store: the users its loader identifies
    are handed to the web process, which records them (the CRM reads them there)."""
    now = int(time.time() * 1000)
    event = {"eventType": "identify", "eventId": uuid.uuid4().hex, "timestamp": now,
             "userId": "u-7", "properties": {"plan": "pro"}}  # fmt: skip
    r = split.client.post(
        "/api/v1/collect", json={"siteId": split.site_id, "events": [event]}, headers=UA
    )
    assert r.status_code == 204, r.text

    def users() -> list[dict[str, object]]:
        r = split.client.get(
            "/api/v1/crm/users", params={"siteId": split.site_id}, headers=split.auth
        )
        assert r.status_code == 200, r.text
        data: list[dict[str, object]] = r.json()["data"]
        return data

    found = wait_for(users, timeout=20)
    assert [u["userId"] for u in found] == ["u-7"]
    pid = split.services.loader.status.pid  # type: ignore[attr-defined]
    with open(f"/proc/{pid}/maps") as maps:
        assert "sqlalchemy" not in maps.read()
