"""Online estimators: answer rate, duration histograms, the campaign model's conditional probabilities."""

from __future__ import annotations

import math
import random

import pytest

from callcore.dialer.estimators import CampaignModel, DurationEstimator, ModelPriors, RateEstimator


def test_rate_estimator_prior_then_data() -> None:
    est = RateEstimator(0.25, prior_weight=20, half_life=300)
    assert est.rate == pytest.approx(0.25)
    rng = random.Random(1)
    for _ in range(3000):
        est.add(rng.random() < 0.4)
    assert est.rate == pytest.approx(0.4, abs=0.04)
    assert est.count == 3000


def test_rate_estimator_follows_a_drift_within_a_few_half_lives() -> None:
    est = RateEstimator(0.3, half_life=300)
    rng = random.Random(2)
    for _ in range(2000):
        est.add(rng.random() < 0.3)
    for _ in range(1200):  # four half-lives after the list stops answering as well
        est.add(rng.random() < 0.15)
    assert est.rate == pytest.approx(0.15, abs=0.03)


def test_rate_estimator_validation() -> None:
    with pytest.raises(ValueError):
        RateEstimator(0.0)
    with pytest.raises(ValueError):
        RateEstimator(0.5, half_life=0)


def test_duration_estimator_prior_is_a_distribution() -> None:
    d = DurationEstimator(width=1.0, max_value=120.0, prior_mean=10.0, prior_cv=0.5).snapshot()
    assert d.cdf(0.0) == 0.0 and d.cdf(1e9) == pytest.approx(1.0)
    xs = [0.5 * k for k in range(400)]
    assert all(d.cdf(a) <= d.cdf(b) + 1e-12 for a, b in zip(xs, xs[1:]))
    assert d.mean == pytest.approx(10.0)
    assert d.cdf(d.quantile(0.5)) == pytest.approx(0.5, abs=1e-6)


def test_duration_estimator_learns_a_constant() -> None:
    est = DurationEstimator(width=1.0, max_value=600.0, prior_mean=60.0, prior_cv=0.3, prior_weight=3.0,
                            half_life=100.0)
    for _ in range(1000):
        est.add(30.0)
    d = est.snapshot()
    assert d.mean == pytest.approx(30.0, abs=0.01)
    assert d.cdf(29.9) < 0.01 and d.cdf(31.0) > 0.99
    assert d.remaining_cdf(25.0, 4.0) < 0.01  # 5 s left: not within 4
    assert d.remaining_cdf(25.0, 6.1) > 0.99
    assert est.count == 1000


def test_duration_tail_beyond_the_histogram() -> None:
    est = DurationEstimator(width=5.0, max_value=100.0, prior_mean=50.0, prior_weight=1.0, half_life=1e6)
    for k in range(100):
        est.add(150.0 + k)  # all beyond the last bin
    d = est.snapshot()
    assert d.cdf(100.0) < 0.02
    assert d.tail_mean == pytest.approx(99.5, rel=0.05)
    assert 0.0 < d.remaining_cdf(1e6, 10.0) < 1.0  # beyond anything seen: memoryless, not an error
    assert d.quantile(0.99) > 100.0


def test_campaign_model_conditional_answer_probability() -> None:
    m = CampaignModel(ModelPriors(answer_rate=0.2, live_ring_mean=8.0, other_ring_mean=25.0))
    rng = random.Random(3)
    for _ in range(2000):
        live = rng.random() < 0.2
        m.observe_attempt(live, rng.lognormvariate(math.log(8.0), 0.4) if live else 30.0)
    v = m.snapshot()
    assert v.answer_rate == pytest.approx(0.2, abs=0.03)
    assert v.attempts_seen == 2000
    fresh, stale = v.p_live_within(0.0, 60.0), v.p_live_within(20.0, 60.0)
    assert fresh == pytest.approx(0.2, abs=0.03)
    assert stale < fresh / 4  # a call unanswered for 20 s is unlikely to be a live answer any more
    assert v.p_live_within(0.0, 2.0) < v.p_live_within(0.0, 10.0)
    assert v.p_live_within(200.0, 10.0) < 1e-3


def test_campaign_model_agent_free_probabilities() -> None:
    m = CampaignModel()
    rng = random.Random(4)
    for _ in range(600):
        m.observe_talk(rng.expovariate(1 / 180.0))
        m.observe_wrap(30.0)
    v = m.snapshot()
    assert v.talks_seen == 600
    assert v.p_free_after_wrap(25.0, 6.0) > 0.95
    assert v.p_free_after_wrap(5.0, 6.0) < 0.05
    # a talking agent needs the rest of the talk *and* the whole wrap-up
    assert v.p_free_after_talk(60.0, 20.0) == 0.0
    p = v.p_free_after_talk(60.0, 60.0)
    assert 0.05 < p < 0.25  # P(talk ends within 30 s) for a 180 s mean
