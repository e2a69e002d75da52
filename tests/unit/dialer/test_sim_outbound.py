"""The outbound simulator: determinism, common random numbers, stop rules, compliance counting, baselines."""

from __future__ import annotations

import dataclasses

import pytest

from callcore.dialer.compliance import preset
from callcore.dialer.pacing import PacingSnapshot
from callcore.sim.dialer_baselines import FixedRatio, Progressive, VicidialAdapt
from callcore.sim.model import Constant, LogNormal
from callcore.sim.outbound import CallcorePacer, OutboundResult, OutboundScenario, simulate_outbound

HOUR = 3600.0
SMALL = OutboundScenario(agents=10, hours=2.0, answer_rate=0.3, talk=LogNormal(120.0, 1.0))


class Sequential:
    """One call at a time; records every attempt outcome in dial order."""

    name = "sequential"

    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []

    def launches(self, now: float, snap: PacingSnapshot) -> int:
        return 1 if snap.may_dial and snap.agents_ready and not snap.ringing else 0

    def observe(self, now: float, kind: str, value: float) -> None:
        if kind in ("live", "other"):
            self.seen.append((kind, round(value, 9)))


def test_deterministic() -> None:
    a = simulate_outbound(SMALL, CallcorePacer(), 5)
    b = simulate_outbound(SMALL, CallcorePacer(), 5)
    assert a == b
    assert simulate_outbound(SMALL, CallcorePacer(), 6) != a


def test_common_random_numbers() -> None:
    # the same behaviour under two names gives the same shift
    a = simulate_outbound(SMALL, Progressive(), 3)
    b = simulate_outbound(SMALL, FixedRatio(1.0), 3)
    assert dataclasses.replace(b, policy=a.policy) == a
    # the k-th attempt has the same outcome whenever it is dialled
    p1, p2 = Sequential(), Sequential()
    simulate_outbound(SMALL, p1, 3)
    simulate_outbound(dataclasses.replace(SMALL, tick=2.5), p2, 3)
    n = min(len(p1.seen), len(p2.seen))
    assert n > 100 and p1.seen[:n] == p2.seen[:n]


def test_progressive_never_abandons_and_metrics_are_consistent() -> None:
    r = simulate_outbound(SMALL, Progressive(), 1)
    assert r.abandoned == 0 and r.abandon_rate == 0.0 and r.connected > 0
    assert r.live == r.connected + r.abandoned + r.amd_false_positives
    assert 0 < r.utilization < r.occupancy <= 1.0
    assert r.utilization < 120.0 / 150.0  # talk / (talk + wrap-up) bounds it
    assert r.logged_in_seconds == pytest.approx(10 * 2 * HOUR)
    assert r.max_lines_per_agent <= 1.0
    assert sum(h[0] for h in r.hourly) == pytest.approx(r.counted_live)
    assert r.connects_per_agent_hour == pytest.approx(r.connected / 20.0)


@pytest.mark.parametrize("policy", [CallcorePacer(), Progressive(), VicidialAdapt(), FixedRatio(2.0),
                                    FixedRatio(3.0, "available")], ids=lambda p: p.name)
def test_no_dialing_when_closed_or_without_agents(policy: object) -> None:
    sc = dataclasses.replace(SMALL, closed=((1800.0, 3600.0),), logouts=((5400.0, 1.0),))
    r = simulate_outbound(sc, policy, 2)  # type: ignore[arg-type]
    assert r.dialed_while_closed == 0
    assert r.logged_in_seconds < 10 * 2 * HOUR


def test_leads_run_out() -> None:
    r = simulate_outbound(dataclasses.replace(SMALL, leads=150), CallcorePacer(), 1)
    assert r.attempts == 150


def test_amd_false_positives_count_under_ofcom_only() -> None:
    us = dataclasses.replace(SMALL, amd_false_positive=0.05, policy=preset("us_ftc"))
    uk = dataclasses.replace(us, policy=preset("uk_ofcom"))
    r_us, r_uk = simulate_outbound(us, Progressive(), 4), simulate_outbound(uk, Progressive(), 4)
    assert r_us.amd_false_positives == r_uk.amd_false_positives > 0
    assert r_us.counted_abandons == 0
    assert r_uk.counted_abandons == r_uk.amd_false_positives


def test_inbound_takes_agents_first() -> None:
    sc = dataclasses.replace(SMALL, inbound_per_hour=40.0)
    r = simulate_outbound(sc, CallcorePacer(), 1)
    assert r.inbound_handled > 50 and r.connected > 0
    assert r.abandon_rate <= 0.03


def test_pacer_beats_progressive_within_the_limit() -> None:
    sc = OutboundScenario(agents=20, hours=3.0, answer_rate=0.2, talk=LogNormal(180.0, 1.0))
    prog = simulate_outbound(sc, Progressive(), 1)
    pacer = CallcorePacer()
    r = simulate_outbound(sc, pacer, 1)
    assert r.utilization > prog.utilization * 1.15
    assert r.abandon_rate <= 0.03 and r.worst_hour_rate <= 0.03
    assert r.min_headroom_after_first_hour >= 0
    assert pacer.reasons["predictive"] > 0 and pacer.reasons["warmup"] > 0


def test_vicidial_level_stays_between_1_and_3() -> None:
    v = VicidialAdapt("AVERAGE")
    simulate_outbound(SMALL, v, 1)
    levels = [lv for _, lv in v.levels]
    assert len(levels) > 400 and min(levels) >= 1.0 and max(levels) <= 3.0
    assert max(levels) > 1.0


def test_baseline_validation_and_bad_policies() -> None:
    with pytest.raises(ValueError):
        FixedRatio(0.5)
    with pytest.raises(ValueError):
        VicidialAdapt("TAPERED")

    class Bad(Progressive):
        def launches(self, now: float, snap: PacingSnapshot) -> int:
            return -1

    with pytest.raises(ValueError, match="returned -1"):
        simulate_outbound(SMALL, Bad(), 1)


def test_answer_rate_schedule_and_windows() -> None:
    sc = dataclasses.replace(SMALL, answer_rate=((0.0, 0.3), (HOUR, 0.1)), wrap=Constant(0.0))
    assert sc.answer_rate_at(10.0) == 0.3 and sc.answer_rate_at(HOUR) == 0.1
    r = simulate_outbound(sc, Progressive(), 1)
    assert isinstance(r, OutboundResult)
    assert len(r.hourly) == 2 and len(r.quarterly) == 8
    assert r.busy_seconds == pytest.approx(r.talk_seconds)  # no wrap-up
