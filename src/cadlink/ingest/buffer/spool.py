"""Append-only spool files: the embedded mode's durable buffer.

Layout: `<spool dir>/<ns timestamp>-<spool id>-<pid>-<seq>.spool`, each a sequence of
records, one per line: a record is one line of JSON (JSON escapes every newline inside a
string, so a record holds none) ending in `\\n`. The loader hands whole runs of lines to
DuckDB, which splits and parses them in C++: nothing in Python touches a record one at a time.

A record is acknowledged only after one `write()` of the whole line returned, so after
`kill -9` every acknowledged record is complete in the page cache. A torn tail (the process
died inside `write`, or the machine lost power before a sync) has no final newline: it was
never acknowledged, and the reader skips it once the segment is sealed.

The writer holds an exclusive `flock` on its active segment; the kernel drops the lock when
the process dies, which is how the reader knows a segment is sealed and may be deleted once
fully loaded.

The spool id (`spool.id`, made on first use) keeps each spool's segments apart in a store
that several spools load into (servers on other hosts with one PostgreSQL store, `cadlink
demo`'s private spool): a loader takes only its own spool's positions for its own, and
forgets only those (of segments named before spools had ids, `<ns>-<pid>-<seq>.spool`, it
takes those it holds).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cadlink.ingest.buffer.base import Backlog, BufferFull

log = logging.getLogger(__name__)

_NEWLINE = 10
_CHUNK = 1 << 20  # the reader's unit when it must read on to find the end of a record
SUFFIX = ".spool"
ID_FILE = "spool.id"


def spool_id(directory: Path) -> str:
    """The id of the spool in `directory` (12 hex digits), made by whichever process asks
    first (the web process's writer or the store process's reader: `os.link` lets one win)."""
    path = directory / ID_FILE
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip()
    new = secrets.token_hex(6)
    tmp = directory / f".{ID_FILE}.{os.getpid()}.{new}"
    tmp.write_text(new + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def segment_spool(name: str) -> str | None:
    """The spool id in a segment's name; "" for a name from before spools had ids; None
    for a name that is not a segment's."""
    if not name.endswith(SUFFIX):
        return None
    parts = name[: -len(SUFFIX)].split("-")
    if len(parts) == 3:
        return ""
    return parts[1] if len(parts) == 4 else None


class SpoolWriter:
    """Appends records to the active segment; rotates by size; optional fsync policy.

    `put` is called from one thread (the event loop) and takes no lock: every request pays
    for it, and a lock and its bookkeeping cost the request path as much as the write itself
    (2.2 µs in the ingest benchmark). The syncer thread only reads the active descriptor
    (duplicating it) and receives rotated segments through a thread-safe queue, so rotation
    never closes a descriptor it may be using.
    """

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = 16 << 20,
        max_backlog_bytes: int = 1 << 30,
        fsync: str = "interval",
        backlog: Backlog | None = None,
    ) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.max_backlog_bytes = max_backlog_bytes
        self.fsync = fsync
        self.backlog = backlog or Backlog()
        self.spool_id = spool_id(directory)
        self._seq = 0
        self._fd = -1
        self._size = 0
        self._dirty = False
        self._sealing: queue.SimpleQueue[int] = queue.SimpleQueue()  # rotated, to seal
        self._syncer: threading.Thread | None = None
        self._open_segment()
        self._stop = threading.Event()
        if fsync == "interval":
            self._syncer = threading.Thread(target=self._sync_loop, name="spool-fsync", daemon=True)
            self._syncer.start()

    def _open_segment(self) -> None:
        self._seq += 1
        name = f"{time.time_ns():020d}-{self.spool_id}-{os.getpid()}-{self._seq:06d}{SUFFIX}"
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        old = self._fd
        self._fd, self._size = fd, 0
        if old < 0:
            return
        if self._syncer is not None:
            # Syncing a full segment takes tens of milliseconds: the request that filled it
            # would wait for them. The syncer does it within a second, then closes it.
            self._sealing.put(old)
            return
        if self.fsync == "always":
            os.fsync(old)
        os.close(old)  # releases the lock: the old segment is sealed

    def put(self, record: bytes | bytearray) -> None:
        """Append one record (one line ending in a newline, none inside); returns once it
        would survive the death of this process. From one thread at a time."""
        if self.backlog.bytes >= self.max_backlog_bytes:
            raise BufferFull("event buffer is full; the loader is behind", retry_after=5)
        if not record or record[-1] != _NEWLINE:
            raise ValueError("a spool record is one line ending in a newline")
        written = os.write(self._fd, record)
        if written != len(record):  # disk full or similar: never acknowledge a torn record
            raise BufferFull("could not write the event buffer (disk full?)", retry_after=30)
        if self.fsync == "always":
            os.fsync(self._fd)
        self._dirty = True
        self._size += written
        if self._size >= self.segment_bytes:
            self._open_segment()
        self.backlog.add(written)

    defers = False  # an append is a `write()`: nothing to gain by keeping records

    def defer(self, record: bytes | bytearray) -> None:
        self.put(record)

    def flush(self) -> None:
        """Nothing kept: `defer` appends at once."""

    def _sync_loop(self) -> None:
        while not self._stop.wait(1.0):
            self.sync()

    def sync(self) -> None:
        """fsync what was appended since the last call, and seal the segments rotated since."""
        fd = -1
        if self._dirty and self._fd >= 0:
            self._dirty = False  # before the dup: an append after it marks it dirty again
            # A duplicate descriptor syncs the same file and stays valid whatever the writer
            # does meanwhile (a rotated segment's descriptor is closed only below).
            with contextlib.suppress(OSError):
                fd = os.dup(self._fd)
        while True:
            try:
                old = self._sealing.get_nowait()
            except queue.Empty:
                break
            try:
                os.fsync(old)
            finally:
                os.close(old)  # releases the lock: the segment is sealed
        if fd >= 0:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def depth(self) -> dict[str, int]:
        return {"bytes": self.backlog.bytes}

    def close(self) -> None:
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join(timeout=10)
        self.sync()
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


@dataclass
class ReadBatch:
    """Records read from the spool and the positions to commit once they are stored.

    `data` holds whole records (lines), in spool order, in one buffer: a batch is handed to
    the store as it is, and the store may empty it once it has its own copy (staging.py), so
    that the loader does not hold 16 MiB twice. `spans` says where they came from, so that
    they can be read again (`SpoolReader.reread`).
    """

    data: bytearray = field(default_factory=bytearray)
    spans: list[tuple[str, int, int]] = field(default_factory=list)  # (segment, start, end)
    positions: dict[str, int] = field(default_factory=dict)
    records: int = 0
    size: int = 0  # bytes of whole records in `data`
    # Torn tails skipped in sealed segments: (segment, bytes); never acknowledged records.
    torn: list[tuple[str, int]] = field(default_factory=list)
    more: bool = False  # stopped at the budget with whole records left to read

    @property
    def records_list(self) -> list[bytes]:
        """Every record, without its newline (for tests and inspection)."""
        return bytes(self.data).split(b"\n")[:-1]


def is_sealed(path: Path) -> bool:
    """True when no live writer holds the segment (its writer rotated it or died)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops any lock we took
    return True


class SpoolReader:
    """Reads complete records after committed positions; deletes loaded, sealed segments."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.spool_id = spool_id(directory)

    def owns(self, position: str) -> bool:
        """Whether a position in the store (a segment's name) is this spool's to keep or
        forget: its segments', and those named before spools had ids that it holds (one
        named so that it does not hold may be another spool's: left alone)."""
        spool = segment_spool(position)
        return spool == self.spool_id or (spool == "" and (self.directory / position).exists())

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    def read(self, positions: dict[str, int], max_bytes: int) -> ReadBatch:
        """Read whole records after `positions`, about `max_bytes` of them (at least one).

        The records go into one buffer, sized from the segments' lengths: each segment is
        read with one `readinto` of what is wanted, without a copy; only a record cut by the
        budget costs another read to find its end.
        """
        batch = ReadBatch()
        budget = max(max_bytes, 1)
        wanted: list[tuple[Path, int, int]] = []  # (segment, offset, size) in spool order
        room = 0
        for path in self.segments():
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            offset = positions.get(path.name, 0)
            if size <= offset:
                continue
            if room >= budget:
                batch.more = True  # whole segments are waiting beyond the budget
                break
            wanted.append((path, offset, size))
            room += size - offset
        # What is kept of a segment never exceeds what was read of it, so the records of
        # every segment fit after those of the ones before (the size is the stat's, above).
        batch.data = bytearray(min(room, budget))
        for path, offset, size in wanted:
            if batch.size >= budget:
                batch.more = True
                break
            try:
                fh = path.open("rb", buffering=0)
            except FileNotFoundError:  # deleted meanwhile: it was fully loaded
                continue
            with fh:
                if not self._read_segment(fh, path, offset, size, batch, budget - batch.size):
                    break  # records are taken in spool order: the rest of this one first
        del batch.data[batch.size :]
        return batch

    @staticmethod
    def _read_segment(
        fh: io.FileIO, path: Path, offset: int, size: int, batch: ReadBatch, budget: int
    ) -> bool:
        """Add the whole records of one segment after `offset` (up to `size`, about `budget`
        bytes) to `batch.data` after its records; True when it took everything up to `size`."""
        fh.seek(offset)
        data, base = batch.data, batch.size
        want = min(size - offset, max(budget, 1))
        if len(data) < base + want:
            data.extend(bytes(base + want - len(data)))
        with memoryview(data) as view, view[base : base + want] as into:
            got = fh.readinto(into) or 0
        last = data.rfind(b"\n", base, base + got)
        end = last + 1 - base if last >= 0 else 0
        # A record longer than what is left of the budget: read on to its end only if the
        # batch would otherwise be empty (it must make progress); else it is the next one's.
        while end == 0 and not batch.size and offset + got < size:
            more = fh.read(min(_CHUNK, size - offset - got))
            if not more:
                break
            del data[base + got :]
            data += more
            newline = more.find(b"\n")
            if newline >= 0:
                end = got + newline + 1
            got += len(more)
        if end == 0 and not got:
            return True
        at_eof = offset + got >= size
        if (
            end < got
            and at_eof
            and data.find(b"\n", base + end, base + got) < 0
            and is_sealed(path)
        ):
            # The tail after the last newline will never be completed: its writer is gone.
            torn = got - end
            log.warning("spool segment %s ends in a torn record (%d bytes); skipped", path, torn)
            batch.torn.append((path.name, torn))
            if end:
                _keep(batch, path.name, offset, end)
            batch.positions[path.name] = offset + got
            return True
        if end == 0:  # a record still being written
            return False
        _keep(batch, path.name, offset, end)
        batch.positions[path.name] = offset + end
        if offset + end >= size:
            return True
        batch.more = offset + got < size  # the budget, not the end of what is written
        return False

    def reread(self, spans: list[tuple[str, int, int]]) -> bytes:
        """The records of `spans` (`ReadBatch.spans`) read again: their segments stay until
        the positions after them are committed (`cleanup`)."""
        parts: list[bytes] = []
        for name, start, end in spans:
            with (self.directory / name).open("rb", buffering=0) as fh:
                fh.seek(start)
                part = fh.read(end - start) or b""
            if len(part) != end - start:
                raise OSError(f"spool segment {name} is shorter than what was read from it")
            parts.append(part)
        return b"".join(parts)

    def cleanup(self, positions: dict[str, int]) -> list[str]:
        """Delete sealed segments whose every byte is committed; returns their names."""
        removed: list[str] = []
        for path in self.segments():
            committed = positions.get(path.name, 0)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            # Re-check the size after the lock test: a writer may have appended before dying.
            if committed >= size and is_sealed(path) and path.stat().st_size == size:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                removed.append(path.name)
        return removed

    def unloaded_bytes(self, positions: dict[str, int]) -> int:
        total = 0
        for path in self.segments():
            with contextlib.suppress(FileNotFoundError):
                total += max(0, path.stat().st_size - positions.get(path.name, 0))
        return total


def _keep(batch: ReadBatch, segment: str, offset: int, end: int) -> None:
    """Count the `end` bytes of whole records just read from `segment` at `offset` (they
    are in `batch.data` after the batch's records so far)."""
    batch.records += batch.data.count(b"\n", batch.size, batch.size + end)
    batch.size += end
    batch.spans.append((segment, offset, offset + end))
