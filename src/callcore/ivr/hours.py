"""Business hours: is a schedule open at ``now``? Pure: ``now`` is always passed in.

Ranges are local wall-clock times in the schedule's time zone, so "08:00-18:00" means 08:00 to 18:00 on the
clock on the wall, on DST-change days too (those days simply last 23 or 25 hours). A range includes its start
and excludes its end, at minute resolution. Holidays are local dates, closed all day.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo

from callcore.ivr.model import Minutes, Schedule, parse_range

Status = Literal["open", "closed", "holiday"]


def _local(now: datetime, zone: ZoneInfo) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return now.astimezone(zone)


def _inside(minute: int, ranges: list[Minutes]) -> bool:
    return any(r.start <= minute < r.end for r in ranges)


def is_open(schedule: Schedule, now: datetime) -> Status:
    """"holiday" on a listed local date, else "open" inside one of today's ranges, else "closed"."""
    local = _local(now, schedule.zone)
    if local.date() in schedule.holidays:
        return "holiday"
    minute = local.hour * 60 + local.minute
    return "open" if _inside(minute, schedule.weekly.ranges(local.weekday())) else "closed"


def in_window(window: str, tz: str | ZoneInfo, now: datetime) -> bool:
    """Is the local time of ``now`` in ``tz`` inside ``window`` ("12:00-13:30")? For branch ``time`` rules."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    local = _local(now, zone)
    return _inside(local.hour * 60 + local.minute, [parse_range(window)])


def next_open(schedule: Schedule, now: datetime, *, max_days: int = 400) -> datetime | None:
    """When the schedule is next open: ``now`` itself (converted to the schedule's zone) if open now, else the
    start of the next opening range, as an aware datetime in the schedule's zone. Searches ``max_days`` local
    days ahead; None if it never opens in that time. A range starting in a spring-forward gap (e.g. 02:30 on
    the day clocks jump from 02:00 to 03:00) starts at the first real instant after the gap."""
    zone = schedule.zone
    local = _local(now, zone)
    if is_open(schedule, now) == "open":
        return local
    now_utc = now.astimezone(timezone.utc)
    day = local.date()
    for offset in range(max_days + 1):
        d = day + timedelta(days=offset)
        if d in schedule.holidays:
            continue
        for r in schedule.weekly.ranges(d.weekday()):
            wall = datetime(d.year, d.month, d.day, r.start // 60, r.start % 60, tzinfo=zone)
            # Round-trip through UTC: normalizes a wall time inside a DST gap to a real instant.
            # (A range lying entirely inside the gap never opens: is_open is False there, it is skipped.)
            real = wall.astimezone(timezone.utc).astimezone(zone)
            if real.astimezone(timezone.utc) > now_utc and is_open(schedule, real) == "open":
                return real
    return None
