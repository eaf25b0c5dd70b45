"""Loader batches prepared for the store: buffer records read, decoded and enriched.

The loader writes batches; something has to prepare them first, and that work is pure Python
(about as much CPU per event as accepting the event). Two sources do it:

- `InlineSource` prepares a batch in the loader's own thread;
- `ChildSource` has a child process (`enrich_worker.py`) prepare it and send it back as Arrow,
  so that the work never holds the serving process's interpreter lock (the collect path
  needs it for every request), runs beside the DuckDB writes of the previous batch, and keeps
  the parsers' memory out of the server. The child reads the buffer but commits nothing: it
  is stateless, each request names the positions to read from, and the loader commits the
  positions with the rows, as before. A child that dies is started again; what it had read
  but not delivered is read again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import IO, Protocol

import msgspec
import pyarrow as pa

from cadlink.events import Envelope
from cadlink.ingest.buffer import SpoolReader
from cadlink.pipeline.enrichment import Enriched, Enricher, Identity
from cadlink.store.events.base import EVENT_ARROW_SCHEMA

log = logging.getLogger(__name__)

_decoder = msgspec.msgpack.Decoder(Envelope)
_LENGTH = struct.Struct("<I")
_CHUNK_EVENTS = 2_000  # events decoded and enriched at a time


@dataclass
class PreparedBatch:
    """Enriched rows of the buffer records after some positions, and where those end."""

    rows: pa.Table
    drops: dict[tuple[str, date, str], int] = field(default_factory=dict)
    identities: list[Identity] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)  # per segment read: its new end
    records: int = 0  # buffer records read; 0 when there was nothing new
    events: int = 0  # events in those records, bots included
    newest_received_ms: int = 0
    # Records that cannot be loaded (undecodable, or enrichment fails on them), with why:
    # stored as dead letters with the batch instead of blocking every batch after them.
    rejected: list[tuple[bytes, str]] = field(default_factory=list)


def prepare(
    reader: SpoolReader, enricher: Enricher, positions: dict[str, int], max_events: int
) -> PreparedBatch:
    """Read up to about `max_events` events after `positions`, decode and enrich them."""
    batch = PreparedBatch(EVENT_ARROW_SCHEMA.empty_table())
    tables = list(prepare_chunks(reader, enricher, positions, max_events, batch))
    if tables:
        batch.rows = pa.concat_tables(tables)
    return batch


def prepare_chunks(
    reader: SpoolReader,
    enricher: Enricher,
    positions: dict[str, int],
    max_events: int,
    batch: PreparedBatch,
) -> Iterator[pa.Table]:
    """Yield the enriched rows of up to about `max_events` events after `positions`, a few
    thousand events at a time, and fill in the rest of `batch` (all but its rows) as it goes.

    Reading, decoding and enriching a chunk at a time bounds this process's memory by the
    chunk, not the batch: decoded events are Python objects several times the size of their
    Arrow rows (the child process keeps only each chunk's rows, as Arrow IPC).
    """
    at = dict(positions)
    while batch.events < max_events:
        wanted = min(_CHUNK_EVENTS, max_events - batch.events)
        part = reader.read(at, wanted)
        if not part.payloads:
            return
        # A short read reached the end of the buffer: stop there. Reading on would chase the
        # server's appends in chunks of a few records, each with a chunk's fixed cost (the
        # child's CPU per event at 9 k requests/s doubled); they are the next batch's.
        last = part.events < wanted
        at |= part.positions
        batch.positions |= part.positions
        batch.records += len(part.payloads)
        batch.events += part.events
        payloads, envelopes = _decode(part.payloads, batch.rejected)
        del part
        for enriched in _enrich(enricher, payloads, envelopes, batch.rejected):
            for key, n in enriched.drops.items():
                batch.drops[key] = batch.drops.get(key, 0) + n
            batch.identities.extend(enriched.identities)
            yield enriched.rows
        newest = max((e.received_ms for e in envelopes), default=0)
        batch.newest_received_ms = max(batch.newest_received_ms, newest)
        del payloads, envelopes
        if last:
            return


def _decode(
    payloads: list[bytes], rejected: list[tuple[bytes, str]]
) -> tuple[list[bytes], list[Envelope]]:
    """The envelopes of `payloads` and the payloads they came from; a record that does not
    decode (it passed its checksum, so a writer of another version wrote it) is rejected."""
    try:
        return payloads, [_decoder.decode(p) for p in payloads]
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    kept: list[bytes] = []
    envelopes: list[Envelope] = []
    for payload in payloads:
        try:
            envelopes.append(_decoder.decode(payload))
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            log.error("a buffer record does not decode (%s): kept as a dead letter", e)
            rejected.append((payload, f"undecodable: {e}"))
            continue
        kept.append(payload)
    return kept, envelopes


def _enrich(
    enricher: Enricher,
    payloads: list[bytes],
    envelopes: list[Envelope],
    rejected: list[tuple[bytes, str]],
) -> list[Enriched]:
    """Enrich `envelopes` at once; if that fails, one by one, rejecting those that fail, so
    that one bad record does not stop the loader for good (it would fail every retry)."""
    try:
        return [enricher.enrich(envelopes)]
    except MemoryError:
        raise
    except Exception:
        log.warning("enriching %d buffer records failed; trying them one by one", len(envelopes))
    parts: list[Enriched] = []
    for payload, envelope in zip(payloads, envelopes, strict=True):
        try:
            parts.append(enricher.enrich([envelope]))
        except MemoryError:
            raise
        except Exception as e:
            log.exception("enrichment failed on a buffer record: kept as a dead letter")
            rejected.append((payload, f"enrichment failed: {e!r}"[:1000]))
    return parts


class BatchSource(Protocol):
    def next(self, positions: dict[str, int], max_events: int) -> PreparedBatch:
        """The batch after `positions` (committed buffer positions)."""

    def prefetch(self, positions: dict[str, int], max_events: int) -> None:
        """Start preparing the batch after `positions`, if the source can work ahead."""

    def forget(self, segments: list[str]) -> None:
        """The loader deleted these fully loaded segments and forgot their positions."""

    def close(self) -> None: ...


class InlineSource:
    """Prepares each batch in the calling thread."""

    def __init__(self, reader: SpoolReader, enricher: Enricher) -> None:
        self.reader = reader
        self.enricher = enricher

    def next(self, positions: dict[str, int], max_events: int) -> PreparedBatch:
        return prepare(self.reader, self.enricher, positions, max_events)

    def prefetch(self, positions: dict[str, int], max_events: int) -> None:
        pass

    def forget(self, segments: list[str]) -> None:
        pass

    def close(self) -> None:
        pass


# -- the child process's wire format ------------------------------------------------------
# Both directions carry frames: a little-endian u32 length, then that many bytes. A request is
# one msgpack frame; a response is one Arrow IPC stream frame per chunk of rows, an empty
# frame, then a msgpack header frame with the rest of the batch (or an error, and then no
# rows).


def write_frame(out: IO[bytes], payload: bytes | pa.Buffer) -> None:
    out.write(_LENGTH.pack(len(payload)))
    out.write(payload)


def read_frame(stream: IO[bytes]) -> bytes:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the enrichment process closed its pipe")
    (length,) = _LENGTH.unpack(head)
    payload = stream.read(length)
    if len(payload) < length:
        raise EOFError("the enrichment process closed its pipe mid-frame")
    return payload


def encode_rows(rows: pa.Table) -> pa.Buffer:
    """One chunk of rows as an Arrow IPC stream (written to the pipe as it is, not copied)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return sink.getvalue()


def encode_header(request_id: int, batch: PreparedBatch) -> bytes:
    """Everything of `batch` but its rows."""
    header = {
        "id": request_id,
        "positions": batch.positions,
        "records": batch.records,
        "events": batch.events,
        "newest": batch.newest_received_ms,
        "drops": [[s, d.isoformat(), r, n] for (s, d, r), n in batch.drops.items()],
        "identities": [
            [i.site_id, i.user_id, i.traits, int(i.seen_at.timestamp() * 1000)]
            for i in batch.identities
        ],
        "rejected": [[payload, why] for payload, why in batch.rejected],
    }
    return msgspec.msgpack.encode(header)


def decode_batch(header_bytes: bytes, chunks: list[bytes]) -> tuple[int, PreparedBatch]:
    header = msgspec.msgpack.decode(header_bytes)
    if "error" in header:
        raise RuntimeError(f"the enrichment process failed: {header['error']}")
    tables = [pa.ipc.open_stream(chunk).read_all() for chunk in chunks]
    batch = PreparedBatch(
        rows=pa.concat_tables(tables) if tables else EVENT_ARROW_SCHEMA.empty_table(),
        drops={(s, date.fromisoformat(d), r): n for s, d, r, n in header["drops"]},
        identities=[
            Identity(s, u, t, datetime.fromtimestamp(ms / 1000, UTC))
            for s, u, t, ms in header["identities"]
        ],
        positions={str(k): int(v) for k, v in header["positions"].items()},
        records=int(header["records"]),
        events=int(header["events"]),
        newest_received_ms=int(header["newest"]),
        rejected=[(bytes(p), str(why)) for p, why in header.get("rejected", [])],
    )
    return int(header["id"]), batch


@dataclass(frozen=True)
class WorkerConfig:
    """What the child needs to build its reader and enricher."""

    spool_dir: str
    late_event_hours: int
    geoip_country_path: str | None
    geoip_mmdb_path: str | None
    log_level: str = "warning"
    nice: int = 10  # below the server: under overload, requests go first and the buffer fills

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        return cls(**json.loads(text))


class ChildSource:
    """Prepares batches in a child process (`python -m cadlink.pipeline.enrich_worker`).

    At most one request is outstanding: `prefetch` asks for the batch after the one being
    written, and `next` uses that answer only if it was asked for exactly the positions the
    loader has now committed (a failed write leaves them unchanged: the answer is dropped).
    Used from one thread at a time.
    """

    def __init__(self, config: WorkerConfig, start_timeout: float = 120.0) -> None:
        self.config = config
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._next_id = 0
        self._pending: tuple[int, dict[str, int], int] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def next(self, positions: dict[str, int], max_events: int) -> PreparedBatch:
        self._ensure_running()
        if self._pending is not None and not self._answers(positions, max_events):
            self._receive()  # asked for other positions: drop the answer
        if self._pending is None:
            self._send(positions, max_events)
        return self._receive()

    def prefetch(self, positions: dict[str, int], max_events: int) -> None:
        if self._pending is not None:
            return
        try:
            self._ensure_running()
            self._send(positions, max_events)
        except (OSError, EOFError):
            self._stop()  # `next` starts a new one

    def forget(self, segments: list[str]) -> None:
        # Deleted segments were fully loaded: reading them adds nothing to the pending answer.
        if self._pending is not None:
            for name in segments:
                self._pending[1].pop(name, None)

    def close(self) -> None:
        self._stop()

    def _answers(self, positions: dict[str, int], max_events: int) -> bool:
        assert self._pending is not None
        _, asked, asked_max = self._pending
        return asked_max == max_events and asked == positions

    def _send(self, positions: dict[str, int], max_events: int) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._next_id += 1
        request = {"id": self._next_id, "positions": positions, "max": max_events}
        try:
            write_frame(self._proc.stdin, msgspec.msgpack.encode(request))
            self._proc.stdin.flush()
        except OSError:
            self._stop()
            raise
        self._pending = (self._next_id, dict(positions), max_events)

    def _receive(self) -> PreparedBatch:
        assert self._proc is not None and self._proc.stdout is not None
        assert self._pending is not None
        expected = self._pending[0]
        self._pending = None
        try:
            chunks = []
            while chunk := read_frame(self._proc.stdout):
                chunks.append(chunk)
            request_id, batch = decode_batch(read_frame(self._proc.stdout), chunks)
        except (OSError, EOFError, ValueError, pa.ArrowException, msgspec.DecodeError):
            self._stop()
            raise
        if request_id != expected:
            self._stop()
            raise RuntimeError(f"enrichment process answered {request_id}, not {expected}")
        return batch

    def _ensure_running(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        if self._proc is not None:
            log.error(
                "the enrichment process exited (%s); starting it again", self._proc.returncode
            )
        self._stop()
        # Our own interpreter and module; the argument is our own configuration.
        self._proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "cadlink.pipeline.enrich_worker", self.config.to_json()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self._proc.stdout is not None
        try:
            hello = msgspec.msgpack.decode(read_frame(self._proc.stdout))
        except (OSError, EOFError, msgspec.DecodeError):
            self._stop()
            raise
        if hello != {"ready": True}:
            self._stop()
            raise RuntimeError(f"unexpected greeting from the enrichment process: {hello!r}")

    def _stop(self) -> None:
        self._pending = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            proc.wait(timeout=5)  # closing its input makes it exit
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
