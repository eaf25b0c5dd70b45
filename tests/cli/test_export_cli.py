"""`cadlink export`: a site's stored events or sessions to a file, as a user runs it."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from server_process import CADLINK, base_env, cli


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CADLINK, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str, Path]:
    data = tmp_path_factory.mktemp("export") / "data"
    env = base_env(data)
    site = cli(env, "sites", "create", "--domain", "export.example")["id"]
    cli(env, "demo", "--site", site, "--days", "3", "--events", "3000")
    return env, site, data


def _stored(data: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(data / "events.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def test_every_stored_event_is_exported_in_each_format(
    demo: tuple[dict[str, str], str, Path], tmp_path: Path
) -> None:
    env, site, data = demo
    ids = sorted(
        r[0] for r in _stored(data, "SELECT event_id FROM analytics_events WHERE site_id = ?", site)
    )
    assert len(ids) > 2000
    out = _run(env, "export", "--site", site)  # CSV on standard output, the summary on stderr
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert sorted(r["eventId"] for r in rows) == ids
    assert f"exported {len(ids)} events" in out.stderr
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)

    target = tmp_path / "events.parquet"
    out = _run(env, "export", "--site", site, "--format", "parquet", "-o", str(target), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rows"] == len(ids)
    assert sorted(pq.read_table(target).column("eventId").to_pylist()) == ids
    assert not list(tmp_path.glob("*.partial"))

    target = tmp_path / "events.ndjson"
    out = _run(env, "export", "--site", site, "--format", "json", "-o", str(target))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert sorted(e["eventId"] for e in lines) == ids


def test_sessions_and_a_date_range(demo: tuple[dict[str, str], str, Path]) -> None:
    env, site, data = demo
    [(day,)] = _stored(data, "SELECT max(started_at)::DATE FROM sessions WHERE site_id = ?", site)
    [(expected,)] = _stored(
        data, "SELECT count(*) FROM sessions WHERE site_id = ? AND started_at::DATE = ?", site, day
    )
    args = ["--start-date", str(day), "--end-date", str(day)]
    out = _run(env, "export", "--site", site, "--table", "sessions", "--format", "json", *args)
    assert out.returncode == 0, out.stderr
    sessions = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(sessions) == expected > 0
    assert {s["startedAt"][:10] for s in sessions} == {str(day)}


def test_errors_say_what_to_do(demo: tuple[dict[str, str], str, Path]) -> None:
    env, site, data = demo
    out = _run(env, "export", "--site", site, "--start-date", "2026-02-30")
    assert out.returncode == 2 and "date" in out.stderr
    out = _run(env, "export", "--site", site, "-o", str(data / "no-such-dir" / "e.csv"))
    assert out.returncode == 2 and "no-such-dir does not exist" in out.stderr
    out = _run(env, "export", "--site", "nope")
    assert out.returncode == 1 and "no site with id" in out.stderr
    held = duckdb.connect(str(data / "events.duckdb"))  # as a running server holds it
    try:
        out = _run(env, "export", "--site", site)
    finally:
        held.close()
    assert out.returncode == 1
    assert "in use by `cadlink serve`" in out.stderr and "stop it, then export" in out.stderr
