"""What every buffer offers the collect endpoint."""

from __future__ import annotations

from typing import Protocol


class BufferFull(Exception):
    """The buffer holds as much as it may; the client should retry after `retry_after` s."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BufferWriter(Protocol):
    # Whether `defer` keeps records for `flush` (a store a round trip away) rather than
    # storing them at once; the collect fast path then flushes once per event-loop turn.
    defers: bool

    def put(self, record: bytes | bytearray) -> None:
        """Store one buffer record (`events.encode_envelope`) durably, or raise `BufferFull`."""

    def defer(self, record: bytes | bytearray) -> None:
        """Keep a copy of one record for the next `flush` (or store it now, where that costs
        no more); raises `BufferFull` when it cannot be taken at all."""

    def flush(self) -> None:
        """Store what `defer` kept, durably, or raise `BufferFull`: then none of it may be
        acknowledged (some may have been stored: a retry is a duplicate the loader finds by
        its event id)."""

    def close(self) -> None: ...

    def depth(self) -> dict[str, int]:
        """Unloaded backlog: {"bytes": …, "envelopes": …} where known."""


class Backlog:
    """Bytes written to the buffer and not yet loaded, shared by writer and loader.

    In embedded mode both live in one process: the request path adds what it appends, the
    loader sets what it measured on disk after each batch. No lock (the request path would
    pay for it on every request): an add racing a set can be lost, and the next set, a
    batch later, corrects it; the count only decides when to answer 503.
    """

    def __init__(self) -> None:
        self._bytes = 0

    def add(self, n: int) -> None:
        self._bytes += n

    def set(self, n: int) -> None:
        self._bytes = max(0, n)

    @property
    def bytes(self) -> int:
        return self._bytes
