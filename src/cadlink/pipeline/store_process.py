"""The store process of `cadlink serve`: the loader and the event store, beside the web process.

Why a process of its own: the request path is a Python event loop, and a loader thread in
the same process takes its interpreter lock between DuckDB calls and shares its allocator
and caches. Measured with the single-event load of the ingest benchmark, the event loop cost
37 µs per request with the loader as a thread and 31 µs with the same loader in another
process (docs/benchmarks.md). DuckDB lets one process open its file, so the store process
owns it: it loads the spool (the web process only appends to it) and answers the web
process's reads (`store/events/remote.py`). A server store (PostgreSQL) is read directly.

The web process starts it (`StoreProcess.start`) and keeps it: one thread ("store-keeper")
spawns the child, polls its loader's numbers, restarts it if it dies (a crash in a native
library no longer takes the collect endpoint with it: accepted events wait in the spool),
and stops it. The child dies with the web process (`PR_SET_PDEATHSIG`), which is the thread
that spawned it, so `kill -9` of the server leaves no process holding the DuckDB file.

The child's side is pipeline/store_child.py; what both share, pipeline/store_status.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from multiprocessing.connection import Client, Connection
from typing import Any

from cadlink.config import Settings
from cadlink.ingest.buffer import Backlog
from cadlink.pipeline import store_address
from cadlink.pipeline.loader import LoaderStats
from cadlink.pipeline.store_status import READY, StoreStatus, embedded
from cadlink.store.events.remote import OK, RemoteEventStore, StoreUnavailable
from cadlink.store.events.staged import Identity
from cadlink.store_settings import StoreConfig

log = logging.getLogger(__name__)


@dataclass
class _Child:
    proc: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)


class StoreProcess:
    """Runs and keeps the store process; stands in for the loader in the web process."""

    def __init__(
        self,
        settings: Settings,
        backlog: Backlog,
        *,
        poll_interval: float = 0.2,
        ready_timeout: float = 120.0,
        stop_timeout: float = 120.0,
        status_timeout: float = 10.0,
        stuck_after: float = 60.0,
        on_identities: Callable[[list[Identity]], None] | None = None,
    ) -> None:
        self.settings = settings
        # Records the identified users the child's loader found (the child does not open
        # the metadata store); called on the keeper thread.
        self.on_identities = on_identities
        self.backlog = backlog
        self.poll_interval = poll_interval
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        # A poll is answered by its own thread of the child within milliseconds, whatever the
        # loader or a report is doing: no answer for `status_timeout` means it is stuck, and
        # after `stuck_after` it is killed and started again.
        self.status_timeout = status_timeout
        self.stuck_after = stuck_after
        # An abstract Unix socket (no file to clean up, no path length limit), guarded by a
        # key only this process and its child know.
        self.address = f"\0cadlink-store-{os.getpid()}-{secrets.token_hex(8)}"
        self.authkey = secrets.token_bytes(32)
        self.client = RemoteEventStore(self.address, self.authkey, engine=_engine(settings))
        self.on_loaded: Callable[[int], None] | None = None
        self.restarts = 0
        self._status = StoreStatus(LoaderStats(), 0, 0)
        self._earlier = LoaderStats()  # the counts of the store processes before this one
        self._raw, self._raw_pid = LoaderStats(), 0  # the current one's own, as it said
        self._polls: Connection | None = None  # the keeper's own connection to the child
        self._asked = False  # a poll was sent and not yet answered
        self._acked = 0  # the number of the current child's last identity recorded here
        self._keeper: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: str | None = None
        self._stopping = threading.Event()
        self._child: _Child | None = None

    # LoaderControl ----------------------------------------------------------------------------

    @property
    def stats(self) -> LoaderStats:
        """The loader's numbers as of the keeper's last poll (at most a poll interval old).
        Never a call to the child: `/metrics` and the health checks read this on the event
        loop, which must not wait for another process."""
        return self._status.stats

    @property
    def status(self) -> StoreStatus:
        return self._status

    def start(self) -> None:
        """Spawn the store process and wait until it serves (idempotent)."""
        if self._keeper is None:
            self._keeper = threading.Thread(target=self._keep, name="store-keeper", daemon=True)
            self._keeper.start()
        if not self._ready.wait(self.ready_timeout):
            raise RuntimeError(f"the store process did not start in {self.ready_timeout:.0f} s")
        if self._failure is not None:
            raise RuntimeError(self._failure)
        if _engine(self.settings) == "duckdb":
            store_address.advertise(self.settings.data_dir, self.address, self.authkey)

    def stop(self) -> None:
        """Stop the store process: its loader stores what the spool holds, then it exits."""
        self._stopping.set()
        store_address.withdraw(self.settings.data_dir, self.address)
        if self._keeper is not None:
            self._keeper.join(self.stop_timeout + 10)
        self.client.close()

    # keeper thread ----------------------------------------------------------------------------

    def _keep(self) -> None:
        backoff = 1.0
        try:
            self._failure = self._spawn()
        except Exception as e:
            self._failure = f"the store process could not start: {e}"
        self._ready.set()
        if self._failure is not None:
            return
        answered = time.monotonic()
        while not self._stopping.wait(self.poll_interval):
            child = self._child
            assert child is not None
            code = child.proc.poll()
            if code is not None:
                # A crash (DuckDB is native code) or a kill: start another one. Accepted events
                # wait in the spool meanwhile; reads answer 503.
                log.error("the store process exited (code %s); starting it again", code)
                self._stopping.wait(backoff if time.monotonic() - child.started < 60 else 0)
                backoff = min(30.0, backoff * 2)
                if self._stopping.is_set():
                    break
                failure = self._spawn()
                if failure is not None:
                    log.error("%s", failure)
                    self._stopping.wait(backoff)  # the next attempt waits its turn too
                else:
                    self.restarts += 1
                answered = time.monotonic()
                continue
            if self._poll():
                answered = time.monotonic()
            elif time.monotonic() - answered > self.stuck_after:
                # Alive but deaf (a deadlock in native code): a restart replays the spool from
                # the last committed batch, so nothing is lost.
                log.error(
                    "the store process has not answered for %.0f s; restarting it",
                    self.stuck_after,
                )
                child.proc.kill()
                child.proc.wait()
        self._shutdown()

    def _poll(self) -> bool:
        """Ask the child how it is doing (on the keeper's own connection, so a deaf child
        costs no new handshake); returns whether it answered."""
        conn = self._polls
        if conn is None:
            return False
        try:
            if not self._asked:
                conn.send(("status", (self._acked,)))
                self._asked = True
            if not conn.poll(self.status_timeout):
                return False  # asked already: the answer is read when it comes
            kind, value = conn.recv()
        except (OSError, EOFError):
            self._close_polls()
            return False
        self._asked = False
        if kind == OK:
            self._update(value)
        return True

    def _close_polls(self) -> None:
        if self._polls is not None:
            self._polls.close()
        self._polls, self._asked = None, False

    def _spawn(self) -> str | None:
        """Start a child and wait for it to serve; returns why it failed, or None."""
        config = {
            "settings": StoreConfig.of(self.settings).to_json(),
            "address": self.address,
            "authkey": self.authkey.hex(),
            "parent": os.getpid(),
        }
        proc = subprocess.Popen(
            # Not `-m`: classes pickled to the web process must live in a module, not in
            # the child's `__main__`.
            [sys.executable, "-c", "from cadlink.pipeline.store_child import main; main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(config).encode() + b"\n")
        proc.stdin.close()
        line = _read_line(proc.stdout, self.ready_timeout)
        proc.stdout.close()
        if line != READY:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            return line.removeprefix("error: ") or f"the store process exited ({proc.returncode})"
        self._child = _Child(proc)
        self._acked = 0  # a new child numbers its identities from 1
        self._close_polls()
        try:
            self._polls = Client(self.address, family="AF_UNIX", authkey=self.authkey)
        except (OSError, EOFError) as e:
            return f"the store process does not answer: {e}"
        self._poll()  # `status` is the child's from the start
        return None

    def _update(self, status: StoreStatus) -> None:
        self._record_identities(status)
        before = self._status.stats.events_stored
        if self._raw_pid and status.pid != self._raw_pid:
            # A new child counts from zero: what its predecessors counted carries on.
            self._earlier = _sum(self._earlier, self._raw)
        self._raw, self._raw_pid = status.stats, status.pid
        status = StoreStatus(
            _sum(self._earlier, status.stats),
            status.backlog_bytes,
            status.pid,
            status.rss_bytes,
        )
        self._status = status
        self.backlog.set(status.backlog_bytes)
        stored = status.stats.events_stored - before
        if stored > 0 and self.on_loaded is not None:
            try:
                self.on_loaded(stored)
            except Exception:
                log.exception("on_loaded failed")

    def _record_identities(self, status: StoreStatus) -> None:
        if not status.identities:
            return
        if self.on_identities is not None:
            try:
                self.on_identities(list(status.identities))
            except Exception:  # not acknowledged: the child sends them again
                log.exception("could not record identified users")
                return
        self._acked = status.identities_upto

    def _shutdown(self) -> None:
        child = self._child
        if child is None or child.proc.poll() is not None:
            return
        with contextlib.suppress(StoreUnavailable):
            self.client.call("stop", timeout=self.status_timeout)
        # The child stores what the spool holds, then waits (a while) until the identified
        # users it found meanwhile are recorded here: keep polling until it exits.
        deadline = time.monotonic() + self.stop_timeout
        while child.proc.poll() is None:
            if time.monotonic() > deadline:
                log.error("the store process did not stop in %.0f s; killing it", self.stop_timeout)
                child.proc.kill()
                break
            self._poll()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=self.poll_interval)
        child.proc.wait()
        self._close_polls()


_NOT_COUNTS = frozenset({"last_batch_at", "last_event_received_ms"})  # times, not counts


def _sum(earlier: LoaderStats, later: LoaderStats) -> LoaderStats:
    """The counts of two store processes, one after the other (every counter of
    `LoaderStats`, whatever it adds later); times from the later one once it has any."""
    newest = later if later.last_batch_at else earlier
    summed = {
        f.name: getattr(earlier, f.name) + getattr(later, f.name)
        for f in fields(LoaderStats)
        if f.name not in _NOT_COUNTS
    }
    return LoaderStats(
        **summed,
        last_batch_at=newest.last_batch_at,
        last_event_received_ms=max(earlier.last_event_received_ms, later.last_event_received_ms),
    )


def _engine(settings: Settings) -> str:
    return "duckdb" if embedded(settings) else "postgresql"


def _read_line(stream: Any, timeout: float) -> str:
    """One line from a child's stdout, or "" if it closed it or the time ran out."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = stream.fileno()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return ""
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\n", 1)[0].decode(errors="replace").strip()
