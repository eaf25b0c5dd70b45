"""The durable buffer between the collect endpoint and the loader.

An envelope handed to `put` is durable when `put` returns: it survives `kill -9` of the
server. Two implementations share one interface: append-only spool files (embedded mode)
and Redis Streams (server mode).
"""

from cadlink.ingest.buffer.base import Backlog, BufferFull, BufferWriter
from cadlink.ingest.buffer.spool import ReadBatch, SpoolReader, SpoolWriter

__all__ = [
    "Backlog",
    "BufferFull",
    "BufferWriter",
    "ReadBatch",
    "SpoolReader",
    "SpoolWriter",
]
