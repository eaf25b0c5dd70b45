"""`cadlink backup` and `cadlink restore` on real data dirs, as an operator runs them."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import tarfile
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from cadlink.ingest.buffer import SpoolReader
from server_process import CADLINK, Server, base_env, cli

UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
TABLES = ("analytics_events", "sessions", "rollup_visitor_hours", "rollup_page_hours")


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CADLINK, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _events(data: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the main tables, in a stable order."""
    con = duckdb.connect(str(data / "events.duckdb"), read_only=True)
    try:
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}
    finally:
        con.close()


def _meta(data: Path, *, file: bool = False) -> dict[str, list[tuple[object, ...]]]:
    con = sqlite3.connect(data if file else data / "meta.sqlite3")
    try:
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in ("users", "sites", "salts")}  # fmt: skip
    finally:
        con.close()


@pytest.mark.slow
def test_a_backup_restores_every_accepted_event_and_the_metadata(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # A loader that waits long keeps the last accepted events in the spool until the kill.
    env = base_env(
        data, CADLINK_LOADER_INTERVAL_SECONDS="60", CADLINK_LOADER_MAX_DELAY_SECONDS="60"
    )
    cli(env, "users", "create", "--email", "admin@backup.example", "--password", "a-long-password-1",
        "--role", "ADMIN")  # fmt: skip
    site = cli(env, "sites", "create", "--domain", "backup.example")["id"]
    cli(env, "demo", "--site", site, "--days", "2", "--events", "2000")
    server = Server(data, env)
    server.start()
    try:
        events = [{"eventType": "page_view", "eventId": f"late-{i}", "pagePath": f"/n/{i}"}
                  for i in range(7)]  # fmt: skip
        r = httpx.post(server.url + "/api/v1/collect", json={"siteId": site, "events": events},
                       headers={"User-Agent": UA})  # fmt: skip
        assert r.status_code == 204, r.text
    finally:
        server.kill()
    assert SpoolReader(data / "spool").unloaded_bytes({}) > 0

    target = tmp_path / "site.tar.gz"
    out = _run(env, "backup", "-o", str(target), "--json")
    assert out.returncode == 0, out.stderr
    manifest = json.loads(out.stdout)
    stored = _events(data)
    ids = {row[2] for row in stored["analytics_events"]}
    assert {f"late-{i}" for i in range(7)} <= ids  # the spool's events are in the backup
    assert manifest["eventsPerSite"] == {site: len(stored["analytics_events"])}
    assert set(manifest["files"]) == {"meta.sqlite3", "events.duckdb"}
    assert _run(env, "backup", "-o", str(target)).returncode == 1  # never overwrites

    # Restored into a new data dir: the same rows, the same metadata.
    fresh = base_env(tmp_path / "restored")
    out = _run(fresh, "restore", str(target), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["events"] == len(stored["analytics_events"])
    assert _events(tmp_path / "restored") == stored
    restored_meta, original_meta = _meta(tmp_path / "restored"), _meta(data)
    assert restored_meta["users"] == original_meta["users"]
    assert restored_meta["sites"] == original_meta["sites"]
    # The daily salts stay out of backups: they are deleted after 48 h, and a backup kept
    # longer would let whoever holds it link those days' visitor ids to addresses.
    assert original_meta["salts"] and restored_meta["salts"] == []
    with tarfile.open(target) as tar:
        member = tar.extractfile("meta.sqlite3")
        assert member is not None
        (tmp_path / "packed.sqlite3").write_bytes(member.read())
    assert _meta(tmp_path / "packed.sqlite3", file=True)["salts"] == []
    restored = Server(tmp_path / "restored", fresh)
    restored.start()
    try:
        assert restored.login("admin@backup.example", "a-long-password-1")
    finally:
        restored.stop()


def test_restore_checks_the_backup_and_keeps_what_it_replaces(tmp_path: Path) -> None:
    env = base_env(tmp_path / "a")
    site = cli(env, "sites", "create", "--domain", "a.example")["id"]
    cli(env, "demo", "--site", site, "--days", "1", "--events", "300")
    backup = tmp_path / "a.tar"
    assert _run(env, "backup", "-o", str(backup)).returncode == 0
    other = base_env(tmp_path / "b")
    cli(other, "sites", "create", "--domain", "b.example")
    before = _meta(tmp_path / "b")

    out = _run(other, "restore", str(backup))
    assert out.returncode == 1 and "--force" in out.stderr
    damaged = tmp_path / "damaged.tar"
    raw = bytearray(backup.read_bytes())
    with tarfile.open(backup) as tar:
        member = tar.getmember("events.duckdb")
    raw[member.offset_data + member.size // 2] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    out = _run(other, "restore", str(damaged), "--force")
    assert out.returncode == 1 and "events.duckdb is damaged" in out.stderr
    assert _meta(tmp_path / "b") == before  # nothing was touched
    cut = tmp_path / "cut.tar.gz"
    assert _run(env, "backup", "-o", str(tmp_path / "a.tar.gz")).returncode == 0
    cut.write_bytes((tmp_path / "a.tar.gz").read_bytes()[:-2000])
    out = _run(other, "restore", str(cut), "--force")
    assert out.returncode == 1 and "is damaged or cut short" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert _meta(tmp_path / "b") == before
    not_a_backup = tmp_path / "x.tar"
    not_a_backup.write_bytes(b"hello")
    out = _run(other, "restore", str(not_a_backup))
    assert out.returncode == 1 and "is not a CADLINK backup" in out.stderr

    # A damaged event store is what one restores over: it does not stop the restore.
    (tmp_path / "b" / "events.duckdb").write_bytes(b"not a database" * 1000)
    out = _run(other, "restore", str(backup), "--force", "--json")
    assert out.returncode == 0, out.stderr
    moved = json.loads(out.stdout)["movedAside"]
    assert any("meta.sqlite3.before-restore-" in m for m in moved)
    assert [s["id"] for s in cli(other, "sites", "list")] == [site]
    aside = next(Path(m) for m in moved if "meta.sqlite3.before-restore-" in m)
    con = sqlite3.connect(aside)
    assert [r[0] for r in con.execute("SELECT domain FROM sites")] == ["b.example"]
    con.close()


def test_server_mode_points_at_postgresql_tools(tmp_path: Path) -> None:
    env = base_env(tmp_path / "d", CADLINK_EVENTS_URL="postgresql://nobody@127.0.0.1:1/none")
    out = _run(env, "backup")
    assert out.returncode == 1 and "pg_dump" in out.stderr
    out = _run(env, "backup", "-o", str(tmp_path / "missing" / "b.tar"))
    assert out.returncode == 2 and "does not exist" in out.stderr


def _post(server: Server, site: str, ids: list[str]) -> None:
    events = [{"eventType": "page_view", "eventId": i, "pagePath": "/"} for i in ids]
    r = httpx.post(server.url + "/api/v1/collect", json={"siteId": site, "events": events},
                   headers={"User-Agent": UA})  # fmt: skip
    assert r.status_code == 204, r.text


@pytest.mark.slow
def test_a_backup_while_the_server_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = base_env(data)
    site = cli(env, "sites", "create", "--domain", "online.example")["id"]
    server = Server(data, env)
    server.start()
    try:
        advertised = data / "store-process.json"
        assert advertised.stat().st_mode & 0o777 == 0o600  # it holds the store process's key
        before = [f"before-{i}" for i in range(50)]
        _post(server, site, before)
        deadline = time.monotonic() + 30
        while httpx.get(server.url + "/api/health/queue").json()["data"]["backlogBytes"]:
            assert time.monotonic() < deadline, "the loader did not catch up"
            time.sleep(0.05)
        target = tmp_path / "online.tar"
        out = _run(env, "backup", "-o", str(target), "--json")
        assert out.returncode == 0, out.stderr
        assert "copied the event store of the running server" in out.stderr
        assert json.loads(out.stdout)["eventsPerSite"] == {site: 50}
        # The server still holds its file alone: copying it in the store process used to
        # drop DuckDB's lock, and a second writer could then open it.
        with pytest.raises(duckdb.IOException, match=r"(?i)lock"):
            duckdb.connect(str(data / "events.duckdb"), read_only=True)
        busy = _run(env, "demo", "--site", site, "--events", "10")
        assert busy.returncode != 0 and "cadlink serve" in busy.stderr, busy.stderr
        exported = _run(env, "export", "--site", site, "--format", "json")
        assert exported.returncode == 0, exported.stderr  # read through the running server
        assert sorted(
            json.loads(line)["eventId"] for line in exported.stdout.splitlines()
        ) == sorted(before)
        _post(server, site, ["after-1"])  # the server goes on collecting and storing
    finally:
        server.stop()
    assert not advertised.exists()
    assert len(_events(data)["analytics_events"]) == 51
    fresh = base_env(tmp_path / "restored")
    out = _run(fresh, "restore", str(target))
    assert out.returncode == 0, out.stderr
    restored = _events(tmp_path / "restored")["analytics_events"]
    assert sorted(row[2] for row in restored) == sorted(before)
