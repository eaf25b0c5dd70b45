"""The two servers under test, each a subprocess on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
CADLINK = str(BIN / "cadlink")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # loopback only
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@dataclass
class Server:
    """A server process; `pid` is the process whose CPU and memory we read."""

    name: str
    argv: list[str]
    env: dict[str, str]
    health_path: str
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.argv, "--port", str(self.port)], env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
            try:
                if _get(self.url + self.health_path, timeout=1)[0] < 300:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM and wait: `cadlink serve` drains its buffer into the store on the way out."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def bare(work: Path) -> Server:
    env = dict(os.environ)
    argv = [sys.executable, "-m", "bench.bare_app"]
    return Server("bare ASGI", argv, env, "/", work / "bare.log")


def cadlink_env(data_dir: Path) -> dict[str, str]:
    """Default settings (embedded mode, spool fsync once a second) but no rate limit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADLINK_")}
    env |= {
        "CADLINK_DATA_DIR": str(data_dir),
        "CADLINK_SECRET_KEY": "bench-" + "s" * 40,
        "CADLINK_ENV": "test",
        "CADLINK_RATE_LIMIT_PER_MINUTE": "0",
        "CADLINK_LOG_LEVEL": "warning",
    }
    return env


def create_site(env: dict[str, str], domain: str) -> str:
    out = subprocess.run(
        [CADLINK, "sites", "create", "--domain", domain, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return str(json.loads(out.stdout)["id"])


def cadlink(work: Path, env: dict[str, str]) -> Server:
    return Server("cadlink serve", [CADLINK, "serve"], env, "/api/health", work / "cadlink.log")


@dataclass(frozen=True, slots=True)
class IngestCounters:
    """What `GET /metrics` says about ingest."""

    accepted: int
    stored: int
    dropped: int
    backlog_bytes: int
    batches: int = 0  # loader batches (embedded store)
    widened: int = 0  # of which loaded again within the configured memory limit
    sessions_rebuilt: int = 0  # visitors whose sessions a batch rebuilt (the slow path)
    merges: int = 0  # times the store merged the loader's row groups


def ingest_counters(server: Server) -> IngestCounters:
    status, body = _get(server.url + "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    values: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith("cadlink_") and " " in line:
            name, _, value = line.rpartition(" ")
            key = name.split("{")[0]
            values[key] = values.get(key, 0.0) + float(value)
    return IngestCounters(
        accepted=int(values.get("cadlink_events_accepted_total", 0)),
        stored=int(values.get("cadlink_events_stored_total", 0)),
        dropped=int(values.get("cadlink_events_dropped_total", 0)),
        backlog_bytes=int(values.get("cadlink_buffer_backlog_bytes", 0)),
        batches=int(values.get("cadlink_loader_batches_total", 0)),
        widened=int(values.get("cadlink_loader_batches_widened_total", 0)),
        sessions_rebuilt=int(values.get("cadlink_loader_sessions_rebuilt_total", 0)),
        merges=int(values.get("cadlink_store_row_group_merges_total", 0)),
    )


def count_stored(events_db: Path, site_ids: list[str]) -> dict[str, int]:
    """Rows per site, read from the DuckDB file after the server stopped."""
    import duckdb

    con = duckdb.connect(str(events_db), read_only=True)
    try:
        rows = con.execute(
            "SELECT site_id, count(*) FROM analytics_events WHERE site_id = ANY($ids) GROUP BY 1",
            {"ids": site_ids},
        ).fetchall()
    finally:
        con.close()
    found = {str(site): int(n) for site, n in rows}
    return {site: found.get(site, 0) for site in site_ids}
