"""The store process itself (its keeper in the web process is pipeline/store_process.py).

`main()` reads its configuration on stdin, dies with the web process's keeper thread, opens
the event store and the parsers (it is an entry point, like cli.py: it wires them with
`cadlink.services`), starts the loader and answers the web process: one thread per
connection, only the reads of `EventStore` (the loader is the only writer), its loader's
numbers and the users it identified (`status`) and `stop`. It never opens the metadata
store: the web process records the identified users. Exceptions go back as they are when the
web process can unpickle them without DuckDB, else as a `RemoteError` naming them.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection, Listener
from typing import Any

from cadlink.heap import map_large_buffers, release_free_memory
from cadlink.ingest.buffer import Backlog
from cadlink.pipeline.store_status import READY, IdentityOutbox, StoreStatus
from cadlink.store.events.base import EventStore
from cadlink.store.events.remote import BATCH, END, ERROR, OK, RemoteError
from cadlink.store_settings import StoreConfig

log = logging.getLogger(__name__)

# The reads the web process may ask for (the write half stays in this process).
READS = frozenset(
    {"fetch", "list_events", "list_sessions", "dropped", "dead_letters", "count_events"}
    | {"ping", "memory"}
)
_PR_SET_PDEATHSIG = 1


class _Server:
    """Answers the web process: one thread per connection (the client pools them)."""

    def __init__(self, store: EventStore, status: Callable[[int], StoreStatus]) -> None:
        self.store = store
        self.status = status
        self.stopping = threading.Event()

    def serve(self, listener: Listener) -> None:
        while True:
            try:
                conn = listener.accept()
            except (OSError, EOFError):
                if self.stopping.is_set():
                    return
                continue  # a client that failed the handshake
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    method, args = conn.recv()
                except (OSError, EOFError):
                    return
                try:
                    self._dispatch(conn, method, args)
                except (OSError, EOFError):
                    return

    def _dispatch(self, conn: Connection, method: str, args: tuple[Any, ...]) -> None:
        if method == "stream":
            self._stream(conn, args)
            return
        try:
            if method == "status":
                value: Any = self.status(*args)
            elif method == "stop":
                self.stopping.set()
                value = None
            elif method == "erase_visitors":  # a data subject's erasure (data_subjects.py)
                value = self.store.erase_visitors(*args)
            elif method == "copy_file":  # the DuckDB store's alone (a backup)
                copy = getattr(self.store, "copy_file", None)
                if copy is None:
                    raise ValueError("this event store has no file to copy")
                value = copy(*args)
            elif method in READS:
                value = getattr(self.store, method)(*args)
            else:
                raise ValueError(f"the store process does not answer {method!r}")
        except Exception as e:
            conn.send((ERROR, _sendable(e)))
            return
        conn.send((OK, value))

    def _stream(self, conn: Connection, args: tuple[Any, ...]) -> None:
        try:
            schema, batches = self.store.stream(*args)
        except Exception as e:
            conn.send((ERROR, _sendable(e)))
            return
        conn.send((OK, schema))
        try:
            for batch in batches:
                conn.send((BATCH, batch))
        except (OSError, EOFError):
            raise
        except Exception as e:
            conn.send((ERROR, _sendable(e)))
            return
        conn.send((END, None))


def _sendable(error: Exception) -> Exception:
    """`error` as it is if the web process can unpickle it without importing the store's
    libraries (DuckDB's exceptions would load DuckDB there), else a `RemoteError` saying it."""
    module = type(error).__module__
    if module == "builtins" or module.startswith("cadlink."):
        try:
            pickle.dumps(error)
        except Exception as e:
            log.debug("cannot send %r as it is: %s", error, e)
        else:
            return error
    return RemoteError(f"{type(error).__name__}: {error}")


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the web process's keeper thread ends (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def _rss_bytes() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return 0


def run(
    settings: StoreConfig, address: str, authkey: bytes, ready: Callable[[], None], parent: int
) -> None:
    """The store process: open the stores, serve the web process, load until told to stop."""
    from cadlink.services import build_loader, open_events_waiting

    map_large_buffers()  # the loader's batches: 16 MiB each, read from the spool
    store = open_events_waiting(settings)
    backlog = Backlog()
    # Identified users go to the web process, which records them in the metadata store:
    # this process never opens it (nor loads SQLAlchemy: 25 MB).
    outbox = IdentityOutbox()
    loader = build_loader(settings, store, backlog, outbox.add, spool_first=True)

    def status(acked: int = 0) -> StoreStatus:
        identities, upto = outbox.take(acked)
        return StoreStatus(
            replace(loader.stats), backlog.bytes, os.getpid(), _rss_bytes(), identities, upto
        )

    server = _Server(store, status)
    # The web process stops this one (after its last request): a signal meant for the server
    # (Ctrl-C reaches the whole process group, systemd signals the whole unit) is not for us,
    # or the keeper would see an exit it did not ask for and start another store process.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    listener = Listener(address, family="AF_UNIX", authkey=authkey)
    threading.Thread(target=server.serve, args=(listener,), name="store-rpc", daemon=True).start()
    gc.collect()
    gc.freeze()  # as in the web process: the collector no longer walks what lives forever
    release_free_memory()
    loader.start()
    ready()
    while not server.stopping.wait(1.0):
        if os.getppid() != parent:  # orphaned (should the death signal not have come)
            break
    loader.stop()  # stores what the spool holds
    if not outbox.wait_recorded(timeout=10.0):
        log.warning("the web process did not take the last identified users")
    store.close()
    listener.close()


def main() -> None:
    config = json.loads(sys.stdin.readline())
    parent = int(config["parent"])
    _die_with_parent(parent)
    settings = StoreConfig.from_json(config["settings"])
    from cadlink.logs import configure_logging

    configure_logging(settings.log_level)

    def ready() -> None:
        sys.stdout.write(READY + "\n")
        sys.stdout.flush()

    try:
        run(settings, config["address"], bytes.fromhex(config["authkey"]), ready, parent)
    except Exception as e:
        log.exception("the store process failed")
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.write(f"error: {e}\n".replace("\n", " ").rstrip() + "\n")
            sys.stdout.flush()
        sys.exit(1)
