"""The discrete-event simulator: determinism, agreement with Erlang C, abandonment, and its invariants."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcore.kpi.erlang import asa, erlang_c, occupancy, service_level
from callcore.sim import (
    AgentGroup,
    AgentView,
    CallerView,
    CallType,
    Constant,
    Exponential,
    LogNormal,
    RouterError,
    Scenario,
    app_queue_like,
    callcore_router,
    combine,
    generate_calls,
    has_skills,
    naive_fifo,
    queue_configs,
    simulate,
)

HOUR = 3600.0


def single(n: int = 14, rate: float = 200.0, aht: float = 180.0, hours: float = 8.0, patience=None, **kw) -> Scenario:
    ct = CallType("q", rate, Exponential(aht), patience=patience)
    return Scenario((ct,), (AgentGroup("g", n, {"q": 1}),), horizon_seconds=hours * HOUR, **kw)


def two_skill(hours: float = 8.0) -> Scenario:
    cts = (
        CallType("nl", 120, LogNormal(240, 0.8), patience=Exponential(120), wrap_up=Constant(15)),
        CallType("en", 50, Exponential(300), patience=Exponential(90)),
    )
    groups = (
        AgentGroup("nl", 6, {"nl": 9}),
        AgentGroup("both", 4, {"nl": 5, "en": 9}),
        AgentGroup("en", 2, {"en": 9}),
    )
    return Scenario(cts, groups, horizon_seconds=hours * HOUR)


def test_same_seed_same_result_and_different_seed_different_result() -> None:
    sc = two_skill()
    for router in (naive_fifo, app_queue_like(), callcore_router(queue_configs(sc))):
        a, b = simulate(sc, router, seed=7), simulate(sc, router, seed=7)
        assert a == b
        c = simulate(sc, router, seed=8)
        assert c.overall != a.overall


def test_calls_do_not_depend_on_the_router() -> None:
    """Common random numbers: the same seed gives the same calls, whatever the routing."""
    sc = two_skill()
    calls = generate_calls(sc, 3)
    assert calls == generate_calls(sc, 3)
    a, b = simulate(sc, naive_fifo, seed=3), simulate(sc, app_queue_like(), seed=3)
    assert a.overall.offered == b.overall.offered == len(calls)
    assert {k: v.offered for k, v in a.per_type.items()} == {k: v.offered for k, v in b.per_type.items()}


def test_eight_hours_run_fast() -> None:
    import time

    sc = two_skill(hours=8)
    t0 = time.perf_counter()
    r = simulate(sc, callcore_router(queue_configs(sc)), seed=1)
    assert time.perf_counter() - t0 < 5.0
    assert r.overall.offered > 1000


def test_mmn_matches_erlang_c() -> None:
    """M/M/14, the published case (A = 10 erl), 6 × 100 h: SL, P(wait), ASA, occupancy within tolerance."""
    runs = [simulate(single(hours=100, warmup_seconds=HOUR), naive_fifo, seed=s) for s in range(6)]
    total = combine(runs).overall
    assert total.offered > 100_000
    assert total.abandoned == 0 and total.unresolved == 0 and total.answered == total.offered
    assert total.service_level == pytest.approx(service_level(10, 14, 180, 20), abs=0.015)
    assert total.service_level == total.service_level_all_abandons
    assert total.p_wait == pytest.approx(erlang_c(10, 14), abs=0.02)
    assert total.asa == pytest.approx(asa(10, 14, 180), rel=0.15)
    occ = statistics.mean(r.occupancy["g"] for r in runs)
    assert occ == pytest.approx(occupancy(10, 14), abs=0.01)


def test_no_patience_no_abandons() -> None:
    r = simulate(single(n=11), naive_fifo, seed=1).overall
    assert r.abandoned == 0 and r.answered == r.offered


def test_tiny_patience_mostly_abandons() -> None:
    r = simulate(single(n=5, patience=Exponential(0.5)), naive_fifo, seed=1).overall  # 10 erl on 5 agents
    assert r.p_wait > 0.5
    assert r.abandon_rate > 0.5
    assert r.answered + r.abandoned == r.offered


def test_no_agents_with_the_skill_means_unresolved_or_abandoned() -> None:
    cts = (CallType("x", 30, Exponential(100)), CallType("y", 30, Exponential(100), patience=Constant(40)))
    sc = Scenario(cts, (AgentGroup("g", 2, {"z": 9}),), horizon_seconds=HOUR)
    r = simulate(sc, naive_fifo, seed=2)
    x, y = r.per_type["x"], r.per_type["y"]
    assert x.unresolved == x.offered > 0 and x.service_level == 0.0
    assert y.abandoned == y.offered > 0 and y.abandoned_within_target == 0 and y.service_level == 0.0
    assert r.occupancy["g"] == 0.0


def test_service_level_variants() -> None:
    """Abandons within the target are left out of the main service level, not out of the variant."""
    r = simulate(single(n=10, patience=Exponential(30)), naive_fifo, seed=4).overall
    assert r.abandoned_within_target > 0
    assert r.service_level == r.answered_within_target / (r.offered - r.abandoned_within_target)
    assert r.service_level_all_abandons == r.answered_within_target / r.offered
    assert r.service_level > r.service_level_all_abandons


def test_time_varying_arrivals() -> None:
    ct = CallType("q", [(0.0, 0.0), (HOUR, 360.0), (2 * HOUR, 0.0)], Exponential(60))
    sc = Scenario((ct,), (AgentGroup("g", 20, {"q": 1}),), horizon_seconds=3 * HOUR)
    calls = generate_calls(sc, 1)
    assert all(HOUR <= c.arrive < 2 * HOUR for c in calls)
    assert 360 - 4 * 19 < len(calls) < 360 + 4 * 19
    assert ct.mean_calls(3 * HOUR) == pytest.approx(360)


def test_wrap_up_counts_in_occupancy_and_delays_the_next_call() -> None:
    base = single(n=16, aht=180)
    wrapped = Scenario(
        (CallType("q", 200, Exponential(180), wrap_up=Constant(60)),), base.agent_groups, base.horizon_seconds
    )
    a, b = simulate(base, naive_fifo, seed=5), simulate(wrapped, naive_fifo, seed=5)
    # +60 s per call: +200 · 60 / 3600 / 16 ≈ 0.21
    assert b.occupancy["g"] - a.occupancy["g"] == pytest.approx(200 * 60 / 3600 / 16, abs=0.03)
    assert b.overall.asa > a.overall.asa


def test_ring_delay_adds_to_the_wait_and_callers_can_abandon_while_ringing() -> None:
    plain = single(n=30, patience=Constant(3.0))
    ringing = Scenario(plain.call_types, plain.agent_groups, plain.horizon_seconds, ring_delay=5.0)
    a, b = simulate(plain, naive_fifo, seed=1).overall, simulate(ringing, naive_fifo, seed=1).overall
    assert a.abandoned == 0  # 10 erl on 30 agents: nobody waits 3 s
    assert b.answered == 0 and b.abandoned == b.offered  # every caller hangs up during the 5 s ring
    ringing_ok = Scenario(single(n=30).call_types, plain.agent_groups, plain.horizon_seconds, ring_delay=5.0)
    c = simulate(ringing_ok, naive_fifo, seed=1).overall
    assert c.asa >= 5.0 and c.answered == c.offered


# ----------------------------------------------------------------------------------------- router contract


def test_engine_rejects_a_double_assignment() -> None:
    def greedy_twice(now: float, callers: list[CallerView], agents: list[AgentView]) -> list[tuple[str, str]]:
        return [(c.id, agents[0].id) for c in callers]  # the same agent for every waiting caller

    sc = single(n=2, rate=600)
    with pytest.raises(RouterError, match="offered twice"):
        simulate(sc, greedy_twice, seed=1)


def test_engine_rejects_an_offer_without_the_skills() -> None:
    def anyone(now: float, callers: list[CallerView], agents: list[AgentView]) -> list[tuple[str, str]]:
        return [(c.id, a.id) for c, a in zip(callers, agents)]

    cts = (CallType("x", 60, Exponential(100)),)
    sc = Scenario(cts, (AgentGroup("g", 2, {"y": 9}),), horizon_seconds=HOUR)
    with pytest.raises(RouterError, match="lacks the skills"):
        simulate(sc, anyone, seed=1)


def test_engine_rejects_unknown_caller() -> None:
    def ghost(now: float, callers: list[CallerView], agents: list[AgentView]) -> list[tuple[str, str]]:
        return [("nobody", agents[0].id)]

    with pytest.raises(RouterError, match="not waiting"):
        simulate(single(n=2), ghost, seed=1)


def _recording(router):
    """Wrap a router: check what it is shown and given back, like a second pair of eyes on the engine."""
    seen: list[int] = []

    def wrapped(now: float, callers: list[CallerView], agents: list[AgentView]) -> list[tuple[str, str]]:
        assert callers and agents
        assert all(a.state == "ready" for a in agents)
        assert len({a.id for a in agents}) == len(agents) and len({c.id for c in callers}) == len(callers)
        assert [c.enqueued_at for c in callers] == sorted(c.enqueued_at for c in callers)
        offers = router(now, callers, agents)
        by_id = {a.id: a for a in agents}
        skills = {c.id: c.required_skills for c in callers}
        for cid, aid in offers:
            assert has_skills(by_id[aid].skills, skills[cid])
        seen.append(len(offers))
        return offers

    wrapped.seen = seen  # type: ignore[attr-defined]
    return wrapped


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_nl=st.integers(0, 5),
    n_both=st.integers(0, 4),
    n_en=st.integers(0, 3),
    ring=st.sampled_from([0.0, 2.0]),
    which=st.sampled_from(["naive", "app_queue", "callcore"]),
)
def test_invariants_hold_for_random_centers(seed: int, n_nl: int, n_both: int, n_en: int, ring: float,
                                             which: str) -> None:
    cts = (
        CallType("nl", 90, LogNormal(200, 1.0), patience=Exponential(60), wrap_up=Exponential(10)),
        CallType("en", 40, Exponential(250), patience=Exponential(45), priority=1),
    )
    groups = (AgentGroup("nl", n_nl, {"nl": 9}), AgentGroup("both", n_both, {"nl": 4, "en": 8}),
              AgentGroup("en", n_en, {"en": 9}))
    sc = Scenario(cts, groups, horizon_seconds=2 * HOUR, ring_delay=ring)
    inner = {"naive": naive_fifo, "app_queue": app_queue_like(), "callcore": callcore_router(queue_configs(sc))}
    router = _recording(inner[which])
    r = simulate(sc, router, seed=seed)  # the engine's own assertions run too
    for st_ in (*r.per_type.values(), r.overall):
        assert st_.offered == st_.answered + st_.abandoned + st_.unresolved
        assert st_.answered_within_target <= st_.answered
        assert st_.abandoned_within_target <= st_.abandoned
    assert r.offers >= r.overall.answered
    assert all(0.0 <= occ <= 1.0 for occ in r.occupancy.values())
    if n_nl + n_both + n_en == 0:
        assert r.overall.answered == 0 and r.router_calls == 0


def test_nan_rates_without_calls() -> None:
    sc = Scenario((CallType("q", 0.0, Exponential(60)),), (AgentGroup("g", 1, {"q": 1}),), horizon_seconds=HOUR)
    r = simulate(sc, naive_fifo).overall
    assert r.offered == 0 and math.isnan(r.service_level) and math.isnan(r.asa)
