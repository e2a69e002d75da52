"""Calling windows: may a lead be called at instant ``t``, and when next? Pure: ``t`` is always passed in.

Windows are callee-local wall-clock ranges per weekday ("09:00-20:30" on mon-fri): 09:00 on the callee's
clock, on DST-change days too (those days last 23 or 25 hours). A range includes its start and excludes its
end, at minute resolution (20:29:59 is inside "09:00-20:30", 20:30 is not). ``exclude_dates`` are callee-local
dates nobody is called. The legal hours of the campaign's abandonment preset (US: 08:00-21:00) clip every range,
whatever the YAML says (the config check reports such ranges as errors too).

A lead may have several candidate zones (an ambiguous number with ``ambiguous_timezone: all``): it is
callable only when it is callable in every one of them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from callcore.ivr.model import WEEKDAYS, Minutes

from callcore.leads.phone import zone as _zone

ALL_DAY = Minutes(0, 24 * 60)


@dataclass(frozen=True)
class Windows:
    """Per weekday (0 = Monday) the sorted, merged callable ranges, and the excluded local dates."""

    weekly: tuple[tuple[Minutes, ...], ...]
    exclude_dates: frozenset[date] = frozenset()

    @classmethod
    def build(
        cls,
        ranges: Iterable[tuple[Iterable[str], Minutes]],
        *,
        exclude_dates: Iterable[date] = (),
        legal_hours: Minutes | None = None,
    ) -> Windows:
        """``ranges``: (weekday names, range) pairs, clipped to ``legal_hours`` and merged where they touch."""
        per_day: list[list[Minutes]] = [[] for _ in WEEKDAYS]
        for days, r in ranges:
            if legal_hours is not None:
                r = Minutes(max(r.start, legal_hours.start), min(r.end, legal_hours.end))
                if r.end <= r.start:
                    continue
            for d in days:
                per_day[WEEKDAYS.index(d)].append(r)
        return cls(tuple(_merge(day) for day in per_day), frozenset(exclude_dates))

    @classmethod
    def from_campaign(cls, campaign: object) -> Windows:
        """The windows of a ``CampaignConfig`` (with its preset's legal hours)."""
        policy = campaign.policy()  # type: ignore[attr-defined]
        return _from_campaign_cached(
            tuple((tuple(w.days), w.range) for w in campaign.windows),  # type: ignore[attr-defined]
            tuple(campaign.exclude_dates),  # type: ignore[attr-defined]
            policy.legal_hours,
        )

    def ranges(self, d: date) -> tuple[Minutes, ...]:
        if d in self.exclude_dates:
            return ()
        return self.weekly[d.weekday()]

    @property
    def never(self) -> bool:
        return not any(self.weekly)


@functools.lru_cache(maxsize=256)
def _from_campaign_cached(
    ranges: tuple[tuple[tuple[str, ...], Minutes], ...], exclude: tuple[date, ...], legal: Minutes | None
) -> Windows:
    return Windows.build(ranges, exclude_dates=exclude, legal_hours=legal)


def _merge(ranges: list[Minutes]) -> tuple[Minutes, ...]:
    out: list[Minutes] = []
    for r in sorted(ranges):
        if out and r.start <= out[-1].end:
            out[-1] = Minutes(out[-1].start, max(out[-1].end, r.end))
        else:
            out.append(r)
    return tuple(out)


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("t must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return t


def _zones(zones: str | ZoneInfo | Sequence[str | ZoneInfo]) -> list[ZoneInfo]:
    if isinstance(zones, (str, ZoneInfo)):
        zones = [zones]
    out = [z if isinstance(z, ZoneInfo) else _zone(z) for z in zones]
    if not out:
        raise ValueError("at least one time zone is needed")
    return out


def _inside(windows: Windows, z: ZoneInfo, t: datetime) -> Minutes | None:
    """The range of ``windows`` containing ``t`` on the clock of zone ``z``, or None."""
    local = t.astimezone(z)
    minute = local.hour * 60 + local.minute
    for r in windows.ranges(local.date()):
        if r.start <= minute < r.end:
            return r
    return None


def is_callable(windows: Windows, zones: str | ZoneInfo | Sequence[str | ZoneInfo], t: datetime) -> bool:
    """Is ``t`` inside the windows on the clock of every zone in ``zones``?"""
    _aware(t)
    return all(_inside(windows, z, t) is not None for z in _zones(zones))


def callable_zones(windows: Windows, zones: Iterable[str], t: datetime) -> list[str]:
    """The names among ``zones`` whose local time at ``t`` is inside the windows (sorted)."""
    _aware(t)
    return sorted(n for n in set(zones) if _inside(windows, _zone(n), t) is not None)


def wall_time(d: date, minute: int, z: ZoneInfo) -> datetime:
    """The first real instant at or after local ``d`` + ``minute`` in ``z``, in UTC. A wall time inside a
    spring-forward gap (02:30 on the day clocks jump 02:00 → 03:00) becomes the end of the gap; an ambiguous one
    (fall back) is its first occurrence."""
    day = d + timedelta(days=minute // (24 * 60))
    m = minute % (24 * 60)
    naive = datetime.combine(day, time(m // 60, m % 60))
    return local_to_utc(naive, z)


def local_to_utc(naive: datetime, z: str | ZoneInfo) -> datetime:
    """A callee-local wall time → an aware UTC instant. A wall time that exists twice (clocks going back) is its
    first occurrence; one that does not exist (inside a spring-forward gap) becomes the end of the gap, the first
    real instant after it."""
    if naive.tzinfo is not None:
        raise ValueError("expected a naive local wall time")
    zi = z if isinstance(z, ZoneInfo) else _zone(z)
    early = naive.replace(tzinfo=zi, fold=0).astimezone(timezone.utc)
    if early.astimezone(zi).replace(tzinfo=None) == naive:
        return early
    # In a gap: fold=0 reads the wall time with the offset before the change (an instant after the gap), fold=1
    # with the offset after it (an instant before the gap). The change lies between: find it to the second.
    late = naive.replace(tzinfo=zi, fold=1).astimezone(timezone.utc)
    lo, hi = sorted((int(early.timestamp()), int(late.timestamp())))
    after = datetime.fromtimestamp(hi, timezone.utc).astimezone(zi).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, timezone.utc).astimezone(zi).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, timezone.utc)


def next_callable(
    windows: Windows,
    zones: str | ZoneInfo | Sequence[str | ZoneInfo],
    t: datetime,
    *,
    max_days: int = 31,
) -> datetime | None:
    """The first instant at or after ``t`` when the lead is callable in every zone (``t`` itself if callable now),
    in UTC; None if that does not happen within ``max_days``."""
    _aware(t)
    zs = _zones(zones)
    t_utc = t.astimezone(timezone.utc)
    if is_callable(windows, zs, t_utc):
        return t_utc
    if windows.never:
        return None
    # The intersection of the zones' windows starts at the start of some zone's range: try those in order.
    candidates: set[datetime] = set()
    for z in zs:
        first_day = t_utc.astimezone(z).date()
        for offset in range(-1, max_days + 1):
            d = first_day + timedelta(days=offset)
            for r in windows.ranges(d):
                start = wall_time(d, r.start, z)
                if start > t_utc:
                    candidates.add(start)
    for c in sorted(candidates):
        if c - t_utc > timedelta(days=max_days):
            break
        if is_callable(windows, zs, c):
            return c
    return None


def callable_until(windows: Windows, zones: str | ZoneInfo | Sequence[str | ZoneInfo], t: datetime) -> datetime | None:
    """When the current callable stretch ends (the earliest range end over the zones), in UTC; None if the lead
    is not callable at ``t``. A dialer should not start a call a few seconds before this."""
    _aware(t)
    ends = []
    for z in _zones(zones):
        r = _inside(windows, z, t)
        if r is None:
            return None
        ends.append(wall_time(t.astimezone(z).date(), r.end, z))
    return min(ends)


__all__ = [
    "ALL_DAY",
    "Windows",
    "callable_until",
    "callable_zones",
    "is_callable",
    "local_to_utc",
    "next_callable",
    "wall_time",
]
