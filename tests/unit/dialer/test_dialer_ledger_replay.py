"""A restarted (or stopped and started) campaign still counts the abandons it spent in its window: the dialer's
ledger replays the attempts recorded in PostgreSQL (real PostgreSQL, the real ACD, no calls placed)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from callcore.leads import store
from tests.unit.dialer.test_dialer_callbacks import NOW, campaign, clock, lead, world  # noqa: F401


async def attempt(pool, cfg, the_lead, outcome: str, ended, *, delay: float | None = None) -> None:
    await store.record_attempt(pool, "c", cfg, store.Attempt(
        number=the_lead.number, started_at=ended - timedelta(seconds=30), outcome=outcome, lead_id=the_lead.id,
        attempt_id=uuid.uuid4(), ended_at=ended, answered_at=ended - timedelta(seconds=20),
        connect_delay_seconds=delay))


async def test_the_abandons_of_the_window_before_a_restart_still_count(pg_pool, clock):  # noqa: F811
    cfg = campaign(mode="predictive", abandon={"preset": "uk_ofcom"})  # 24-hour window
    people = [await lead(pg_pool, cfg, f"+3120123450{i}") for i in range(6)]
    await attempt(pg_pool, cfg, people[0], "human", NOW - timedelta(hours=30), delay=1.0)  # outside the window
    await attempt(pg_pool, cfg, people[1], "abandoned", NOW - timedelta(hours=30))       # outside the window
    await attempt(pg_pool, cfg, people[2], "human", NOW - timedelta(hours=5), delay=1.0)
    await attempt(pg_pool, cfg, people[3], "human", NOW - timedelta(hours=2), delay=3.5)  # agent too late
    await attempt(pg_pool, cfg, people[4], "abandoned", NOW - timedelta(minutes=10))
    await attempt(pg_pool, cfg, people[5], "machine", NOW - timedelta(minutes=5))
    dialer, _acd, _network = world(pg_pool, cfg)
    await dialer.start("c")
    try:
        ledger = dialer.run_of("c").ledger
        assert ledger is not None
        counts = ledger.counts(dialer.now())
        assert (counts.live, counts.abandons) == (3, 2)  # the 24 hours before the start, not the 30-hour-old ones
        assert ledger.counts(dialer.now(), 3600).live == 1  # the one-hour control window: the last abandon only
    finally:
        await dialer.close()
