"""`cadlink gdpr export|delete` on a real data dir: events a server accepted (some still in
its spool when it died), then everything about one person exported and erased."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from cadlink.ingest.buffer import SpoolReader
from cadlink.ingest.enrich.identity import consented_visitor_id
from server_process import CADLINK, Server, base_env, cli

UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"


def _events(browser: str, n: int, user: str | None = None) -> list[dict[str, Any]]:
    base = {"consent": True, "visitorId": browser, "pageUrl": "https://gdpr.example/p"}
    events = [base | {"eventType": "page_view", "pagePath": f"/p/{i}"} for i in range(n)]
    if user is not None:
        traits = {"email": f"{user}@mail.example"}
        events.append(base | {"eventType": "identify", "userId": user, "properties": traits})
        events.append(base | {"eventType": "page_view", "pagePath": "/account", "userId": user})
    return events


def _run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CADLINK, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


def _stored(data: Path, site: str) -> dict[int, int]:
    con = duckdb.connect(str(data / "events.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT visitor_id, count(*) FROM analytics_events WHERE site_id = ? GROUP BY 1",
            [site],
        ).fetchall()
        return {int(v): int(n) for v, n in rows}
    finally:
        con.close()


def _site_users(data: Path) -> list[str]:
    con = sqlite3.connect(data / "meta.sqlite3")
    try:
        return [r[0] for r in con.execute("SELECT user_id FROM site_users")]
    finally:
        con.close()


@pytest.mark.slow
def test_a_person_is_exported_then_erased_spool_included(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # A loader that waits long keeps the accepted events in the spool until the kill.
    env = base_env(
        data, CADLINK_LOADER_INTERVAL_SECONDS="60", CADLINK_LOADER_MAX_DELAY_SECONDS="60"
    )
    site = cli(env, "sites", "create", "--domain", "gdpr.example")["id"]
    server = Server(data, env)
    server.start()
    try:
        for events in (_events("alice-phone", 3, "alice"), _events("alice-laptop", 2, "alice"),
                       _events("bob-phone", 4)):  # fmt: skip
            r = httpx.post(
                server.url + "/api/v1/collect",
                json={"siteId": site, "events": events},
                headers={"User-Agent": UA},
            )
            assert r.status_code == 204, r.text
    finally:
        server.kill()
    assert SpoolReader(data / "spool").unloaded_bytes({}) > 0
    alice = {consented_visitor_id(site, b) for b in ("alice-phone", "alice-laptop")}
    bob = consented_visitor_id(site, "bob-phone")

    out = tmp_path / "alice.json"
    exported = _run(env, "gdpr", "export", "--site", site, "--user-id", "alice", "-o", str(out),
                    "--json")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout) == {"visitors": 2, "siteUsers": 1, "sessions": 2,
                                           "events": 9}  # fmt: skip
    doc = json.loads(out.read_text())
    assert {int(v) for v in doc["visitorIds"]} == alice
    # Every event of both browsers, those before identify() too, and none of Bob's.
    assert len(doc["events"]) == 9
    assert {int(e["visitorId"]) for e in doc["events"]} == alice
    assert doc["siteUsers"][0]["traits"] == {"email": "alice@mail.example"}
    # The export loaded what the spool held first.
    assert _stored(data, site) == {consented_visitor_id(site, "alice-phone"): 5,
                                   consented_visitor_id(site, "alice-laptop"): 4, bob: 4}  # fmt: skip

    # Named by one browser's id, the person is the same: the user id it was identified as
    # brings the other browser.
    linked = _run(env, "gdpr", "export", "--site", site, "--visitor-id", "alice-laptop", "--json")
    assert linked.returncode == 0, linked.stderr
    assert json.loads(linked.stderr) == json.loads(exported.stdout)
    assert json.loads(linked.stdout)["userIds"] == ["alice"]
    bob_only = _run(env, "gdpr", "export", "--site", site, "--visitor-id", "bob-phone", "--json")
    assert json.loads(bob_only.stderr) == {
        "visitors": 1,
        "siteUsers": 0,
        "sessions": 1,
        "events": 4,
    }

    # Without --yes and nobody to confirm, nothing is deleted.
    refused = _run(env, "gdpr", "delete", "--site", site, "--user-id", "alice")
    assert refused.returncode != 0 and "Aborted" in refused.stderr
    assert sum(_stored(data, site).values()) == 13

    deleted = _run(env, "gdpr", "delete", "--site", site, "--user-id", "alice", "--yes", "--json")
    assert deleted.returncode == 0, deleted.stderr
    counts = json.loads(deleted.stdout)["deleted"]
    assert counts["analytics_events"] == 9 and counts["sessions"] == 2
    assert counts["site_users"] == 1
    assert _stored(data, site) == {bob: 4}
    assert _site_users(data) == []

    # The restarted server has nothing of Alice's left to load.
    server.start()
    server.stop()
    assert _stored(data, site) == {bob: 4}
    again = _run(env, "gdpr", "export", "--site", site, "--visitor-id", "alice-phone")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["events"] == []
    assert "exported 0 events" in again.stderr


def test_a_person_must_be_named(tmp_path: Path) -> None:
    env = base_env(tmp_path / "d")
    site = cli(env, "sites", "create", "--domain", "gdpr.example")["id"]
    out = _run(env, "gdpr", "delete", "--site", site, "--yes")
    assert out.returncode == 2
    assert "--user-id" in out.stderr
    out = _run(env, "gdpr", "export", "--site", "no-such-site", "--user-id", "u")
    assert out.returncode == 1
    assert "no site with id" in out.stderr
    out = _run(env, "gdpr", "delete", "--site", site, "--user-id", "nobody", "--json")
    assert out.returncode == 0, out.stderr
    assert set(json.loads(out.stdout)["deleted"].values()) == {0}
    assert "analytics_events" in json.loads(out.stdout)["deleted"]


@pytest.mark.slow
def test_a_person_is_erased_beside_a_running_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = base_env(data)
    site = cli(env, "sites", "create", "--domain", "gdpr.example")["id"]
    alice = {consented_visitor_id(site, b) for b in ("alice-phone", "alice-laptop")}
    bob = consented_visitor_id(site, "bob-phone")
    server = Server(data, env)
    server.start()
    try:
        for events in (_events("alice-phone", 3, "alice"), _events("alice-laptop", 2, "alice"),
                       _events("bob-phone", 4)):  # fmt: skip
            r = httpx.post(server.url + "/api/v1/collect", json={"siteId": site, "events": events},
                           headers={"User-Agent": UA})  # fmt: skip
            assert r.status_code == 204, r.text
        # Run at once: the command waits until the server has stored what it accepted.
        exported = _run(env, "gdpr", "export", "--site", site, "--user-id", "alice", "--json")
        assert exported.returncode == 0, exported.stderr
        assert "through the running server" in exported.stderr
        assert json.loads(exported.stderr.splitlines()[-1])["events"] == 9
        deleted = _run(env, "gdpr", "delete", "--site", site, "--user-id", "alice", "--yes",
                       "--json")  # fmt: skip
        assert deleted.returncode == 0, deleted.stderr
        counts = json.loads(deleted.stdout)["deleted"]
        assert (counts["analytics_events"], counts["sessions"], counts["site_users"]) == (9, 2, 1)
    finally:
        server.stop()
    stored = _stored(data, site)
    assert stored == {bob: 4} and not alice & set(stored)
    assert _site_users(data) == []
