"""No raw client IP address is written anywhere: data dir, buffer, databases or logs."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from server_process import Server, base_env, cli

pytestmark = pytest.mark.slow

IPV4 = "198.51.100.213"
IPV6 = "2001:db8:abcd:12::77"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def test_raw_ips_never_reach_disk_or_logs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = base_env(data, CADLINK_LOG_LEVEL="debug")
    site = cli(env, "sites", "create", "--domain", "private.example")["id"]
    admin = ("root@private.example", "long-password-1")
    cli(env, "users", "create", "--email", admin[0], "--password", admin[1], "--role", "ADMIN")
    server = Server(data, env)
    server.start()
    try:
        for ip in (IPV4, IPV6):
            for kind in ("page_view", "click"):
                body = {
                    "siteId": site,
                    "eventType": kind,
                    "eventId": uuid.uuid4().hex,
                    "pagePath": "/",
                }
                r = httpx.post(
                    server.url + "/api/v1/collect",
                    json=body,
                    headers={"X-Forwarded-For": ip, "User-Agent": UA},  # from a trusted proxy
                )
                assert r.status_code == 204
        # a rejected request must not log the address either
        httpx.post(server.url + "/api/v1/collect", content=b"{", headers={"X-Forwarded-For": IPV4})
        headers = server.login(*admin)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = httpx.get(
                server.url + "/api/v1/analytics/events", params={"siteId": site}, headers=headers
            )
            if len(r.json()["data"]) == 4:
                break
            time.sleep(0.2)
        rows = r.json()["data"]
        assert len(rows) == 4
        # the two addresses are two different anonymous visitors, with the same id per address
        assert len({row["visitorId"] for row in rows}) == 2
    finally:
        server.stop()
    assert server.log_path is not None
    files = [p for p in data.rglob("*") if p.is_file()] + [server.log_path]
    assert any(p.suffix == ".duckdb" for p in files)
    needles = [IPV4.encode(), IPV6.encode(), b"2001:db8:abcd:12:0:0:0:77", b"2001:0db8:abcd:0012"]
    for path in files:
        blob = path.read_bytes()
        for needle in needles:
            assert needle not in blob, f"{needle!r} found in {path}"
