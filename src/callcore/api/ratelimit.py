"""A small in-memory sliding-window rate limiter (per key: a phone number, a token, a web visitor).

Each key keeps the instants of its recent hits (at most ``limit`` of them, so memory per key is bounded); a hit
is allowed while fewer than ``limit`` hits fall within the last ``window`` seconds. Unlike a fixed window
(``N per clock hour``) a burst at the boundary cannot get ``2 × limit`` through.

:meth:`SlidingWindowLimiter.acquire` checks *and* records in one step (no ``await`` in between, so concurrent
requests in one event loop cannot both take the last slot); :meth:`SlidingWindowLimiter.release` gives a slot
back when the request it was taken for fails later for another reason.

The number of keys is capped (``max_keys``): a new key pushes out the one hit longest ago (idle keys first,
since every hit moves its key to the end). A limiter that forgets favours the client, so put a per-client limit in front of per-target limits (one client
cannot then create enough keys to push another key out). Everything is forgotten at a restart: limits that must
survive one (the per-number daily limit of ``POST /callbacks``) are also checked in PostgreSQL.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """The answer for one key: allowed or not, and when to come back."""

    allowed: bool
    limit: int
    window: float
    remaining: int  # hits left in the window after this one
    retry_after: float  # seconds until a hit would be allowed (0 when allowed)
    stamp: float | None = None  # the hit recorded by acquire() (give it to release())

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` in whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


class SlidingWindowLimiter:
    """At most ``limit`` hits per key within any ``window`` seconds."""

    def __init__(self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if window <= 0:
            raise ValueError("window must be positive")
        self.limit = limit
        self.window = float(window)
        self.clock = clock
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._hits)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        hits = self._hits.get(key)
        if hits is None:
            return None
        horizon = now - self.window
        while hits and hits[0] <= horizon:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return None
        return hits

    def _verdict(self, hits: deque[float] | None, now: float, *, taking: bool) -> Verdict:
        used = len(hits) if hits else 0
        if used < self.limit:
            return Verdict(True, self.limit, self.window, self.limit - used - (1 if taking else 0), 0.0)
        assert hits is not None
        # The oldest hit that must leave the window before one more fits.
        oldest = hits[used - self.limit]
        return Verdict(False, self.limit, self.window, 0, max(0.0, oldest + self.window - now))

    def peek(self, key: str) -> Verdict:
        """Would a hit be allowed now? Records nothing."""
        now = self.clock()
        return self._verdict(self._recent(key, now), now, taking=False)

    def acquire(self, key: str) -> Verdict:
        """Record a hit if one is allowed now; the verdict either way."""
        now = self.clock()
        hits = self._recent(key, now)
        verdict = self._verdict(hits, now, taking=True)
        if not verdict.allowed:
            return verdict
        if hits is None:
            self._make_room()
            hits = self._hits[key] = deque()
        else:
            self._hits.move_to_end(key)
        hits.append(now)
        return Verdict(True, verdict.limit, verdict.window, verdict.remaining, 0.0, stamp=now)

    def release(self, key: str, verdict: Verdict) -> None:
        """Undo the hit ``acquire`` recorded (the request failed for another reason and should not count)."""
        if verdict.stamp is None:
            return
        hits = self._hits.get(key)
        if hits is None:
            return
        try:
            hits.remove(verdict.stamp)
        except ValueError:
            return
        if not hits:
            del self._hits[key]

    def reset(self, key: str | None = None) -> None:
        if key is None:
            self._hits.clear()
        else:
            self._hits.pop(key, None)

    def _make_room(self) -> None:
        # Keys are kept in the order of their last hit: the first one is idle, or the least recently used.
        while len(self._hits) >= self.max_keys:
            self._hits.popitem(last=False)


__all__ = ["SlidingWindowLimiter", "Verdict"]
