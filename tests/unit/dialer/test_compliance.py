"""Abandonment policy presets and the pure sliding-window ledger."""

from __future__ import annotations

import random

import pytest

from callcore.dialer.compliance import (
    PRESETS,
    AbandonLedger,
    AbandonPolicy,
    Budget,
    WindowCounts,
    is_abandoned,
    preset,
)

HOUR = 3600.0
DAY = 24 * HOUR


def test_presets() -> None:
    us, uk = PRESETS["us_ftc"], PRESETS["uk_ofcom"]
    assert (us.limit, us.window_seconds, us.connect_limit_seconds) == (0.03, 30 * DAY, 2.0)
    assert not us.count_amd_false_positives and us.no_redial_after_abandon_seconds == 0
    assert (uk.limit, uk.window_seconds, uk.connect_limit_seconds) == (0.03, DAY, 2.0)
    assert uk.count_amd_false_positives and uk.no_redial_after_abandon_seconds == 72 * HOUR
    assert us.min_ring_seconds == uk.min_ring_seconds == 15.0
    assert preset("uk_ofcom", amd_false_positive_rate=0.1).amd_false_positive_rate == 0.1
    assert preset("us_ftc") is us
    with pytest.raises(ValueError, match="unknown abandonment preset"):
        preset("fr_arcep")


@pytest.mark.parametrize("kw", [{"limit": -0.01}, {"limit": 1.0}, {"window_seconds": 0}, {"connect_limit_seconds": -1},
                                {"amd_false_positive_rate": 1.5}, {"no_redial_after_abandon_seconds": -1}])
def test_policy_validation(kw: dict) -> None:
    with pytest.raises(ValueError):
        AbandonPolicy(**kw)


def test_is_abandoned_uses_the_connect_limit() -> None:
    p = PRESETS["us_ftc"]
    assert not is_abandoned(10.0, 12.0, p)
    assert is_abandoned(10.0, 12.01, p)
    assert is_abandoned(10.0, None, p)


def test_window_counts() -> None:
    w = WindowCounts(3600, live=200, abandons=4)
    assert w.rate == 0.02
    assert w.headroom(0.03) == pytest.approx(2.0)
    assert WindowCounts(60).rate == 0.0
    b = Budget.empty()
    assert b.remaining == 0.0 and b.control == ()


def test_ledger_sliding_windows() -> None:
    led = AbandonLedger(AbandonPolicy(window_seconds=100.0), control_windows=[10.0])
    for t in range(50):
        led.record_live(float(t), abandoned=(t % 10 == 0))
    assert led.counts(49.0) == WindowCounts(100.0, 50.0, 5.0)
    assert led.counts(49.0, 10.0) == WindowCounts(10.0, 10.0, 1.0)  # t = 40..49
    assert led.counts(99.5) == WindowCounts(100.0, 50.0, 5.0)
    assert led.counts(100.0).live == 49.0  # the event at 0 left (now - t >= window)
    assert led.counts(200.0) == WindowCounts(100.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="no control window"):
        led.counts(200.0, 30.0)


def test_remaining_and_may_spend() -> None:
    led = AbandonLedger(PRESETS["us_ftc"])
    assert led.remaining(0.0) == 0.0 and led.may_spend(0.0) == 0  # an empty window allows nothing
    for k in range(100):
        led.record_live(float(k), abandoned=False)
    assert led.remaining(100.0) == pytest.approx(3.0)
    assert led.may_spend(100.0) == 3
    led.record_live(101.0, abandoned=True)
    led.record_live(102.0, abandoned=True)
    assert led.may_spend(103.0) == 1
    for k in range(3):
        led.record_live(104.0 + k, abandoned=True)
    assert led.remaining(110.0) < 0 and led.may_spend(110.0) == 0


def test_time_must_not_go_backwards() -> None:
    led = AbandonLedger(PRESETS["us_ftc"])
    led.record_live(10.0, abandoned=False)
    with pytest.raises(ValueError, match="backwards"):
        led.record_live(9.0, abandoned=False)


def test_amd_counting_follows_the_policy() -> None:
    us = AbandonLedger(preset("us_ftc", amd_false_positive_rate=0.1))
    uk = AbandonLedger(preset("uk_ofcom", amd_false_positive_rate=0.1))
    for led in (us, uk):
        for k in range(10):
            led.record_amd_machine(float(k))
        led.record_amd_false_positive(20.0)
    assert us.counts(30.0) == WindowCounts(30 * DAY, 0.0, 0.0)
    c = uk.counts(30.0)
    assert c.live == pytest.approx(2.0) and c.abandons == pytest.approx(2.0)  # 10 x 0.1 estimated + 1 known


def test_no_redial_after_abandon() -> None:
    led = AbandonLedger(PRESETS["uk_ofcom"])
    led.record_live(0.0, abandoned=True, number="+447700900123")
    led.record_live(1.0, abandoned=False, number="+447700900124")
    assert not led.redial_allowed("+447700900123", 71 * HOUR)
    assert led.redial_allowed("+447700900123", 72 * HOUR)
    assert led.redial_allowed("+447700900124", 2.0)
    us = AbandonLedger(PRESETS["us_ftc"])
    us.record_live(0.0, abandoned=True, number="+12025550123")
    assert us.redial_allowed("+12025550123", 1.0)


def test_budget_snapshot() -> None:
    led = AbandonLedger(PRESETS["us_ftc"], control_windows=[3600.0, 900.0])
    led.record_live(0.0, abandoned=False)
    led.record_live(1000.0, abandoned=True)
    b = led.budget(1500.0)
    assert b.limit == 0.03
    assert [w.seconds for w in b.control] == [900.0, 3600.0]  # shortest first
    assert b.control[0] == WindowCounts(900.0, 1.0, 1.0)
    assert b.control[1] == WindowCounts(3600.0, 2.0, 1.0)
    assert b.remaining == pytest.approx(0.03 * 2 - 1)


def test_budget_lists_recent_abandons_newest_first() -> None:
    led = AbandonLedger(PRESETS["us_ftc"], control_windows=[3600.0], recent_seconds=1000.0)
    led.record_live(0.0, abandoned=True)
    led.record_live(10.0, abandoned=False)
    led.record_live(500.0, abandoned=True)
    assert led.budget(600.0).recent_abandons == ((100.0, 1.0), (600.0, 1.0))
    assert led.budget(1200.0).recent_abandons == ((700.0, 1.0),)  # the first one is older than 1000 s
    assert led.budget(1500.0).recent_abandons == ()
    uk = AbandonLedger(preset("uk_ofcom", amd_false_positive_rate=0.2))
    uk.record_amd_machine(5.0)  # an estimated fifth of an abandon
    assert uk.budget(6.0).recent_abandons == ((1.0, pytest.approx(0.2)),)
    assert AbandonLedger(PRESETS["us_ftc"], recent_seconds=0).budget(1.0).recent_abandons == ()
    with pytest.raises(ValueError):
        AbandonLedger(PRESETS["us_ftc"], recent_seconds=-1.0)
    assert Budget.empty().recent_abandons == ()


def test_ledger_matches_brute_force_over_many_events() -> None:
    rng = random.Random(7)
    led = AbandonLedger(AbandonPolicy(window_seconds=500.0), control_windows=[60.0])
    events: list[tuple[float, bool]] = []
    t = 0.0
    for _ in range(20000):
        t += rng.expovariate(1.0)
        ab = rng.random() < 0.05
        led.record_live(t, abandoned=ab)
        events.append((t, ab))
        if rng.random() < 0.01:
            for w in (500.0, 60.0):
                inside = [a for (s, a) in events if t - s < w]
                got = led.counts(t, None if w == 500.0 else w)
                assert got.live == len(inside) and got.abandons == sum(inside)
    assert len(led._t) < 5000  # old events are dropped once every window is past them
