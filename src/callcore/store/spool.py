"""A durable, bounded spool of events on local disk: where events wait while PostgreSQL is away.

The event writer keeps events in memory for a few seconds of database trouble; past that, or past its memory
bound, every event goes here instead, in order, and is written to PostgreSQL from here, oldest first, once the
database answers again — so an outage of minutes loses nothing and a crash during it loses nothing either.

On disk: segment files ``seg-<n>.jsonl`` (one JSON event per line) and ``position.json`` (how far the oldest
segment was written to the database). Every append is flushed and fsync'd before it returns; the position is
replaced atomically (write, fsync, rename). A line half-written by a crash is ignored on restart. Reading
resumes at the saved position; the database write is idempotent on event ids, so a batch written but not yet
committed here is at worst written twice (a no-op the second time), never lost.

Bounded: ``append`` refuses (returns False) when the spool holds ``max_bytes``; the writer then drops the event,
counts it and raises the alarm (docs/operations.md: what is dropped and why).

All methods are blocking file I/O: call them from a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POSITION = "position.json"


@dataclass
class _Segment:
    number: int
    path: Path

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0


class DiskSpool:
    def __init__(self, directory: Path, *, max_bytes: int = 256 * 1024 * 1024,
                 segment_bytes: int = 4 * 1024 * 1024) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._segments = sorted(
            (_Segment(int(p.stem.split("-")[1]), p) for p in self.dir.glob("seg-*.jsonl")), key=lambda s: s.number)
        pos = self._load_position()
        self._read_segment, self._read_offset = pos
        # Segments before the saved position were fully written to the database (a crash before deleting them).
        for seg in [s for s in self._segments if s.number < self._read_segment]:
            seg.path.unlink(missing_ok=True)
            self._segments.remove(seg)
        self.pending = self._count_pending()
        #: Why the last append could not reach the disk (e.g. "OSError: [Errno 28] No space left on device").
        self.disk_error: str | None = None

    # -- state ---------------------------------------------------------------------------------------------
    @property
    def empty(self) -> bool:
        return self.pending == 0

    @property
    def bytes(self) -> int:
        return sum(s.size for s in self._segments)

    def _load_position(self) -> tuple[int, int]:
        try:
            data = json.loads((self.dir / POSITION).read_text())
            return int(data["segment"]), int(data["offset"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            first = self._segments[0].number if self._segments else 0
            return first, 0

    def _save_position(self) -> None:
        tmp = self.dir / (POSITION + ".tmp")
        with tmp.open("w") as f:
            json.dump({"segment": self._read_segment, "offset": self._read_offset}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / POSITION)
        _fsync_dir(self.dir)

    def _count_pending(self) -> int:
        n = 0
        for seg in self._segments:
            start = self._read_offset if seg.number == self._read_segment else 0
            for line in _lines(seg.path, start):
                n += 1 if line.endswith(b"\n") else 0
        return n

    # -- writing -------------------------------------------------------------------------------------------
    def append(self, records: list[dict[str, Any]]) -> bool:
        """Append records durably (fsync'd); False, writing nothing, when the spool is full."""
        if not records:
            return True
        data = b"".join(json.dumps(r, separators=(",", ":"), default=str).encode() + b"\n" for r in records)
        with self._lock:
            if self.bytes + len(data) > self.max_bytes:
                return False
            seg = self._segments[-1] if self._segments else None
            if seg is None or seg.size >= self.segment_bytes:
                number = seg.number + 1 if seg else self._read_segment
                seg = _Segment(number, self.dir / f"seg-{number:012d}.jsonl")
                self._segments.append(seg)
                new = True
            else:
                new = False
            try:
                _append_durably(seg.path, data)
                if new:
                    _fsync_dir(self.dir)
            except OSError as exc:
                # The disk is full (ENOSPC) or failing: the same as a full spool (keep what is on disk, the
                # caller keeps the rest in memory), never a torn line that a later read would choke on.
                self.disk_error = f"{type(exc).__name__}: {exc}"
                if new:
                    self._segments.remove(seg)
                    if seg.size == 0:
                        seg.path.unlink(missing_ok=True)
                return False
            self.disk_error = None
            self.pending += len(records)
            return True

    # -- reading -------------------------------------------------------------------------------------------
    def peek(self, max_records: int) -> list[dict[str, Any]]:
        """The oldest records not yet committed (at most ``max_records``), in order."""
        out: list[dict[str, Any]] = []
        with self._lock:
            for seg in self._segments:
                start = self._read_offset if seg.number == self._read_segment else 0
                for line in _lines(seg.path, start):
                    if not line.endswith(b"\n"):
                        break  # half-written by a crash: not a record
                    out.append(json.loads(line))
                    if len(out) >= max_records:
                        return out
        return out

    def commit(self, n: int) -> None:
        """The first ``n`` records are in the database: move past them (durably), delete finished segments."""
        with self._lock:
            left = n
            while left > 0 and self._segments:
                seg = self._segments[0]
                if seg.number != self._read_segment:
                    self._read_segment, self._read_offset = seg.number, 0
                offset = self._read_offset
                for line in _lines(seg.path, offset):
                    if left == 0 or not line.endswith(b"\n"):
                        break
                    offset += len(line)
                    left -= 1
                self._read_offset = offset
                if offset >= seg.size and len(self._segments) > 1:
                    self._segments.pop(0)
                    self._read_segment, self._read_offset = self._segments[0].number, 0
                    self._save_position()
                    seg.path.unlink(missing_ok=True)
                else:
                    break
            self.pending = max(0, self.pending - n)
            if self.pending == 0 and self._segments and self._read_offset >= self._segments[-1].size:
                # Everything written: start over with an empty spool.
                last = self._segments[-1].number
                for seg in self._segments:
                    seg.path.unlink(missing_ok=True)
                self._segments = []
                self._read_segment, self._read_offset = last + 1, 0
            self._save_position()


def _lines(path: Path, start: int):  # noqa: ANN202 - a generator of raw lines
    try:
        with path.open("rb") as f:
            f.seek(start)
            yield from f
    except FileNotFoundError:
        return


def _append_durably(path: Path, data: bytes) -> None:
    """Append ``data`` and fsync; on any error the file is cut back to where it was (no partial record)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
