"""Time-ordered identifiers.

Call and event ids are UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Ordered by creation
time, they are appended at the right edge of PostgreSQL's b-tree indexes instead of landing on random pages as
UUIDv4 does, which keeps index inserts cheap and cache-friendly at high event rates (see docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from datetime import datetime


def uuid7(unix_ms: int | None = None, *, seed: bytes | None = None) -> uuid.UUID:
    """A UUIDv7; with ``seed``, its "random" bits are a hash of it, so the same seed and time give the same id."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = int.from_bytes(hashlib.sha256(seed).digest()[:10] if seed is not None else os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a: 12 bits
    value |= 0b10 << 62  # RFC 9562 variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b: 62 bits
    return uuid.UUID(int=value)


def call_id_for_channel(channel_id: str, created: str) -> uuid.UUID:
    """The call id of a call that began with an inbound channel: derived from the channel (its id and creation
    time), so it is time-ordered like any UUIDv7, and a restarted callcore that adopts the channel finds the same
    id without storing it on the channel first (one REST request less per call)."""
    try:
        ms = int(datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000)
    except (ValueError, TypeError):
        ms = 0  # no usable creation time: still deterministic, ordered first
    return uuid7(ms, seed=f"callcore-channel:{channel_id}".encode())
