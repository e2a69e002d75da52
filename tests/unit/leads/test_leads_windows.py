"""Calling windows: callee-local time, several zones, DST changes, excluded dates, legal hours."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from callcore.campaigns.model import CampaignConfig
from callcore.ivr.model import Minutes
from callcore.leads.windows import (
    Windows,
    callable_until,
    callable_zones,
    is_callable,
    local_to_utc,
    next_callable,
    wall_time,
)

UTC = timezone.utc
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def u(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def win(*pairs: tuple[list[str], str], exclude: tuple[date, ...] = (), legal: Minutes | None = None) -> Windows:
    from callcore.ivr.model import parse_range

    return Windows.build([(d, parse_range(h)) for d, h in pairs], exclude_dates=exclude, legal_hours=legal)


DEFAULT = win((["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "08:00-21:00"))


def test_callee_local_time_decides() -> None:
    t = u(2026, 7, 1, 12, 30)  # a Wednesday: 08:30 in New York, 05:30 in Los Angeles, 14:30 in Amsterdam
    assert is_callable(DEFAULT, "America/New_York", t)
    assert not is_callable(DEFAULT, "America/Los_Angeles", t)
    assert is_callable(DEFAULT, "Europe/Amsterdam", t)
    assert callable_zones(DEFAULT, ["America/New_York", "America/Los_Angeles", "Europe/Amsterdam", "Asia/Tokyo"], t) == [
        "America/New_York", "Europe/Amsterdam"]


def test_boundaries_are_start_inclusive_end_exclusive_at_minute_resolution() -> None:
    ams = "Europe/Amsterdam"  # CEST, UTC+2 in July
    assert not is_callable(DEFAULT, ams, u(2026, 7, 1, 5, 59, 59))
    assert is_callable(DEFAULT, ams, u(2026, 7, 1, 6, 0))
    assert is_callable(DEFAULT, ams, u(2026, 7, 1, 18, 59, 59))
    assert not is_callable(DEFAULT, ams, u(2026, 7, 1, 19, 0))


def test_next_callable_same_day_next_day_and_weekend() -> None:
    w = win((WEEKDAYS, "09:00-12:00"), (WEEKDAYS, "13:00-20:30"), (["sat"], "10:00-16:00"))
    ams = "Europe/Amsterdam"
    assert next_callable(w, ams, u(2026, 7, 1, 10, 30)) == u(2026, 7, 1, 11, 0)  # 12:30 local → 13:00
    assert next_callable(w, ams, u(2026, 7, 1, 19, 0)) == u(2026, 7, 2, 7, 0)  # 21:00 → 09:00 tomorrow
    assert next_callable(w, ams, u(2026, 7, 4, 15, 0)) == u(2026, 7, 6, 7, 0)  # Saturday 17:00 → Monday
    now = u(2026, 7, 1, 8, 0)
    assert next_callable(w, ams, now) == now  # callable now: now itself
    assert callable_until(w, ams, now) == u(2026, 7, 1, 10, 0)  # until 12:00 local
    assert callable_until(w, ams, u(2026, 7, 1, 10, 30)) is None


def test_touching_ranges_merge() -> None:
    w = win((["mon"], "09:00-12:00"), (["mon"], "12:00-17:00"), (["mon"], "10:00-11:00"))
    assert w.weekly[0] == (Minutes(540, 1020),)
    assert callable_until(w, "UTC", u(2026, 7, 6, 11, 59)) == u(2026, 7, 6, 17, 0)


def test_excluded_dates_are_callee_local() -> None:
    w = win((WEEKDAYS + ["sat", "sun"], "08:00-21:00"), exclude=(date(2026, 12, 25),))
    # 24 Dec 23:30 UTC is already 25 Dec in Amsterdam and Tokyo, still 24 Dec in New York.
    t = u(2026, 12, 25, 0, 30)  # 01:30 Amsterdam (closed anyway), 19:30 New York on the 24th
    assert is_callable(w, "America/New_York", t)
    assert not is_callable(w, "Asia/Tokyo", u(2026, 12, 25, 3, 0))  # noon on the 25th in Tokyo: excluded
    assert next_callable(w, "Europe/Amsterdam", u(2026, 12, 24, 21, 0)) == u(2026, 12, 26, 7, 0)


def test_several_zones_must_all_be_inside() -> None:
    zones = ["America/New_York", "America/Los_Angeles"]
    t = u(2026, 7, 1, 13, 0)  # 09:00 New York, 06:00 Los Angeles
    assert not is_callable(DEFAULT, zones, t)
    assert next_callable(DEFAULT, zones, t) == u(2026, 7, 1, 15, 0)  # 08:00 in Los Angeles
    assert callable_until(DEFAULT, zones, u(2026, 7, 1, 20, 0)) == u(2026, 7, 2, 1, 0)  # 21:00 New York
    # Honolulu, London and Shanghai: 08:00-21:00 never holds in all three at once.
    assert next_callable(DEFAULT, ["Pacific/Honolulu", "Europe/London", "Asia/Shanghai"], t, max_days=3) is None


def test_dst_spring_forward_keeps_wall_clock_windows() -> None:
    ams = "Europe/Amsterdam"  # 29 March 2026: 02:00 CET → 03:00 CEST
    assert is_callable(DEFAULT, ams, u(2026, 3, 28, 7, 0))  # 08:00 CET
    assert not is_callable(DEFAULT, ams, u(2026, 3, 29, 5, 30))  # 07:30 CEST (a day earlier: 06:30 CET)
    assert is_callable(DEFAULT, ams, u(2026, 3, 29, 6, 0))  # 08:00 CEST
    assert next_callable(DEFAULT, ams, u(2026, 3, 28, 20, 0)) == u(2026, 3, 29, 6, 0)
    ny = "America/New_York"  # 8 March 2026: 02:00 EST → 03:00 EDT
    assert next_callable(DEFAULT, ny, u(2026, 3, 8, 2, 0)) == u(2026, 3, 8, 12, 0)  # 08:00 EDT
    assert next_callable(DEFAULT, ny, u(2026, 3, 7, 2, 0)) == u(2026, 3, 7, 13, 0)  # 08:00 EST


def test_dst_fall_back_and_a_window_in_the_gap() -> None:
    ams = "Europe/Amsterdam"  # 25 October 2026: 03:00 CEST → 02:00 CET
    assert next_callable(DEFAULT, ams, u(2026, 10, 24, 20, 0)) == u(2026, 10, 25, 7, 0)  # 08:00 CET
    night = win((["sun"], "02:30-04:00"))
    # On 29 March 02:30 does not exist in Amsterdam: the window opens when the clock jumps to 03:00.
    assert next_callable(night, ams, u(2026, 3, 28, 12, 0)) == u(2026, 3, 29, 1, 0)
    assert is_callable(night, ams, u(2026, 3, 29, 1, 0))
    # On 25 October 02:30 happens twice; the window opens at the first.
    assert next_callable(night, ams, u(2026, 10, 24, 12, 0)) == u(2026, 10, 25, 0, 30)


def test_local_to_utc_gap_and_fold() -> None:
    assert local_to_utc(datetime(2026, 3, 29, 2, 30), "Europe/Amsterdam") == u(2026, 3, 29, 1, 0)
    assert local_to_utc(datetime(2026, 10, 25, 2, 30), "Europe/Amsterdam") == u(2026, 10, 25, 0, 30)
    assert local_to_utc(datetime(2026, 7, 1, 14, 30), "America/New_York") == u(2026, 7, 1, 18, 30)
    assert wall_time(date(2026, 7, 1), 24 * 60, __import__("zoneinfo").ZoneInfo("UTC")) == u(2026, 7, 2)
    with pytest.raises(ValueError):
        local_to_utc(u(2026, 7, 1), "UTC")


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_callable(DEFAULT, "UTC", datetime(2026, 7, 1, 12))


def test_legal_hours_clip_and_campaign_windows() -> None:
    clipped = win((["mon"], "07:00-22:00"), (["tue"], "21:00-23:00"), legal=Minutes(480, 1260))
    assert clipped.weekly[0] == (Minutes(480, 1260),) and clipped.weekly[1] == ()
    c = CampaignConfig(
        caller_id="+12125550100", default_region="US", timezone="America/New_York", queue="q",
        abandon={"preset": "us_ftc"},
        windows=[{"days": WEEKDAYS, "hours": "07:00-22:00"}],  # the config check reports this; clipped anyway
        exclude_dates=["2026-07-03"],
    )
    w = Windows.from_campaign(c)
    assert w.weekly[0] == (Minutes(480, 1260),) and date(2026, 7, 3) in w.exclude_dates
    assert Windows.from_campaign(c) is w  # cached
    assert not is_callable(w, "America/New_York", u(2026, 7, 1, 11, 30))  # 07:30 EDT
    # Thursday 21:00 EDT → Friday is excluded, then the weekend → Monday 08:00 EDT.
    assert next_callable(w, "America/New_York", u(2026, 7, 3, 1, 0)) == u(2026, 7, 6, 12, 0)


def test_never_callable() -> None:
    assert next_callable(win(), "UTC", u(2026, 7, 1)) is None
    t = u(2026, 7, 1)
    assert next_callable(win((["mon"], "08:00-09:00")), "UTC", t, max_days=3) is None
    assert next_callable(win((["mon"], "08:00-09:00")), "UTC", t, max_days=7) == t + timedelta(days=5, hours=8)
