"""Fixtures shared by the app-level tests: a real app on real embedded stores in tmp dirs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from cadlink.app import CadlinkApp, create_app
from cadlink.auth.passwords import PasswordHasher
from cadlink.config import Settings
from cadlink.services import Services

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
ADMIN_EMAIL = "admin@shop.example"
ADMIN_PASSWORD = "correct horse battery"


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "env": "test",
        "secret_key": "t" * 40,
        "rate_limit_per_minute": 0,
        "loader_interval_seconds": 0.05,
        "site_refresh_seconds": 0.2,
        "database_url": "",
        "events_url": "",
        "queue_url": "",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass
class Running:
    client: TestClient
    services: Services
    settings: Settings
    site_id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stored(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until the site has `count` events stored; returns them via the API."""

        def ready() -> list[dict[str, Any]] | None:
            r = self.client.get(
                "/api/v1/analytics/events",
                params={"siteId": self.site_id, "limit": 1000, "startDate": "2000-01-01"},
                headers=self.auth,
            )
            assert r.status_code == 200, r.text
            data: list[dict[str, Any]] = r.json()["data"]
            return data if len(data) >= count else None

        result: list[dict[str, Any]] = wait_for(ready, timeout)
        return result


def start_app(settings: Settings, *, store_process: bool = False) -> Iterator[Running]:
    """The app on `settings`; `store_process`: as `cadlink serve` runs it, with the loader and
    the event store in a child process that the app reads through."""
    services = Services.build(settings, hasher=FAST_HASHER, store_process=store_process)
    site = services.meta.create_site("shop.example", "Shop")
    services.auth.create_user(ADMIN_EMAIL, ADMIN_PASSWORD, "ADMIN")
    services.refresh_now()
    app = create_app(settings, services)
    with TestClient(app, base_url="http://testserver", client=("203.0.113.77", 50000)) as client:
        r = client.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert r.status_code == 200, r.text
        yield Running(client, services, settings, site.public_id, r.json()["data"]["accessToken"])


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    yield from start_app(make_settings(tmp_path / "data"))


@contextmanager
def serving(app: CadlinkApp, **options: Any) -> Iterator[int]:
    """Serve `app` as `cadlink serve` does (its collect protocol), on a free loopback port,
    from a thread; yields the port."""
    import socket
    import threading

    import uvicorn

    from cadlink.web.collect_protocol import collect_protocol

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=collect_protocol(app.collect),
        log_config=None,
        access_log=False,
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=30)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)
