"""Intervals in a time zone (daylight-saving days included) and the staffing recommendation."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from callcore.kpi.erlang import erlang_a, service_level
from callcore.kpi.periods import bucket_start, buckets, start_of_day, zone
from callcore.kpi.report import KpiData, fold
from callcore.kpi.staffing import StaffingInput, erlang_a_staffing, erlang_c_staffing, staffing, staffing_rows
from tests.unit.kpi import scenario as sc

AMS = zone("Europe/Amsterdam")
UTC = timezone.utc


def test_local_days_and_hours():
    # 2026-03-29 is the spring-forward day in Amsterdam: 23 hours
    at = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
    day = bucket_start(at, "1d", AMS)
    assert day == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    days = buckets(day, day + timedelta(days=2), "1d", AMS)
    assert [b.seconds for b in days] == [23 * 3600, 24 * 3600, 3600]  # cut at the period's end
    hours = buckets(day, datetime(2026, 3, 29, 22, 0, tzinfo=UTC), "1h", AMS)
    assert len(hours) == 23 and all(b.seconds == 3600 for b in hours)
    # an instant in a quarter hour of a +05:30 zone
    kolkata = zone("Asia/Kolkata")
    q = bucket_start(datetime(2026, 3, 2, 4, 50, tzinfo=UTC), "15m", kolkata)  # 10:20 local
    assert q.astimezone(kolkata).strftime("%H:%M") == "10:15"
    hour = bucket_start(datetime(2026, 3, 2, 4, 50, tzinfo=UTC), "1h", kolkata)
    assert hour.tzinfo == UTC and hour.astimezone(kolkata).strftime("%H:%M") == "10:00"


def test_fall_back_day_has_25_hours_and_partial_first_bucket():
    day = start_of_day(datetime(2026, 10, 25, 12, tzinfo=UTC), AMS)
    (b,) = buckets(day, day + timedelta(hours=25), "1d", AMS)
    assert b.seconds == 25 * 3600
    first = buckets(day + timedelta(minutes=20), day + timedelta(hours=2), "1h", AMS)
    assert [x.seconds for x in first] == [40 * 60, 3600]


def test_bad_names_and_too_many_intervals():
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("Mars/Olympus")
    with pytest.raises(ValueError, match="intervals"):
        buckets(datetime(2000, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC), "15m", UTC)


def test_erlang_c_staffing_is_the_textbook_case():
    # 100 calls in 30 minutes, AHT 180 s, 80 % in 20 s: A = 10 erlangs, 14 agents, SL 88.8 %
    c = erlang_c_staffing(StaffingInput(100, 1800, 180, 20, 0.80))
    assert c.agents == 14 and c.service_level == pytest.approx(0.8884, abs=1e-4)
    assert c.occupancy == pytest.approx(10 / 14)
    # one agent fewer misses the target
    assert service_level(10.0, 13, 180, 20) < 0.80


def test_erlang_a_needs_no_more_than_erlang_c_and_is_the_smallest():
    inp = StaffingInput(100, 1800, 180, 20, 0.80, patience_seconds=120)
    c, a = staffing(inp)
    assert a.agents <= c.agents
    lam, mu = 100 / 1800, 1 / 180
    assert erlang_a(lam, mu, a.agents, 120, 20).service_level >= 0.80
    assert erlang_a(lam, mu, a.agents - 1, 120, 20).service_level < 0.80
    # infinite patience: Erlang A is Erlang C
    assert erlang_a_staffing(StaffingInput(100, 1800, 180, 20, 0.80, math.inf)).agents == 14
    # a cap on abandons can only add agents
    capped = erlang_a_staffing(StaffingInput(100, 1800, 180, 20, 0.80, 120, max_abandon=0.01))
    assert capped.agents >= a.agents and capped.abandon_rate <= 0.01


def test_no_calls_need_no_agents_and_inputs_are_checked():
    c, a = staffing(StaffingInput(0, 900, 180, 20, 0.8, 60))
    assert c.agents == a.agents == 0
    for bad in (dict(target_sl=1.0), dict(aht_seconds=0), dict(interval_seconds=0), dict(patience_seconds=0)):
        args = dict(calls=10, interval_seconds=900, aht_seconds=180, target_seconds=20, target_sl=0.8) | bad
        with pytest.raises(ValueError):
            StaffingInput(**args)


def test_staffing_rows_from_the_scripted_morning():
    start, end = sc.at("09:00:00"), sc.at("11:00:00")
    data = KpiData(start, end, sc.AS_OF, sc.events(), sc.wraps(), [], sc.call_starts())
    rows = staffing_rows(fold(data, sc.SETTINGS, "1h"), "sales")
    r9, r10 = rows
    # 09: offered 5, 1 short abandon -> 4 calls in 3600 s; AHT 345; patience 97 / 2 = 48.5 s
    assert (r9.calls, r9.arrival_rate_per_hour, r9.aht_seconds, r9.patience_seconds) == (4, 4.0, 345.0, 48.5)
    assert r9.traffic_erlangs == pytest.approx(4 * 345 / 3600, abs=1e-4)
    expected = erlang_c_staffing(StaffingInput(4, 3600, 345, 20, 0.80))
    assert r9.erlang_c_agents == expected.agents
    a = erlang_a_staffing(StaffingInput(4, 3600, 345, 20, 0.80, 48.5), upper=expected.agents)
    assert r9.erlang_a_agents == a.agents and r9.target_sl_pct == 80.0 and r9.target_seconds == 20.0
    # 10: no abandons, patience unknown: Erlang A = Erlang C
    assert r10.patience_seconds is None and r10.erlang_a_agents == r10.erlang_c_agents


def test_the_interval_still_running_is_measured_up_to_now():
    start, end = sc.at("09:00:00"), sc.at("12:00:00")
    data = KpiData(start, end, sc.at("10:30:00"), sc.events(), sc.wraps(), [], sc.call_starts())
    rows = staffing_rows(fold(data, sc.SETTINGS, "1h"), "sales")
    # 09-10 complete; 10-11 measured for 1800 s so far; 11-12 has not begun
    assert [r.measured_seconds for r in rows] == [3600, 1800]
    # by 10:30: C9 (overflowed 10:12) and C10 (waiting for its callback) were offered: 2 calls in 1800 s
    assert rows[1].calls == 2 and rows[1].arrival_rate_per_hour == 4.0
