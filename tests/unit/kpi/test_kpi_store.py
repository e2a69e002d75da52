"""The KPI store on real PostgreSQL: the scripted morning written by the real EventWriter; the SQL selects what the
pure fold needs (same rows as the hand-checked fold), and "today so far" (real time) equals the historical report
of the same period made later."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from callcore.kpi.report import KpiData, agent_rows, campaign_rows, fold, ivr_rows, queue_rows
from callcore.kpi.store import PgKpis
from tests.unit.kpi import scenario as sc


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def kpis(pg_pool: Any) -> PgKpis:
    await sc.write_scenario(pg_pool)
    return PgKpis(pg_pool, sc.SETTINGS, clock=Clock(sc.AS_OF), cache_seconds=0)


async def test_the_sql_selects_what_the_hand_checked_fold_uses(kpis: PgKpis):
    start, end = sc.at("09:00:00"), sc.at("11:00:00")
    pure = fold(KpiData(start, end, sc.AS_OF, sc.events(), sc.wraps(), sc.agent_rows(start, end), sc.call_starts(),
                        sc.attempts()), sc.SETTINGS, "1h")
    assert await kpis.queues(start, end, "1h") == queue_rows(pure)
    assert await kpis.agents(start, end, "1h") == agent_rows(pure)
    assert await kpis.campaigns(start, end, "1h") == campaign_rows(pure)
    assert await kpis.ivr(start, end, "1h") == ivr_rows(pure)
    # filtered by name
    assert [r.queue for r in await kpis.queues(start, end, None, queue="support")] == ["support"]
    sales = (await kpis.queues(start, end, "1h", queue="sales"))[0]
    assert (sales.service_level_pct, sales.fcr_pct, sales.csat_average) == (33.33, 50.0, 4.0)


async def test_real_time_equals_historical_on_the_same_data(kpis: PgKpis):
    clock: Clock = kpis.clock  # type: ignore[assignment]
    today_start, today_end = kpis.today()
    assert (today_start, today_end) == (sc.DAY, sc.DAY + timedelta(days=1))
    live = {
        "queues": await kpis.queues(today_start, today_end, "1h"),
        "agents": await kpis.agents(today_start, today_end, "1h"),
        "campaigns": await kpis.campaigns(today_start, today_end, "1h"),
        "ivr": await kpis.ivr(today_start, today_end, "1h"),
    }
    sl_today = await kpis.service_level_today("sales")
    whole_day = (await kpis.queues(*kpis.today(), None, queue="sales"))[0]

    clock.now = sc.AS_OF + timedelta(days=1, hours=1)  # the next day: the same period is history now
    later = {
        "queues": await kpis.queues(sc.DAY, sc.AS_OF, "1h"),
        "agents": await kpis.agents(sc.DAY, sc.AS_OF, "1h"),
        "campaigns": await kpis.campaigns(sc.DAY, sc.AS_OF, "1h"),
        "ivr": await kpis.ivr(sc.DAY, sc.AS_OF, "1h"),
    }
    for kind, rows in later.items():
        so_far = [r for r in live[kind] if r.start < sc.AS_OF]
        assert so_far == rows, kind
        rest = [r for r in live[kind] if r.start >= sc.AS_OF]
        assert all(getattr(r, "offered", 0) == 0 and getattr(r, "attempts", 0) == 0
                   and getattr(r, "answered", 0) == 0 and getattr(r, "logged_in_seconds", 0) == 0 for r in rest)
    # QueueKpis.service_level_today is the same number: 1 within 20 s / (3 answered + 1 abandoned after 20 s)
    assert sl_today == whole_day.service_level_pct == 25.0
    assert await kpis.service_level_today("nonexistent") is None


async def test_staffing_and_time_zone_display(kpis: PgKpis):
    rows = await kpis.staffing("sales", sc.at("09:00:00"), sc.at("11:00:00"), "1h", target_sl=0.9,
                               target_seconds=15)
    assert [r.calls for r in rows] == [4, 3] and rows[0].target_sl_pct == 90.0 and rows[0].target_seconds == 15
    shown = await kpis.queues(sc.at("09:00:00"), sc.at("11:00:00"), "1h", "Europe/Amsterdam", queue="sales")
    assert [r.start.isoformat() for r in shown] == ["2026-03-02T10:00:00+01:00", "2026-03-02T11:00:00+01:00"]


async def test_calls_outside_the_period_that_complete_a_contact_are_fetched(kpis: PgKpis):
    # 09:00-09:06: C1 is offered; its survey call S1 starts at 09:06:00, outside: found through survey_of
    (sales,) = await kpis.queues(sc.at("09:00:00"), sc.at("09:06:00"), queue="sales")
    assert (sales.offered, sales.csat_responses, sales.csat_average) == (1, 1, 4.0)
    # 10:00-10:25: C10 takes the virtual-hold offer; its callback K10 (10:29:50) is fetched and merged:
    # answered after 605 s; C9 overflowed at 10:12
    (sales,) = await kpis.queues(sc.at("10:00:00"), sc.at("10:25:00"), queue="sales")
    assert (sales.offered, sales.answered, sales.overflowed, sales.asa_seconds, sales.aht_seconds) == (
        2, 1, 1, 605.0, 210.0)
    # K10 on its own (10:29:50-11:00) is no contact: its original was offered before the period
    (sales,) = await kpis.queues(sc.at("10:29:00"), sc.at("10:31:00"), queue="sales")
    assert sales.offered == 0
