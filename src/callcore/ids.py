"""Time-ordered identifiers.

Call and event ids are UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Ordered by creation
time, they are appended at the right edge of PostgreSQL's b-tree indexes instead of landing on random pages as
UUIDv4 does, which keeps index inserts cheap and cache-friendly at high event rates (see docs/benchmarks.md).
"""

from __future__ import annotations

import os
import time
import uuid


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = int.from_bytes(os.urandom(10), "big")  # 80 random bits; 74 are kept
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a: 12 bits
    value |= 0b10 << 62  # RFC 9562 variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b: 62 bits
    return uuid.UUID(int=value)
