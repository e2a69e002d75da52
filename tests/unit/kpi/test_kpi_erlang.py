"""Erlang B / C / A against the published case, against each other and against the simulator."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcore.kpi.erlang import (
    agents_for_service_level,
    asa,
    erlang_a,
    erlang_b,
    erlang_c,
    occupancy,
    service_level,
    traffic_erlangs,
)
from callcore.sim import AgentGroup, CallType, Exponential, Scenario, combine, naive_fifo, simulate

# The textbook case: 100 calls per 30 minutes, AHT 3 minutes, 80 % answered within 20 s.
CALLS, INTERVAL, AHT, TARGET = 100, 1800, 180, 20
A = 10.0


def test_published_case() -> None:
    assert traffic_erlangs(CALLS, INTERVAL, AHT) == pytest.approx(A)
    assert agents_for_service_level(CALLS, INTERVAL, AHT, TARGET, 0.80) == 14
    assert erlang_c(A, 14) == pytest.approx(0.1741, abs=5e-5)
    assert service_level(A, 14, AHT, TARGET) == pytest.approx(0.8884, abs=5e-5)
    assert occupancy(A, 14) == pytest.approx(0.714, abs=5e-4)
    assert asa(A, 14, AHT) == pytest.approx(0.17413 * 180 / 4, abs=1e-3)  # C·AHT/(N−A) ≈ 7.84 s
    # 13 agents are not enough for 80/20
    assert service_level(A, 13, AHT, TARGET) < 0.80


def test_erlang_b_known_values_and_edges() -> None:
    assert erlang_b(0, 0) == 1.0
    assert erlang_b(5, 0) == 1.0
    assert erlang_b(0, 3) == 0.0
    assert erlang_b(1, 1) == pytest.approx(0.5)
    assert erlang_b(2, 2) == pytest.approx(0.4)  # (4/2) / (1 + 2 + 2)
    # direct formula for a small case
    a, n = 7.3, 9
    direct = (a**n / math.factorial(n)) / sum(a**k / math.factorial(k) for k in range(n + 1))
    assert erlang_b(a, n) == pytest.approx(direct, rel=1e-12)
    # numerically stable far beyond where a**n overflows
    assert 0 < erlang_b(5000.0, 5200) < 0.01


def test_erlang_c_edges() -> None:
    assert erlang_c(0, 5) == 0.0
    assert erlang_c(5, 5) == 1.0
    assert erlang_c(6, 5) == 1.0
    assert service_level(6, 5, AHT, TARGET) == 0.0
    assert asa(5, 5, AHT) == math.inf
    assert agents_for_service_level(0, INTERVAL, AHT, TARGET, 0.8) == 0
    with pytest.raises(ValueError):
        erlang_c(1.0, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        erlang_b(-1.0, 2)


def test_max_occupancy_can_raise_staffing() -> None:
    assert agents_for_service_level(CALLS, INTERVAL, AHT, TARGET, 0.80, max_occupancy=0.70) == 15
    assert agents_for_service_level(CALLS, INTERVAL, AHT, TARGET, 0.80, max_occupancy=0.85) == 14


@settings(max_examples=60, deadline=None)
@given(a=st.floats(0.1, 300), extra=st.integers(1, 40))
def test_erlang_c_monotone_and_bounded(a: float, extra: int) -> None:
    n = math.floor(a) + extra
    c, c_next = erlang_c(a, n), erlang_c(a, n + 1)
    assert 0.0 <= c_next <= c <= 1.0
    assert erlang_b(a, n) <= c  # waiting is at least as likely as blocking would be
    assert service_level(a, n, 180, 20) <= service_level(a, n + 1, 180, 20) + 1e-12


# ---------------------------------------------------------------------------------------------------- Erlang A


def test_erlang_a_tends_to_erlang_c_as_patience_grows() -> None:
    lam, mu = CALLS / INTERVAL, 1 / AHT
    r = erlang_a(lam, mu, 14, 1e9, TARGET)
    assert r.p_wait == pytest.approx(erlang_c(A, 14), abs=1e-6)
    assert r.service_level == pytest.approx(service_level(A, 14, AHT, TARGET), abs=1e-6)
    assert r.asa == pytest.approx(asa(A, 14, AHT), abs=1e-4)
    assert r.p_abandon < 1e-6
    inf = erlang_a(lam, mu, 14, math.inf, TARGET)
    assert inf.p_abandon == 0.0 and inf.p_wait == pytest.approx(erlang_c(A, 14))


def test_erlang_a_more_patience_more_waiting() -> None:
    lam, mu = CALLS / INTERVAL, 1 / AHT
    results = [erlang_a(lam, mu, 12, patience, TARGET) for patience in (15, 60, 120, 600, 3600)]
    for impatient, patient in zip(results, results[1:]):
        assert patient.p_wait > impatient.p_wait
        assert patient.asa > impatient.asa
        assert patient.avg_wait > impatient.avg_wait
        assert patient.p_abandon < impatient.p_abandon
        assert patient.occupancy > impatient.occupancy


def test_erlang_a_internal_consistency() -> None:
    lam, mu, n, patience = 200 / 3600, 1 / 180, 11, 90.0
    r = erlang_a(lam, mu, n, patience, TARGET)
    # abandon rate = θ · E[queue length] (every waiting caller abandons at rate θ)
    assert r.p_abandon == pytest.approx(r.mean_queue_length / patience / lam, rel=1e-9)
    # Little: mean time in queue of all callers = E[queue] / λ; and = P(abandon) / θ for exponential patience
    assert r.avg_wait == pytest.approx(r.p_abandon * patience, rel=1e-9)
    # carried load = (1 − P(abandon))·λ/μ
    assert r.occupancy == pytest.approx((1 - r.p_abandon) * lam / mu / n, rel=1e-9)
    assert 0 < r.service_level_all_abandons <= r.service_level <= 1
    # an overloaded center is still stable with abandonment
    over = erlang_a(lam * 3, mu, n, patience, TARGET)
    assert 0 < over.p_abandon < 1 and over.p_wait > 0.9


def test_erlang_a_target_zero_is_the_no_wait_share() -> None:
    r = erlang_a(200 / 3600, 1 / 180, 12, 120.0, 0.0)
    assert r.service_level == pytest.approx(1 - r.p_wait, abs=1e-12)


def test_erlang_a_against_the_simulator() -> None:
    """M/M/12+M, 200 calls/h, AHT 180 s, patience 120 s: simulated (4 × 100 h) vs exact."""
    rate, n, patience = 200.0, 12, 120.0
    exact = erlang_a(rate / 3600, 1 / AHT, n, patience, TARGET)
    sc = Scenario(
        (CallType("q", rate, Exponential(AHT), patience=Exponential(patience)),),
        (AgentGroup("g", n, {"q": 1}),),
        horizon_seconds=100 * 3600.0,
        warmup_seconds=3600.0,
        target_seconds=TARGET,
    )
    sim = combine(simulate(sc, naive_fifo, seed=s) for s in range(4)).overall
    assert sim.offered > 70_000
    assert sim.abandon_rate == pytest.approx(exact.p_abandon, abs=0.006)
    assert sim.p_wait == pytest.approx(exact.p_wait, abs=0.02)
    assert sim.service_level == pytest.approx(exact.service_level, abs=0.015)
    assert sim.service_level_all_abandons == pytest.approx(exact.service_level_all_abandons, abs=0.015)
    assert sim.asa == pytest.approx(exact.asa, rel=0.1)
