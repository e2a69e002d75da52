"""Online estimators of a campaign's traffic, fed by the outcomes of its own recent attempts (pure, no clock).

* :class:`RateEstimator` — the live-answer probability: a Beta prior updated by each resolved attempt, with
  exponential forgetting (a half-life counted in attempts), so a list that stops answering is noticed within a
  few hundred attempts.
* :class:`DurationEstimator` — a duration distribution as a histogram with exponential forgetting, seeded with a
  log-normal prior worth a few observations, and an exponential tail beyond its last bin.
  :meth:`DurationEstimator.snapshot` freezes it into an :class:`EmpiricalDistribution` (CDF, survival,
  conditional remaining time given the time already elapsed).
* :class:`CampaignModel` — the four the pacer needs: P(live), time to a live answer, time to any other outcome
  (no answer, busy, machine, failure), talk time and wrap-up time; :meth:`CampaignModel.snapshot` gives an
  immutable :class:`TrafficModel` that the pacer reads.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

__all__ = [
    "CampaignModel",
    "DurationEstimator",
    "EmpiricalDistribution",
    "ModelPriors",
    "RateEstimator",
    "TrafficModel",
]

_RESCALE = 1e12


def _lognormal_cdf(x: float, mean: float, cv: float) -> float:
    if x <= 0:
        return 0.0
    s2 = math.log1p(cv * cv)
    mu = math.log(mean) - s2 / 2.0
    return 0.5 * (1.0 + math.erf((math.log(x) - mu) / math.sqrt(2.0 * s2)))


class RateEstimator:
    """P(success) with a Beta(prior_rate·w, (1 − prior_rate)·w) prior and forgetting: each new observation
    weighs 2^(1/half_life) times the previous one."""

    def __init__(self, prior_rate: float, prior_weight: float = 20.0, half_life: float = 300.0) -> None:
        if not (0.0 < prior_rate < 1.0 and prior_weight > 0 and half_life > 0):
            raise ValueError("need 0 < prior_rate < 1, prior_weight > 0, half_life > 0")
        self._succ = prior_rate * prior_weight
        self._total = prior_weight
        self._w = 1.0
        self._grow = 2.0 ** (1.0 / half_life)
        self.count = 0

    def add(self, success: bool) -> None:
        self._w *= self._grow
        self._total += self._w
        if success:
            self._succ += self._w
        self.count += 1
        if self._w > _RESCALE:
            self._succ /= self._w
            self._total /= self._w
            self._w = 1.0

    @property
    def rate(self) -> float:
        return self._succ / self._total


@dataclass(frozen=True, slots=True)
class EmpiricalDistribution:
    """A frozen histogram: ``cum[i]`` = P(X <= i·width) for i = 0..n, linear inside a bin, exponential tail
    (mass ``1 - cum[-1]``, mean excess ``tail_mean``) beyond n·width."""

    width: float
    cum: tuple[float, ...]
    tail_mean: float
    mean: float

    def cdf(self, x: float) -> float:
        if x <= 0.0:
            return 0.0
        cum = self.cum
        f = x / self.width
        i = int(f)
        if i < len(cum) - 1:
            lo = cum[i]
            return lo + (cum[i + 1] - lo) * (f - i)
        top = cum[-1]
        return 1.0 - (1.0 - top) * math.exp(-(x - self.width * (len(cum) - 1)) / self.tail_mean)

    def sf(self, x: float) -> float:
        return 1.0 - self.cdf(x)

    def quantile(self, q: float) -> float:
        cum = self.cum
        if q >= cum[-1]:
            rest = (1.0 - q) / max(1.0 - cum[-1], 1e-300)
            return self.width * (len(cum) - 1) + self.tail_mean * -math.log(max(rest, 1e-300))
        i = bisect.bisect_left(cum, q)
        if i == 0:
            return 0.0
        lo, hi = cum[i - 1], cum[i]
        return self.width * (i - 1 + ((q - lo) / (hi - lo) if hi > lo else 1.0))

    def remaining_cdf(self, elapsed: float, x: float) -> float:
        """P(X <= elapsed + x | X > elapsed): done within ``x`` more seconds, given ``elapsed`` so far."""
        if x <= 0.0:
            return 0.0
        s = 1.0 - self.cdf(elapsed)
        if s < 1e-9:  # beyond anything observed: a memoryless guess with the tail's mean
            return 1.0 - math.exp(-x / self.tail_mean)
        return min(1.0, max(0.0, (self.cdf(elapsed + x) - (1.0 - s)) / s))


class DurationEstimator:
    """A forgetting histogram of durations (seconds) with a log-normal prior worth ``prior_weight``
    observations; ``half_life`` is counted in observations."""

    def __init__(self, *, width: float, max_value: float, prior_mean: float, prior_cv: float = 1.0,
                 prior_weight: float = 10.0, half_life: float = 500.0) -> None:
        if not (width > 0 and max_value > width and prior_mean > 0 and prior_cv > 0 and half_life > 0):
            raise ValueError("bad DurationEstimator parameters")
        self.width = width
        self.n = int(math.ceil(max_value / width))
        self._bins = [0.0] * self.n
        prev = 0.0
        for i in range(self.n):
            c = _lognormal_cdf((i + 1) * width, prior_mean, prior_cv)
            self._bins[i] = (c - prev) * prior_weight
            prev = c
        self._tail = (1.0 - prev) * prior_weight
        top = self.n * width
        self._tail_excess = self._tail * max(width, prior_mean * (1.0 + prior_cv * prior_cv) ** 0.5)
        self._total = prior_weight
        self._sum = prior_mean * prior_weight
        self._w = 1.0
        self._grow = 2.0 ** (1.0 / half_life)
        self._top = top
        self.count = 0

    def add(self, x: float) -> None:
        x = max(0.0, float(x))
        self._w *= self._grow
        w = self._w
        i = int(x / self.width)
        if i < self.n:
            self._bins[i] += w
        else:
            self._tail += w
            self._tail_excess += w * (x - self._top)
        self._total += w
        self._sum += w * x
        self.count += 1
        if w > _RESCALE:
            self._bins = [b / w for b in self._bins]
            self._tail /= w
            self._tail_excess /= w
            self._total /= w
            self._sum /= w
            self._w = 1.0

    def snapshot(self) -> EmpiricalDistribution:
        total = self._total
        cum = [0.0]
        acc = 0.0
        for b in self._bins:
            acc += b
            cum.append(min(1.0, acc / total))
        tail_mean = self._tail_excess / self._tail if self._tail > 1e-12 else self.width
        return EmpiricalDistribution(self.width, tuple(cum), max(tail_mean, self.width), self._sum / total)


@dataclass(frozen=True, slots=True)
class ModelPriors:
    """What the pacer assumes before this campaign has told it anything (each worth a few observations)."""

    answer_rate: float = 0.25
    live_ring_mean: float = 10.0
    other_ring_mean: float = 22.0
    talk_mean: float = 180.0
    wrap_mean: float = 30.0


@dataclass(frozen=True, slots=True)
class TrafficModel:
    """An immutable view of a campaign's traffic for one pacing decision (or several)."""

    answer_rate: float
    live_ring: EmpiricalDistribution
    other_ring: EmpiricalDistribution
    talk: EmpiricalDistribution
    wrap: EmpiricalDistribution
    attempts_seen: int
    talks_seen: int
    wrap_points: tuple[float, ...]
    """Wrap-up quantile midpoints (equal weights): the convolution talk-remaining + wrap-up uses them."""

    def p_live_within(self, elapsed: float, tau: float) -> float:
        """A call ringing for ``elapsed`` s: P(a live person answers it within ``tau`` more seconds)."""
        p = self.answer_rate
        live_left = p * (1.0 - self.live_ring.cdf(elapsed))
        other_left = (1.0 - p) * (1.0 - self.other_ring.cdf(elapsed))
        den = live_left + other_left
        if den <= 1e-12:
            return 0.0
        return p * (self.live_ring.cdf(elapsed + tau) - self.live_ring.cdf(elapsed)) / den

    def p_free_after_wrap(self, elapsed: float, tau: float) -> float:
        """An agent in wrap-up for ``elapsed`` s: P(ready within ``tau`` s)."""
        return self.wrap.remaining_cdf(elapsed, tau)

    def p_free_after_talk(self, elapsed: float, tau: float) -> float:
        """An agent talking for ``elapsed`` s: P(talk ends and wrap-up ends within ``tau`` s)."""
        pts = self.wrap_points
        acc = 0.0
        for w in pts:
            if w < tau:
                acc += self.talk.remaining_cdf(elapsed, tau - w)
        return acc / len(pts)


class CampaignModel:
    """The campaign's estimators; feed it every resolved attempt and every finished talk and wrap-up."""

    def __init__(self, priors: ModelPriors = ModelPriors(), *, attempt_half_life: float = 300.0,
                 call_half_life: float = 400.0) -> None:
        self.priors = priors
        self.answer = RateEstimator(priors.answer_rate, 20.0, attempt_half_life)
        self.live_ring = DurationEstimator(width=1.0, max_value=120.0, prior_mean=priors.live_ring_mean,
                                           prior_cv=0.6, prior_weight=5.0, half_life=attempt_half_life)
        self.other_ring = DurationEstimator(width=1.0, max_value=120.0, prior_mean=priors.other_ring_mean,
                                            prior_cv=0.6, prior_weight=5.0, half_life=attempt_half_life)
        self.talk = DurationEstimator(width=5.0, max_value=7200.0, prior_mean=priors.talk_mean, prior_cv=1.0,
                                      prior_weight=5.0, half_life=call_half_life)
        self.wrap = DurationEstimator(width=1.0, max_value=600.0, prior_mean=priors.wrap_mean, prior_cv=0.3,
                                      prior_weight=3.0, half_life=call_half_life)

    def observe_attempt(self, live: bool, seconds: float) -> None:
        """An attempt resolved ``seconds`` after it was dialled: a live answer, or anything else."""
        self.answer.add(live)
        (self.live_ring if live else self.other_ring).add(seconds)

    def observe_talk(self, seconds: float) -> None:
        self.talk.add(seconds)

    def observe_wrap(self, seconds: float) -> None:
        self.wrap.add(seconds)

    def snapshot(self, wrap_points: int = 8) -> TrafficModel:
        wrap = self.wrap.snapshot()
        pts = tuple(wrap.quantile((k + 0.5) / wrap_points) for k in range(wrap_points))
        return TrafficModel(
            answer_rate=self.answer.rate,
            live_ring=self.live_ring.snapshot(),
            other_ring=self.other_ring.snapshot(),
            talk=self.talk.snapshot(),
            wrap=wrap,
            attempts_seen=self.answer.count,
            talks_seen=self.talk.count,
            wrap_points=pts,
        )
