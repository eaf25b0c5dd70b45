"""A real `cadlink serve` in a subprocess, for tests that kill it or drive it from a browser."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CADLINK = str(Path(sys.executable).parent / "cadlink")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADLINK_")}
    env.update(
        {
            "CADLINK_DATA_DIR": str(data_dir),
            "CADLINK_SECRET_KEY": "s" * 40,
            "CADLINK_ENV": "test",
            "CADLINK_RATE_LIMIT_PER_MINUTE": "0",
            "CADLINK_LOG_LEVEL": "warning",
        }
    )
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str) -> Any:
    out = subprocess.run(
        [CADLINK, *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(c) for c in f.read().split())
    except FileNotFoundError:
        pass
    return found


def process_running(pid: int) -> bool:
    """Whether a thread of `pid` still runs (a killed process's leader is a zombie while its
    other threads, which hold its files, are still exiting)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return False
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    return True
        except (FileNotFoundError, ProcessLookupError):  # the thread exited meanwhile (ESRCH)
            continue
    return False


@dataclass
class Server:
    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.log_path = self.data_dir.parent / f"server-{self.port}-{time.time_ns()}.log"
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [CADLINK, "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()}")

    def kill(self) -> None:
        """`kill -9` the server; its store process dies with it (wait until it has)."""
        assert self.proc is not None
        children = _children(self.proc.pid)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(process_running(pid) for pid in children):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server's processes {children} outlived it")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def login(self, email: str, password: str) -> dict[str, str]:
        r = httpx.post(self.url + "/api/v1/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        return {"Authorization": "Bearer " + r.json()["data"]["accessToken"]}


SENDER_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15"
)


def send_numbered(url: str, site: str, start: int, acked: list[int], stop: threading.Event) -> None:
    """Post batches of 5 events until `stop`: events without ids (a loader that stored one
    twice would give it two ids), each with its own page path `/p/<n>` from `start` on;
    records the numbers of those answered 204 in `acked`."""
    n = start
    with httpx.Client(timeout=5, headers={"User-Agent": SENDER_UA}) as client:
        while not stop.is_set():
            paths = list(range(n, n + 5))
            n += 5
            events = [{"eventType": "page_view", "pagePath": f"/p/{p}"} for p in paths]
            try:
                r = client.post(url + "/api/v1/collect", json={"siteId": site, "events": events})
            except httpx.HTTPError:
                continue  # the server is gone: nothing in this request was acknowledged
            if r.status_code == 204:
                acked.extend(paths)
