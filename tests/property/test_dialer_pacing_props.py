"""Properties of the pure pacer over random snapshots, and of the pacer in the simulator over many seeds:

- never more calls in flight than allowed (line cap, leads), never a negative count;
- nothing when ``may_dial`` is false, no agent is logged in or none can take a call;
- never below the progressive floor when dialling is allowed; exactly progressive when the budget is exhausted;
- fewer (or as many) calls as the window's abandons grow, or with one more recent abandon (the rate guard);
  deterministic;
- in the simulator, over many seeds: the policy window's budget is never overspent after the first hour, no hour
  after the first is over the limit, the line cap holds, and nothing is dialled while closed.
"""

from __future__ import annotations

import dataclasses
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from callcore.dialer.compliance import Budget, WindowCounts
from callcore.dialer.estimators import CampaignModel, TrafficModel
from callcore.dialer.pacing import Pacer, PacerConfig, PacingSnapshot
from callcore.sim.model import LogNormal
from callcore.sim.outbound import CallcorePacer, OutboundScenario, simulate_outbound


def _model(p: float, talk: float, attempts: int) -> TrafficModel:
    m = CampaignModel()
    rng = random.Random(f"{p}:{talk}:{attempts}")
    for _ in range(attempts):
        live = rng.random() < p
        m.observe_attempt(live, rng.lognormvariate(math.log(8.0), 0.5) if live else rng.choice([4.0, 12.0, 30.0]))
    for _ in range(attempts // 5):
        m.observe_talk(rng.lognormvariate(math.log(talk), 0.8))
        m.observe_wrap(rng.choice([0.0, 20.0, 30.0]))
    return m.snapshot()


MODELS = [_model(p, talk, n) for p in (0.15, 0.3, 0.6) for talk in (60.0, 240.0) for n in (20, 1500)]
elapsed = st.floats(0, 400, allow_nan=False)


@st.composite
def budgets(draw: st.DrawFn) -> Budget:
    live = draw(st.floats(0, 5000))
    ab = draw(st.floats(0, 0.06)) * live
    hour_live = draw(st.floats(0, 600))
    hour_ab = draw(st.floats(0, 0.06)) * hour_live
    control = (WindowCounts(3600.0, hour_live, hour_ab),) if draw(st.booleans()) else ()
    ages = sorted(draw(st.lists(st.floats(0, 3600), max_size=4)))
    return Budget(0.03, WindowCounts(86400.0, live, ab), control, tuple((a, 1.0) for a in ages))


@st.composite
def snapshots(draw: st.DrawFn) -> PacingSnapshot:
    talking = tuple(draw(st.lists(elapsed, max_size=30)))
    wrapping = tuple(draw(st.lists(st.floats(0, 40), max_size=10)))
    ready = draw(st.integers(0, 15))
    return PacingSnapshot(
        may_dial=draw(st.booleans()) or draw(st.booleans()),
        agents_logged_in=len(talking) + len(wrapping) + ready + draw(st.integers(-1, 3)),
        agents_ready=ready,
        talking=talking,
        wrapping=wrapping,
        ringing=tuple(draw(st.lists(st.floats(0, 60), max_size=60))),
        answered_waiting=draw(st.integers(0, 3)),
        inbound_waiting=draw(st.integers(0, 3)),
        inbound_rate=draw(st.sampled_from([0.0, 0.0, 0.01, 0.1])),
        leads_left=draw(st.none() | st.integers(0, 40)),
        budget=draw(budgets()),
    )


configs = st.builds(PacerConfig, max_lines_per_agent=st.sampled_from([1.0, 1.5, 3.0, 5.0]),
                    marginal_factor=st.sampled_from([0.0, 1.2, 3.0]))


@settings(max_examples=300, deadline=None)
@given(snapshots(), st.sampled_from(MODELS + [None]), configs)
def test_pacer_invariants(snap: PacingSnapshot, model: TrafficModel | None, cfg: PacerConfig) -> None:
    d = Pacer(cfg).decide(100.0, snap, model)
    able = snap.agents_ready + len(snap.talking) + len(snap.wrapping)
    assert d.launch >= 0
    if not snap.may_dial or snap.agents_logged_in <= 0 or able == 0:
        assert d.launch == 0
        return
    limit = math.floor(cfg.max_lines_per_agent * able + 1e-9) - len(snap.ringing)
    if snap.leads_left is not None:
        limit = min(limit, snap.leads_left)
    assert d.launch <= max(0, limit)
    assert len(snap.ringing) + d.launch <= max(len(snap.ringing), cfg.max_lines_per_agent * able + 1e-9)
    floor = max(0, min(limit, snap.agents_ready - snap.inbound_waiting - snap.answered_waiting - len(snap.ringing)))
    assert d.launch >= floor
    if model is not None and model.attempts_seen >= cfg.min_attempts and limit > 0:
        threshold, stock = Pacer(cfg).allowance(snap.budget, able / (model.talk.mean + model.wrap.mean))
        if stock <= 0 or threshold <= 0:
            assert (d.launch, d.reason) == (floor, "budget")
        if d.reason == "predictive":
            assert d.launch > floor and d.risk <= stock + 1e-9
    assert Pacer(cfg).decide(100.0, snap, model) == d


@settings(max_examples=150, deadline=None)
@given(snapshots(), st.sampled_from(MODELS), st.floats(0.5, 10.0))
def test_more_abandons_never_mean_more_calls(snap: PacingSnapshot, model: TrafficModel, extra: float) -> None:
    b = snap.budget
    worse = dataclasses.replace(b, window=dataclasses.replace(b.window, abandons=b.window.abandons + extra),
                                control=tuple(dataclasses.replace(w, abandons=w.abandons + extra) for w in b.control))
    p = Pacer()
    assert p.decide(0.0, dataclasses.replace(snap, budget=worse), model).launch <= p.decide(0.0, snap, model).launch


@settings(max_examples=150, deadline=None)
@given(snapshots(), st.sampled_from(MODELS), st.floats(0, 1800))
def test_a_recent_abandon_never_means_more_calls(snap: PacingSnapshot, model: TrafficModel, age: float) -> None:
    b = snap.budget
    recent = tuple(sorted(b.recent_abandons + ((age, 1.0),)))
    worse = dataclasses.replace(snap, budget=dataclasses.replace(b, recent_abandons=recent))
    p = Pacer()
    assert p.decide(0.0, worse, model).launch <= p.decide(0.0, snap, model).launch


@settings(max_examples=20, deadline=None, derandomize=True)  # a statistical property: the same seeds every run
@given(seed=st.integers(0, 10**6), answer=st.sampled_from([0.15, 0.25, 0.4]), agents=st.sampled_from([8, 15, 25]),
       talk=st.sampled_from([90.0, 200.0]))
def test_budget_never_overspent_in_the_simulator(seed: int, answer: float, agents: int, talk: float) -> None:
    sc = OutboundScenario(agents=agents, hours=3.0, answer_rate=answer, talk=LogNormal(talk, 1.0),
                          closed=((5000.0, 5600.0),))
    r = simulate_outbound(sc, CallcorePacer(), seed)
    assert r.min_headroom_after_first_hour >= 0  # cumulative abandons <= 3 % of live answers at every abandon
    assert r.abandon_rate <= 0.03
    assert r.worst_hour_rate <= 0.03
    assert r.max_lines_per_agent <= PacerConfig().max_lines_per_agent + 1e-9
    assert r.dialed_while_closed == 0
