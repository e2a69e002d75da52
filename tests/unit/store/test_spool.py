"""The durable spool: order, durability across reopen, crash leftovers, bounds."""

from __future__ import annotations

from pathlib import Path

from callcore.store.spool import DiskSpool


def recs(a: int, b: int) -> list[dict]:
    return [{"n": i, "type": "dtmf"} for i in range(a, b)]


def test_records_come_back_in_order_across_segments_and_reopen(tmp_path: Path):
    spool = DiskSpool(tmp_path, segment_bytes=200)
    for i in range(0, 50, 5):
        assert spool.append(recs(i, i + 5))
    assert spool.pending == 50 and len(list(tmp_path.glob("seg-*"))) > 3
    assert [r["n"] for r in spool.peek(7)] == list(range(7))
    spool.commit(7)
    again = DiskSpool(tmp_path, segment_bytes=200)  # a restart (or a crash) here keeps the rest
    assert again.pending == 43
    assert [r["n"] for r in again.peek(100)] == list(range(7, 50))
    again.commit(43)
    assert again.empty and list(tmp_path.glob("seg-*")) == []
    assert again.append(recs(50, 52)) and [r["n"] for r in again.peek(10)] == [50, 51]


def test_a_line_half_written_by_a_crash_is_not_a_record(tmp_path: Path):
    spool = DiskSpool(tmp_path)
    spool.append(recs(0, 3))
    seg = next(tmp_path.glob("seg-*"))
    with seg.open("ab") as f:
        f.write(b'{"n": 3, "ty')  # the process died mid-write
    reopened = DiskSpool(tmp_path)
    assert reopened.pending == 3 and [r["n"] for r in reopened.peek(10)] == [0, 1, 2]


def test_a_full_spool_refuses_and_writes_nothing(tmp_path: Path):
    spool = DiskSpool(tmp_path, max_bytes=300)
    assert spool.append(recs(0, 5))
    before = spool.bytes
    assert not spool.append(recs(5, 50))
    assert spool.bytes == before and spool.pending == 5
    spool.commit(5)
    assert spool.append(recs(5, 10))  # room again once written to the database


def test_commit_in_small_steps_matches_one_big_commit(tmp_path: Path):
    spool = DiskSpool(tmp_path, segment_bytes=120)
    spool.append(recs(0, 30))
    seen = []
    while not spool.empty:
        batch = spool.peek(4)
        seen += [r["n"] for r in batch]
        spool.commit(len(batch))
    assert seen == list(range(30))


def test_a_full_disk_is_a_full_spool_and_leaves_no_torn_record(tmp_path: Path, monkeypatch):
    import errno
    import os

    import callcore.store.spool as spool_module

    spool = DiskSpool(tmp_path)
    assert spool.append(recs(0, 3))
    real_write = os.write

    def disk_full(fd: int, data) -> int:  # half the bytes reach the disk, then ENOSPC
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_module.os, "write", disk_full)
    assert not spool.append(recs(3, 6))
    assert spool.disk_error is not None and "No space left" in spool.disk_error
    assert spool.pending == 3
    monkeypatch.setattr(spool_module.os, "write", real_write)
    assert spool.append(recs(6, 8)) and spool.disk_error is None
    assert [r["n"] for r in spool.peek(10)] == [0, 1, 2, 6, 7]
    assert [r["n"] for r in DiskSpool(tmp_path).peek(10)] == [0, 1, 2, 6, 7]  # and after a reopen
