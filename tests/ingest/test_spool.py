"""The spool buffer: records survive, torn tails are ignored, loaded segments are removed."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from cadlink.ingest.buffer import Backlog, BufferFull, SpoolReader, SpoolWriter


def test_records_round_trip_in_order(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, fsync="never")
    payloads = [f"record-{i}".encode() for i in range(100)]
    for p in payloads:
        writer.put(p, 1)
    batch = SpoolReader(tmp_path).read({}, 1000)
    assert batch.payloads == payloads
    writer.close()


def test_read_resumes_from_positions_and_respects_limit(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, fsync="never")
    for i in range(10):
        writer.put(b"x%d" % i, 1)
    reader = SpoolReader(tmp_path)
    first = reader.read({}, 4)
    assert first.payloads == [b"x0", b"x1", b"x2", b"x3"]
    rest = reader.read(first.positions, 100)
    assert rest.payloads == [b"x%d" % i for i in range(4, 10)]
    assert reader.read(rest.positions, 100).payloads == []
    writer.close()


def test_rotation_seals_segments_and_cleanup_removes_only_loaded_sealed_ones(
    tmp_path: Path,
) -> None:
    writer = SpoolWriter(tmp_path, segment_bytes=64, fsync="never")
    for i in range(20):
        writer.put(b"payload-%02d-" % i + b"." * 20, 1)
    reader = SpoolReader(tmp_path)
    segments = reader.segments()
    assert len(segments) > 3
    batch = reader.read({}, 1000)
    assert len(batch.payloads) == 20
    removed = reader.cleanup(batch.positions)
    # every sealed, fully-read segment goes; the active one (locked by the writer) stays
    assert len(removed) == len(segments) - 1
    assert reader.segments() == [segments[-1]]
    writer.close()
    assert reader.cleanup(batch.positions) == [segments[-1].name]


def test_unread_segments_are_never_deleted(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, segment_bytes=32, fsync="never")
    for i in range(5):
        writer.put(b"y" * 40 + bytes([i]), 1)
    writer.close()
    reader = SpoolReader(tmp_path)
    removed = reader.cleanup({})
    assert all((tmp_path / name).exists() is False for name in removed)
    assert len(reader.read({}, 100).payloads) == 5  # only empty segments may have gone


def test_torn_tail_is_not_read(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, fsync="never")
    writer.put(b"complete", 1)
    writer.close()
    segment = SpoolReader(tmp_path).segments()[0]
    with segment.open("ab") as fh:  # a record whose write was cut short by kill -9
        fh.write(struct.pack("<III", 100, 0, 1) + b"partial")
    batch = SpoolReader(tmp_path).read({}, 100)
    assert batch.payloads == [b"complete"]


def test_corrupt_record_is_skipped_not_loaded(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, fsync="never")
    writer.put(b"good", 1)
    writer.close()
    segment = SpoolReader(tmp_path).segments()[0]
    with segment.open("ab") as fh:
        fh.write(struct.pack("<III", 3, 12345, 1) + b"bad")
    batch = SpoolReader(tmp_path).read({}, 100)
    assert batch.payloads == [b"good"]
    assert batch.positions[segment.name] == segment.stat().st_size


def test_full_backlog_refuses_writes(tmp_path: Path) -> None:
    backlog = Backlog()
    writer = SpoolWriter(tmp_path, max_backlog_bytes=100, fsync="always", backlog=backlog)
    writer.put(b"a" * 60, 1)
    writer.put(b"a" * 60, 1)
    with pytest.raises(BufferFull) as err:
        writer.put(b"a", 1)
    assert err.value.retry_after > 0
    backlog.set(0)  # the loader caught up
    writer.put(b"a", 1)
    writer.close()


def test_segments_are_private_files(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "spool", fsync="never")
    writer.put(b"z", 1)
    mode = os.stat(SpoolReader(tmp_path / "spool").segments()[0]).st_mode & 0o777
    assert mode == 0o600
    writer.close()


@pytest.mark.parametrize("chunk", [7, 64, 1000, 1 << 20])
def test_reading_a_chunk_at_a_time_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    from cadlink.ingest.buffer import spool

    monkeypatch.setattr(spool, "_CHUNK", chunk)
    w = SpoolWriter(tmp_path, fsync="never")
    payloads = [bytes([i % 251]) * (1 + (i * 37) % 300) for i in range(120)]
    for i, p in enumerate(payloads):
        w.put(p, events=1 + i % 3)
    w.close()
    with open(next(tmp_path.glob("*.spool")), "ab") as fh:
        fh.write(struct.pack("<III", 500, 0, 1) + b"torn")  # an unacknowledged tail
    reader = SpoolReader(tmp_path)
    positions: dict[str, int] = {}
    got: list[bytes] = []
    while (batch := reader.read(positions, 10)).payloads:
        assert batch.events >= 10 or len(got) + len(batch.payloads) == len(payloads)
        got.extend(batch.payloads)
        positions.update(batch.positions)
    assert got == payloads
