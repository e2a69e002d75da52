"""The pure pacer: stop rules, the progressive floor, warm-up, the budget, the line cap, inbound blending."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from callcore.dialer.compliance import Budget, WindowCounts
from callcore.dialer.estimators import CampaignModel, TrafficModel
from callcore.dialer.pacing import Decision, Pacer, PacerConfig, PacingSnapshot

DAY = 86400.0


def trained_model(p: float = 0.2, attempts: int = 2000) -> TrafficModel:
    m = CampaignModel()
    rng = random.Random(11)
    for _ in range(attempts):
        live = rng.random() < p
        m.observe_attempt(live, rng.lognormvariate(math.log(8.0), 0.5) if live else 30.0)
    for _ in range(500):
        m.observe_talk(rng.lognormvariate(math.log(150.0), 0.8))
        m.observe_wrap(30.0)
    return m.snapshot()


MODEL = trained_model()


def budget(live: float = 2000, abandons: float = 0, hour_live: float = 300, hour_abandons: float = 0) -> Budget:
    return Budget(0.03, WindowCounts(30 * DAY, live, abandons), (WindowCounts(3600.0, hour_live, hour_abandons),))


def snap(**kw: object) -> PacingSnapshot:
    base = dict(may_dial=True, agents_logged_in=20, agents_ready=2, talking=tuple(float(10 * k) for k in range(14)),
                wrapping=(3.0, 12.0, 26.0, 28.0), ringing=(), budget=budget())
    base.update(kw)
    return PacingSnapshot(**base)  # type: ignore[arg-type]


def decide(s: PacingSnapshot, model: TrafficModel | None = MODEL, **cfg: object) -> Decision:
    return Pacer(PacerConfig(**cfg)).decide(1000.0, s, model)  # type: ignore[arg-type]


def test_predictive_dials_ahead_of_agents_finishing_wrap_up() -> None:
    d = decide(snap())
    assert d.reason == "predictive"
    assert d.launch > d.progressive == 2
    assert 0 < d.risk <= d.stock


def test_never_dials_when_not_allowed_or_without_agents() -> None:
    assert decide(snap(may_dial=False)) == Decision(0, "not_allowed")
    assert decide(snap(agents_logged_in=0)).launch == 0
    paused = snap(agents_logged_in=5, agents_ready=0, talking=(), wrapping=())
    assert decide(paused) == Decision(0, "no_agents")


def test_leads_and_line_cap() -> None:
    assert decide(snap(leads_left=0)) == Decision(0, "leads_exhausted")
    assert decide(snap(leads_left=3)).launch <= 3
    full = snap(ringing=tuple(float(k % 20) for k in range(60)))  # 3 lines x 20 agents already ringing
    assert decide(full) == Decision(0, "line_cap")
    d = decide(snap(), max_lines_per_agent=1.0)
    assert d.launch <= d.cap == 20


def test_warm_up_and_empty_budget_are_progressive() -> None:
    cold = trained_model(attempts=10)
    d = decide(snap(agents_ready=3, ringing=(1.0,)), cold)
    assert (d.launch, d.reason) == (2, "warmup")
    d = decide(snap(agents_ready=3, ringing=(1.0,)), None)
    assert (d.launch, d.reason) == (2, "warmup")
    empty = Budget.empty()  # start of a window: no live answer yet, so nothing to spend
    d = decide(snap(agents_ready=3, budget=empty))
    assert (d.launch, d.reason) == (3, "budget")


def test_exhausted_budget_falls_back_to_progressive() -> None:
    over = budget(live=2000, abandons=70)  # 3.5 % of the policy window
    assert decide(snap(agents_ready=4, budget=over)) == Decision(4, "budget", 4, threshold=0.0,
                                                                 stock=pytest.approx(0.027 * 2000 - 70 - 1.5),
                                                                 cap=66)
    hour_full = budget(hour_live=300, hour_abandons=8)  # the control window is at the cap
    d = decide(snap(agents_ready=4, budget=hour_full))
    assert (d.launch, d.reason) == (4, "budget")


def test_launches_shrink_as_the_budget_is_spent() -> None:
    counts = [decide(snap(budget=budget(hour_abandons=a))).launch for a in range(0, 9)]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > counts[-1] == 2


def test_progressive_floor_counts_ringing_waiting_and_inbound() -> None:
    s = snap(agents_ready=5, ringing=(2.0, 3.0), budget=Budget.empty())
    assert decide(s).launch == 3
    assert decide(dataclasses.replace(s, answered_waiting=1)).launch == 2
    assert decide(dataclasses.replace(s, inbound_waiting=3)).launch == 0


def test_inbound_demand_makes_the_pacer_more_careful() -> None:
    base = decide(snap()).launch
    assert decide(snap(inbound_rate=0.05)).launch < base


def test_calls_ringing_for_long_count_less() -> None:
    fresh = decide(snap(ringing=tuple(1.0 for _ in range(8)))).launch
    stale = decide(snap(ringing=tuple(25.0 for _ in range(8)))).launch
    assert stale > fresh


def test_deterministic_and_stateless() -> None:
    s = snap()
    p = Pacer()
    first = p.decide(5.0, s, MODEL)
    assert p.decide(5.0, s, MODEL) == first == Pacer().decide(5.0, s, MODEL)
    assert p.decide(5.0, s, trained_model(p=0.2)) == first  # an equal model, another object


def test_allowance() -> None:
    p = Pacer()
    threshold, stock = p.allowance(budget())
    assert threshold == pytest.approx(1.2 * 0.03)
    assert stock == pytest.approx(0.027 * 300 - 1.5)
    threshold, stock = p.allowance(budget(hour_abandons=6))
    assert 0 < threshold < 1.2 * 0.03
    _, fewer = p.allowance(budget(), live_per_second=200 / 3600)  # agents logged out: fewer live answers ahead
    assert fewer == pytest.approx(0.027 * 200 - 1.5)


def test_guard_level_is_a_token_bucket_over_the_recent_abandons() -> None:
    def level(*recent: tuple[float, float]) -> float:
        return Pacer.guard_level(dataclasses.replace(budget(), recent_abandons=recent), 0.001, 1.0)

    assert level() == 1.0  # nothing recent: the whole burst allowance
    assert level((100.0, 1.0)) == pytest.approx(0.1)  # one abandon 100 s ago, refilled at 0.001/s
    assert level((2000.0, 1.0)) == 1.0  # refilled long ago (the bucket holds 1 at most)
    assert level((10.0, 1.0), (20.0, 1.0)) == pytest.approx(1.0 + 0.02 - 2.0)  # a burst: overspent
    assert level((10.0, 1.0), (1500.0, 1.0)) == pytest.approx(0.01)  # the older one had refilled
    assert level((10.0, 1.0), (900.0, 1.0)) == pytest.approx(-0.1)  # not yet: 0.89 refilled before the newer
    assert level((10.0, 0.25)) == pytest.approx(0.76)  # estimated AMD false positives count by their share


def test_rate_guard_tapers_the_threshold_after_recent_abandons() -> None:
    p = Pacer()
    live = 20 / 210  # live answers per second the agents can take
    full, stock = p.allowance(budget(), live)
    assert full == pytest.approx(1.2 * 0.03)
    fresh = dataclasses.replace(budget(hour_abandons=1), recent_abandons=((30.0, 1.0),))
    threshold, same_stock = p.allowance(fresh, live)
    assert 0 < threshold < 0.2 * full  # just after an abandon: the 15-minute allowance is nearly used up
    assert same_stock == pytest.approx(stock - 1)  # the guard limits the threshold, not the stock
    later = dataclasses.replace(fresh, recent_abandons=((600.0, 1.0),))
    assert threshold < p.allowance(later, live)[0] < full  # it refills steadily
    burst = dataclasses.replace(fresh, recent_abandons=((5.0, 1.0), (6.0, 1.0)))
    assert p.allowance(burst, live)[0] == 0.0
    d = decide(snap(agents_ready=1, budget=burst))
    assert (d.launch, d.reason) == (1, "budget")
    assert decide(snap(budget=fresh)).launch <= decide(snap()).launch
    off = Pacer(PacerConfig(guard_window=0.0))
    assert off.allowance(burst, live)[0] == pytest.approx(full)
    assert Pacer().allowance(burst)[0] == pytest.approx(full)  # no live-rate bound given: no guard


def test_dispersion_makes_crowded_outlooks_riskier() -> None:
    crowded = snap(agents_ready=3, wrapping=(25.0,), ringing=tuple(float(k % 12) for k in range(36)))
    plain = decide(crowded, dispersion=1.0)
    wide = decide(crowded, dispersion=1.5)
    assert wide.launch <= plain.launch
    n = plain.launch
    s = dataclasses.replace(crowded, ringing=crowded.ringing + (0.0,) * n)
    assert decide(s, dispersion=1.5).risk >= decide(s, dispersion=1.0).risk


@pytest.mark.parametrize("kw", [{"max_lines_per_agent": 0.5}, {"taper": 0.0}, {"margin": 1.0}, {"reserve": -1},
                                {"grid": ()}, {"dispersion": 0.5}, {"guard_window": -1.0}, {"guard_share": 1.0},
                                {"guard_share": 0.0}])
def test_config_validation(kw: dict) -> None:
    with pytest.raises(ValueError):
        PacerConfig(**kw)
