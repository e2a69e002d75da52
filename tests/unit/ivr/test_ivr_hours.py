"""Business hours in local wall-clock time, DST-correct, with holidays."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from callcore.ivr.hours import in_window, is_open, next_open
from callcore.ivr.model import Schedule

AMS = ZoneInfo("Europe/Amsterdam")
UTC = timezone.utc


def office(**weekly: list[str]) -> Schedule:
    return Schedule.model_validate({
        "timezone": "Europe/Amsterdam",
        "weekly": weekly or {d: ["08:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        "holidays": ["2026-12-25", "2027-01-01"],
    })


@pytest.mark.parametrize("day", [datetime(2027, 3, 28), datetime(2026, 10, 25)])  # spring forward, fall back
@pytest.mark.parametrize(
    ("hhmm", "expected"),
    [((7, 59), "closed"), ((8, 0), "open"), ((12, 0), "open"), ((17, 59), "open"), ((18, 0), "closed")],
)
def test_local_range_holds_on_dst_days(day: datetime, hhmm: tuple[int, int], expected: str) -> None:
    local = day.replace(hour=hhmm[0], minute=hhmm[1], tzinfo=AMS)
    assert is_open(office(), local) == expected
    assert is_open(office(), local.astimezone(UTC)) == expected  # the zone of `now` does not matter


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # Spring forward 2027-03-28: before the jump CET (+1), after CEST (+2).
        (datetime(2027, 3, 27, 6, 59, tzinfo=UTC), "closed"),  # Sat 07:59 CET
        (datetime(2027, 3, 27, 7, 0, tzinfo=UTC), "open"),  # Sat 08:00 CET
        (datetime(2027, 3, 28, 6, 0, tzinfo=UTC), "open"),  # Sun 08:00 CEST (would be 07:00 in CET)
        (datetime(2027, 3, 28, 5, 30, tzinfo=UTC), "closed"),
        (datetime(2027, 3, 28, 16, 0, tzinfo=UTC), "closed"),  # 18:00 CEST
        # Fall back 2026-10-25.
        (datetime(2026, 10, 24, 15, 59, tzinfo=UTC), "open"),  # Sat 17:59 CEST
        (datetime(2026, 10, 24, 16, 0, tzinfo=UTC), "closed"),  # Sat 18:00 CEST
        (datetime(2026, 10, 25, 6, 30, tzinfo=UTC), "closed"),  # Sun 07:30 CET
        (datetime(2026, 10, 25, 16, 30, tzinfo=UTC), "open"),  # Sun 17:30 CET (would be 18:30 CEST)
    ],
)
def test_dst_utc_instants(utc: datetime, expected: str) -> None:
    assert is_open(office(), utc) == expected


def test_ambiguous_hour_on_fall_back_day() -> None:
    sched = office(sun=["02:00-03:00"])
    # 02:30 happens twice on 2026-10-25: 00:30 UTC (CEST) and 01:30 UTC (CET). Both are inside.
    assert is_open(sched, datetime(2026, 10, 25, 0, 30, tzinfo=UTC)) == "open"
    assert is_open(sched, datetime(2026, 10, 25, 1, 30, tzinfo=UTC)) == "open"
    assert is_open(sched, datetime(2026, 10, 25, 2, 0, tzinfo=UTC)) == "closed"  # 03:00 CET


def test_holidays_are_local_dates() -> None:
    sched = office()
    assert is_open(sched, datetime(2026, 12, 24, 23, 30, tzinfo=UTC)) == "holiday"  # 00:30 on the 25th locally
    assert is_open(sched, datetime(2026, 12, 25, 23, 30, tzinfo=UTC)) == "closed"  # 00:30 on the 26th
    assert is_open(sched, datetime(2026, 12, 25, 3, 0, tzinfo=UTC)) == "holiday"


def test_several_ranges_per_day_and_absent_days() -> None:
    sched = office(tue=["08:00-12:30", "13:00-18:00"])
    tue = datetime(2026, 6, 2, tzinfo=AMS)
    assert is_open(sched, tue.replace(hour=12, minute=29)) == "open"
    assert is_open(sched, tue.replace(hour=12, minute=30)) == "closed"
    assert is_open(sched, tue.replace(hour=13)) == "open"
    assert is_open(sched, tue.replace(day=1, hour=10)) == "closed"  # Monday: absent


def test_until_midnight() -> None:
    sched = office(mon=["20:00-24:00"])
    assert is_open(sched, datetime(2026, 6, 1, 23, 59, 59, tzinfo=AMS)) == "open"
    assert is_open(sched, datetime(2026, 6, 2, 0, 0, tzinfo=AMS)) == "closed"


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(office(), datetime(2026, 6, 1, 10, 0))


def test_in_window() -> None:
    now = datetime(2026, 6, 1, 10, 30, tzinfo=UTC)
    assert in_window("12:00-13:30", "Europe/Amsterdam", now)
    assert not in_window("12:00-13:30", "UTC", now)


def test_next_open() -> None:
    sched = office(mon=["08:00-18:00"], fri=["09:00-17:00"])
    mon_noon = datetime(2026, 6, 1, 12, 0, tzinfo=AMS)
    assert next_open(sched, mon_noon) == mon_noon
    assert next_open(sched, mon_noon.replace(hour=19)) == datetime(2026, 6, 5, 9, 0, tzinfo=AMS)
    assert next_open(sched, mon_noon.replace(hour=7)) == mon_noon.replace(hour=8)
    # Across a holiday (Fri 2026-12-25) → Monday 2026-12-28 08:00.
    assert next_open(sched, datetime(2026, 12, 22, 9, 0, tzinfo=AMS)) == datetime(2026, 12, 28, 8, 0, tzinfo=AMS)
    assert next_open(office(mon=[]), mon_noon) is None


def test_next_open_across_spring_forward() -> None:
    sched = office(sun=["02:30-04:00"])  # 02:30 does not exist on 2027-03-28
    found = next_open(sched, datetime(2027, 3, 27, 12, 0, tzinfo=AMS))
    assert found is not None
    assert found.astimezone(UTC) == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)  # 03:30 CEST
    assert is_open(sched, found) == "open"
    after = next_open(sched, datetime(2027, 3, 28, 12, 0, tzinfo=AMS))
    assert after == datetime(2027, 4, 4, 2, 30, tzinfo=AMS)
    assert after - found > timedelta(days=6)
