"""Reporting periods and intervals (pure): which interval an instant belongs to, in a given time zone.

Intervals are ``15m``, ``1h`` and ``1d``, aligned on the wall clock of the report's time zone: a ``1d`` interval
is a local calendar day (23 or 25 hours on a daylight-saving change), ``1h`` and ``15m`` intervals start on whole
local hours / quarter hours (in zones with a 30- or 45-minute offset too). No interval (``None``): the whole
period is one interval. Periods are half-open: ``[start, end)``.

Every datetime returned here is in UTC: Python compares and subtracts two datetimes of the *same* ``ZoneInfo``
by wall clock (a 23-hour day would measure 24 hours), so local times are only made for display.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

INTERVALS: dict[str, int] = {"15m": 900, "1h": 3600, "1d": 86400}
MAX_BUCKETS = 20_000  # a guard against "every 15 minutes for ten years"


def zone(name: str | None) -> tzinfo:
    """An IANA time zone by name (``None`` or ``UTC``: UTC). ValueError for an unknown name."""
    if not name or name.upper() == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Amsterdam)") from exc


def interval_seconds(interval: str) -> int:
    try:
        return INTERVALS[interval]
    except KeyError:
        raise ValueError(f"unknown interval {interval!r} (one of {', '.join(INTERVALS)})") from None


def bucket_start(at: datetime, interval: str, tz: tzinfo) -> datetime:
    """Start (UTC) of the interval of ``tz``'s wall clock that holds ``at`` (an aware datetime)."""
    local = at.astimezone(tz)
    if interval == "1d":
        return datetime(local.year, local.month, local.day, tzinfo=tz).astimezone(timezone.utc)
    width = interval_seconds(interval)
    offset = (local.utcoffset() or timedelta(0)).total_seconds()
    wall = at.timestamp() + offset
    start = wall - (wall % width) - offset
    if start > at.timestamp():  # the offset changed inside the interval (a DST change): the earlier boundary
        start -= width
    return datetime.fromtimestamp(start, timezone.utc)


def next_bucket(start: datetime, interval: str, tz: tzinfo) -> datetime:
    """Start (UTC) of the interval after the one starting at ``start``."""
    if interval == "1d":
        local = start.astimezone(tz)
        nxt = datetime(local.year, local.month, local.day) + timedelta(days=1)  # naive: calendar arithmetic
        return nxt.replace(tzinfo=tz).astimezone(timezone.utc)
    width = interval_seconds(interval)
    return bucket_start(start + timedelta(seconds=width), interval, tz)


def start_of_day(at: datetime, tz: tzinfo) -> datetime:
    return bucket_start(at, "1d", tz)


@dataclass(frozen=True)
class Bucket:
    start: datetime  # UTC
    end: datetime  # UTC

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def buckets(start: datetime, end: datetime, interval: str | None, tz: tzinfo) -> list[Bucket]:
    """The intervals covering ``[start, end)`` (UTC); the first and last are cut to the period."""
    start, end = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    if end <= start:
        return []
    if interval is None:
        return [Bucket(start, end)]
    out: list[Bucket] = []
    b = bucket_start(start, interval, tz)
    while b < end:
        nxt = next_bucket(b, interval, tz)
        out.append(Bucket(max(b, start), min(nxt, end)))
        if len(out) > MAX_BUCKETS:
            raise ValueError(f"more than {MAX_BUCKETS} intervals: choose a longer interval or a shorter period")
        b = nxt
    return out


class BucketIndex:
    """Finds the bucket of an instant quickly (buckets sorted and contiguous)."""

    def __init__(self, items: list[Bucket]) -> None:
        self.items = items
        self._starts = [b.start for b in items]

    def find(self, at: datetime) -> int | None:
        if not self.items or at < self.items[0].start or at >= self.items[-1].end:
            return None
        return bisect_right(self._starts, at) - 1


__all__ = ["INTERVALS", "MAX_BUCKETS", "Bucket", "BucketIndex", "bucket_start", "buckets", "interval_seconds",
           "next_bucket", "start_of_day", "zone"]
