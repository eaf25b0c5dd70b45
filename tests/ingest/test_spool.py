"""The spool buffer: records survive, torn tails are skipped, loaded segments are removed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cadlink.ingest.buffer import Backlog, BufferFull, SpoolReader, SpoolWriter


def test_records_round_trip_in_order(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, fsync="never")
    records = [f"record-{i}".encode() for i in range(100)]
    for r in records:
        writer.put(r + b"\n")
    batch = SpoolReader(tmp_path).read({}, 1 << 20)
    assert batch.records_list == records
    assert batch.records == 100
    assert batch.size == sum(len(r) + 1 for r in records)
    writer.close()


def test_a_record_must_be_one_line(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, fsync="never")
    for bad in (b"", b"no newline", bytearray(b"x")):
        with pytest.raises(ValueError, match="one line"):
            writer.put(bad)
    writer.close()


def test_read_resumes_from_positions_and_takes_whole_records(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, fsync="never")
    for i in range(10):
        writer.put(b"x%d\n" % i)  # 3 bytes each
    reader = SpoolReader(tmp_path)
    first = reader.read({}, 10)  # a budget that ends inside the fourth record
    assert first.records_list == [b"x0", b"x1", b"x2"]
    rest = reader.read(first.positions, 100)
    assert rest.records_list == [b"x%d" % i for i in range(3, 10)]
    assert reader.read(rest.positions, 100).records_list == []
    writer.close()


def test_a_record_longer_than_the_budget_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cadlink.ingest.buffer import spool

    monkeypatch.setattr(spool, "_CHUNK", 7)
    writer = SpoolWriter(tmp_path, fsync="never")
    writer.put(b"a" * 100 + b"\n")
    writer.put(b"b\n")
    reader = SpoolReader(tmp_path)
    first = reader.read({}, 5)
    assert first.records_list == [b"a" * 100]
    assert reader.read(first.positions, 5).records_list == [b"b"]
    writer.close()


def test_rotation_seals_segments_and_cleanup_removes_only_loaded_sealed_ones(
    tmp_path: Path,
) -> None:
    writer = SpoolWriter(tmp_path, segment_bytes=64, fsync="never")
    for i in range(20):
        writer.put(b"payload-%02d-" % i + b"." * 20 + b"\n")
    reader = SpoolReader(tmp_path)
    segments = reader.segments()
    assert len(segments) > 3
    batch = reader.read({}, 1 << 20)
    assert len(batch.records_list) == 20
    removed = reader.cleanup(batch.positions)
    # every sealed, fully-read segment goes; the active one (locked by the writer) stays
    assert len(removed) == len(segments) - 1
    assert reader.segments() == [segments[-1]]
    writer.close()
    assert reader.cleanup(batch.positions) == [segments[-1].name]


def test_unread_segments_are_never_deleted(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, segment_bytes=32, fsync="never")
    for i in range(5):
        writer.put(b"y" * 40 + bytes([65 + i]) + b"\n")
    writer.close()
    reader = SpoolReader(tmp_path)
    removed = reader.cleanup({})
    assert all((tmp_path / name).exists() is False for name in removed)
    assert len(reader.read({}, 1 << 20).records_list) == 5  # only empty segments may have gone


def test_a_torn_tail_of_a_sealed_segment_is_skipped(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, fsync="never")
    writer.put(b"complete\n")
    writer.close()
    segment = SpoolReader(tmp_path).segments()[0]
    with segment.open("ab") as fh:  # a record whose write was cut short: never acknowledged
        fh.write(b'{"partial')
    batch = SpoolReader(tmp_path).read({}, 100)
    assert batch.records_list == [b"complete"]
    assert batch.torn == [(segment.name, len(b'{"partial'))]
    # Its position covers the tail, so the segment can be deleted once this batch is stored.
    assert batch.positions[segment.name] == segment.stat().st_size
    assert SpoolReader(tmp_path).cleanup(batch.positions) == [segment.name]


def test_a_record_being_written_by_a_live_writer_waits(tmp_path: Path) -> None:
    """The active segment's unfinished tail is a write in progress, not a torn record."""
    writer = SpoolWriter(tmp_path, fsync="never")
    writer.put(b"one\n")
    segment = SpoolReader(tmp_path).segments()[0]
    with segment.open("ab") as fh:
        fh.write(b"tw")  # what a reader may see halfway through a write
    batch = SpoolReader(tmp_path).read({}, 100)
    assert batch.records_list == [b"one"] and batch.torn == []
    assert batch.positions[segment.name] == 4
    with segment.open("ab") as fh:
        fh.write(b"o\n")
    assert SpoolReader(tmp_path).read(batch.positions, 100).records_list == [b"two"]
    writer.close()


def test_full_backlog_refuses_writes(tmp_path: Path) -> None:
    backlog = Backlog()
    writer = SpoolWriter(tmp_path, max_backlog_bytes=100, fsync="always", backlog=backlog)
    writer.put(b"a" * 59 + b"\n")
    writer.put(b"a" * 59 + b"\n")
    with pytest.raises(BufferFull) as err:
        writer.put(b"a\n")
    assert err.value.retry_after > 0
    backlog.set(0)  # the loader caught up
    writer.put(b"a\n")
    writer.close()


def test_segments_are_private_files(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "spool", fsync="never")
    writer.put(b"z\n")
    mode = os.stat(SpoolReader(tmp_path / "spool").segments()[0]).st_mode & 0o777
    assert mode == 0o600
    writer.close()


@pytest.mark.parametrize("budget", [1, 7, 64, 1000, 1 << 20])
def test_reading_in_batches_loses_nothing(tmp_path: Path, budget: int) -> None:
    w = SpoolWriter(tmp_path, segment_bytes=2_000, fsync="never")
    records = [bytes([65 + i % 26]) * (1 + (i * 37) % 300) for i in range(120)]
    for r in records:
        w.put(r + b"\n")
    w.close()
    with open(SpoolReader(tmp_path).segments()[-1], "ab") as fh:
        fh.write(b"torn")  # an unacknowledged tail
    reader = SpoolReader(tmp_path)
    positions: dict[str, int] = {}
    got: list[bytes] = []
    while (batch := reader.read(positions, budget)).positions:
        assert batch.data or batch.torn
        assert batch.size == len(batch.data) <= max(budget, 300 + 1)  # at most one over budget
        # Where the records came from: read again, they are the same bytes (no torn tail).
        assert reader.reread(batch.spans) == batch.data
        got.extend(batch.records_list)
        positions.update(batch.positions)
    assert got == records


def test_a_read_says_whether_it_stopped_at_the_budget(tmp_path: Path) -> None:
    """The loader loads again at once when a batch stopped at its budget (records cut at the
    last whole record fall short of the budget, so the size alone cannot tell)."""
    writer = SpoolWriter(tmp_path, segment_bytes=1_000, fsync="never")
    for i in range(30):
        writer.put(b"r%02d-" % i + b"x" * 95 + b"\n")  # 100 bytes each, 3 segments
    reader = SpoolReader(tmp_path)
    first = reader.read({}, 450)
    assert first.records == 4 and first.size == 400 and first.more
    rest = reader.read(first.positions, 10_000)
    assert rest.records == 26 and not rest.more
    positions = first.positions | rest.positions
    assert reader.read(positions, 450).records == 0
    writer.put(b"tail\n")
    assert not reader.read(positions, 450).more
    writer.close()


def test_a_rotated_segment_is_synced_and_sealed_by_the_syncer_not_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request that fills a segment does not wait for its fsync (tens of milliseconds for
    a full one): the syncer thread syncs and seals it, within a second."""
    from cadlink.ingest.buffer import spool

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(spool.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    writer = SpoolWriter(tmp_path, segment_bytes=64, fsync="interval")
    writer.put(b"a" * 70 + b"\n")  # fills the first segment
    writer.put(b"b\n")  # rotates: no fsync on this path
    assert synced == []
    reader = SpoolReader(tmp_path)
    first = reader.segments()[0]
    batch = reader.read({}, 1000)
    assert batch.records_list == [b"a" * 70, b"b"]
    assert reader.cleanup(batch.positions) == []  # not sealed yet: its writer still holds it
    writer.sync()
    assert len(synced) >= 1
    assert reader.cleanup(batch.positions) == [first.name]
    writer.close()
