"""Append-only spool files: the embedded mode's durable buffer.

Layout: `<spool dir>/<ns timestamp>-<pid>-<seq>.spool`, each a sequence of records
`[u32 length][u32 crc32][u32 events][payload]` (the event count lets the loader size its
batches in events without decoding). A record is acknowledged only after one `write()` of the
whole record returned, so after `kill -9` every acknowledged record is complete in the page
cache; a torn tail (the process died inside `write`) was never acknowledged and fails its CRC.

The writer holds an exclusive `flock` on its active segment; the kernel drops the lock when
the process dies, which is how the reader knows a segment is sealed and may be deleted once
fully loaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cadlink.ingest.buffer.base import Backlog, BufferFull

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<III")
_CHUNK = 1 << 20  # how much of a segment the reader takes at a time
SUFFIX = ".spool"


def _segment_name(seq: int) -> str:
    return f"{time.time_ns():020d}-{os.getpid()}-{seq:06d}{SUFFIX}"


class SpoolWriter:
    """Appends records to the active segment; rotates by size; optional fsync policy."""

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
        self._lock = threading.Lock()
        self._seq = 0
        self._fd = -1
        self._size = 0
        self._dirty = False
        self._envelopes = 0
        self._open_segment()
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        if fsync == "interval":
            self._syncer = threading.Thread(target=self._sync_loop, name="spool-fsync", daemon=True)
            self._syncer.start()

    def _open_segment(self) -> None:
        self._seq += 1
        path = self.directory / _segment_name(self._seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        old = self._fd
        self._fd, self._size = fd, 0
        if old >= 0:
            os.fsync(old)
            os.close(old)  # releases the lock: the old segment is sealed

    def put(self, payload: bytes, events: int = 1) -> None:
        """Append one record; returns once it would survive the death of this process."""
        if self.backlog.bytes >= self.max_backlog_bytes:
            raise BufferFull("event buffer is full; the loader is behind", retry_after=5)
        record = _HEADER.pack(len(payload), zlib.crc32(payload), events) + payload
        with self._lock:
            written = os.write(self._fd, record)
            if written != len(record):  # disk full or similar: never acknowledge a torn record
                raise BufferFull("could not write the event buffer (disk full?)", retry_after=30)
            if self.fsync == "always":
                os.fsync(self._fd)
            self._size += written
            self._dirty = True
            self._envelopes += 1
            if self._size >= self.segment_bytes:
                self._open_segment()
        self.backlog.add(written)

    def _sync_loop(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                if not self._dirty or self._fd < 0:
                    continue
                # fsync can take tens of milliseconds; holding the lock through it would stall
                # every request's append. A duplicate descriptor syncs the same file and stays
                # valid even if the segment rotates meanwhile.
                fd = os.dup(self._fd)
                self._dirty = False
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def depth(self) -> dict[str, int]:
        return {"bytes": self.backlog.bytes}

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1


@dataclass
class ReadBatch:
    """Envelopes read from the spool and the positions to commit once they are stored."""

    payloads: list[bytes] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    events: int = 0


def _is_sealed(path: Path) -> bool:
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

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    def read(self, positions: dict[str, int], max_events: int) -> ReadBatch:
        """Read records after `positions` until about `max_events` events are collected.

        Reads a segment a chunk at a time, so a batch costs what it holds, not what is left
        of the segment (up to `segment_bytes`) behind it.
        """
        batch = ReadBatch()
        for path in self.segments():
            offset = positions.get(path.name, 0)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size <= offset:
                continue
            try:
                fh = path.open("rb")
            except FileNotFoundError:  # deleted meanwhile: it was fully loaded
                continue
            with fh:
                if self._read_segment(fh, path.name, offset, size, batch, max_events):
                    return batch
        return batch

    @staticmethod
    def _read_segment(
        fh: BinaryIO, name: str, offset: int, size: int, batch: ReadBatch, max_events: int
    ) -> bool:
        """Adds the complete records of one segment after `offset` (up to `size`) to `batch`;
        True once it holds `max_events` events."""
        fh.seek(offset)
        data = b""
        start = offset  # file offset of data[0]
        pos = 0
        while True:
            if pos + _HEADER.size <= len(data):
                length, crc, events = _HEADER.unpack_from(data, pos)
                end = pos + _HEADER.size + length
            else:
                end = pos + _HEADER.size
            if end > len(data):  # need more bytes: keep the unread tail, read the next chunk
                missing = size - (start + len(data))
                if missing <= 0:
                    return False  # a record still being written, or a torn unacknowledged tail
                more = fh.read(min(missing, max(_CHUNK, end - pos)))
                if not more:  # shorter than it was a moment ago: nothing more to take
                    return False
                data = data[pos:] + more
                start += pos
                pos = 0
                continue
            payload = data[pos + _HEADER.size : end]
            if zlib.crc32(payload) != crc:
                log.error("spool record failed its checksum; skipping the rest of %s", name)
                batch.positions[name] = size
                return False
            batch.payloads.append(payload)
            batch.events += events
            pos = end
            batch.positions[name] = start + pos
            if batch.events >= max_events:
                return True

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
            if committed >= size and _is_sealed(path) and path.stat().st_size == size:
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
