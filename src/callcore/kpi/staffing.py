"""Staffing: how many agents an interval needed for a service-level target, from what was measured (pure).

Inputs of an interval (docs/kpis.md, "Staffing"):

* calls ``n`` = offered − short abandons (a short abandon never needed an agent), interval length ``L`` (for the
  interval still running: up to now), arrival rate ``λ = n / L``;
* ``AHT`` = the measured average handle time (talk + hold + wrap-up), ``μ = 1 / AHT``, traffic ``A = λ · AHT``;
* the target: ``SL`` (a fraction) of the callers answered within ``T`` seconds; optionally a maximum occupancy.

**Erlang C** (no abandonment): the smallest ``N`` with ``1 − C(A, N) · exp(−(N − A) · T / AHT) ≥ SL`` (and
``A / N ≤`` max occupancy), :func:`callcore.kpi.erlang.agents_for_service_level`.

**Erlang A** (callers abandon after an exponential patience with mean ``1/θ``): patience is estimated from the
same interval as ``time in queue of every caller who left the queue / abandons`` (the maximum-likelihood
estimate of an exponential patience when answered callers are censored observations; short abandons left
out). Without abandons the patience is infinite and Erlang A is Erlang C. The smallest ``N`` whose Erlang A
service level (answered within T / (answered + abandoned after T), the KPI's own definition) reaches ``SL``
(and, when given, whose abandon rate is at most ``max_abandon`` and occupancy at most ``max_occupancy``), found by
bisection (the service level grows with ``N``), :func:`callcore.kpi.erlang.erlang_a`. Beware: with impatient
callers that definition can be met below the offered load (abandons relieve the queue); ``max_abandon`` guards
against recommending that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from callcore.kpi.erlang import agents_for_service_level, asa, erlang_a, service_level, traffic_erlangs
from callcore.kpi.report import Folded, Row, queue_stats

MAX_AGENTS = 100_000


@dataclass(frozen=True)
class StaffingInput:
    calls: float  # arrivals that need an agent in the interval
    interval_seconds: float
    aht_seconds: float
    target_seconds: float
    target_sl: float  # fraction in (0, 1)
    patience_seconds: float | None = None  # None or inf: nobody abandons (Erlang C)
    max_occupancy: float | None = None  # fraction in (0, 1]
    max_abandon: float | None = None  # Erlang A: also keep the abandon rate at or below this fraction

    def __post_init__(self) -> None:
        if not self.interval_seconds > 0:
            raise ValueError("interval_seconds must be > 0")
        if self.calls < 0:
            raise ValueError("calls must be >= 0")
        if not self.aht_seconds > 0:
            raise ValueError("aht_seconds must be > 0")
        if not 0 < self.target_sl < 1:
            raise ValueError("target_sl must be in (0, 1)")
        if self.target_seconds < 0:
            raise ValueError("target_seconds must be >= 0")
        if self.patience_seconds is not None and not self.patience_seconds > 0:
            raise ValueError("patience_seconds must be > 0")
        if self.max_occupancy is not None and not 0 < self.max_occupancy <= 1:
            raise ValueError("max_occupancy must be in (0, 1]")
        if self.max_abandon is not None and not 0 < self.max_abandon < 1:
            raise ValueError("max_abandon must be in (0, 1)")

    @property
    def arrival_rate(self) -> float:
        """λ, calls per second."""
        return self.calls / self.interval_seconds

    @property
    def traffic(self) -> float:
        """A = λ · AHT (erlangs)."""
        return traffic_erlangs(self.calls, self.interval_seconds, self.aht_seconds)


@dataclass(frozen=True)
class Staffed:
    model: str  # erlang_c | erlang_a
    agents: int
    service_level: float
    asa_seconds: float
    occupancy: float
    abandon_rate: float = 0.0


def erlang_c_staffing(inp: StaffingInput) -> Staffed:
    a = inp.traffic
    n = agents_for_service_level(inp.calls, inp.interval_seconds, inp.aht_seconds, inp.target_seconds,
                                 inp.target_sl, inp.max_occupancy)
    if n == 0:
        return Staffed("erlang_c", 0, 1.0, 0.0, 0.0)
    return Staffed("erlang_c", n, service_level(a, n, inp.aht_seconds, inp.target_seconds),
                   asa(a, n, inp.aht_seconds), a / n)


def erlang_a_staffing(inp: StaffingInput, upper: int | None = None) -> Staffed:
    """The smallest N meeting the target under Erlang A (``upper``: an N known to meet it, e.g. Erlang C's)."""
    patience = inp.patience_seconds
    if patience is None or math.isinf(patience):
        c = erlang_c_staffing(inp)
        return Staffed("erlang_a", c.agents, c.service_level, c.asa_seconds, c.occupancy)
    if inp.calls == 0:
        return Staffed("erlang_a", 0, 1.0, 0.0, 0.0)
    lam, mu = inp.arrival_rate, 1.0 / inp.aht_seconds

    def ok(n: int) -> bool:
        r = erlang_a(lam, mu, n, patience, inp.target_seconds)
        return (r.service_level >= inp.target_sl
                and (inp.max_occupancy is None or r.occupancy <= inp.max_occupancy)
                and (inp.max_abandon is None or r.p_abandon <= inp.max_abandon))

    hi = upper if upper is not None and upper >= 1 else max(1, math.floor(inp.traffic) + 1)
    while not ok(hi):  # Erlang C's answer normally meets it already; grow if not
        hi *= 2
        if hi > MAX_AGENTS:
            raise ValueError("no staffing up to MAX_AGENTS meets the target")
    lo = 0  # ok(lo) is False (0 agents answer nobody)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    r = erlang_a(lam, mu, hi, patience, inp.target_seconds)
    return Staffed("erlang_a", hi, r.service_level, r.asa, r.occupancy, r.p_abandon)


def staffing(inp: StaffingInput) -> tuple[Staffed, Staffed]:
    """(Erlang C, Erlang A) staffing for the same inputs."""
    c = erlang_c_staffing(inp)
    return c, erlang_a_staffing(inp, upper=c.agents if c.agents > 0 else None)


# ---- from measured intervals ---------------------------------------------------------------------------------


class StaffingRow(Row):
    queue: str
    start: datetime
    end: datetime
    measured_seconds: float  # the interval's length, up to now for the interval still running
    offered: int
    short_abandoned: int
    calls: int  # offered − short abandoned
    arrival_rate_per_hour: float
    aht_seconds: float | None  # None: no completely handled call to measure it
    traffic_erlangs: float | None
    abandoned_counted: int
    patience_seconds: float | None  # None: no abandons, Erlang A = Erlang C
    target_sl_pct: float
    target_seconds: float
    max_occupancy_pct: float | None
    max_abandon_pct: float | None
    erlang_c_agents: int | None
    erlang_c_service_level_pct: float | None
    erlang_c_asa_seconds: float | None
    erlang_c_occupancy_pct: float | None
    erlang_a_agents: int | None
    erlang_a_service_level_pct: float | None
    erlang_a_abandon_pct: float | None
    erlang_a_asa_seconds: float | None
    erlang_a_occupancy_pct: float | None


def _r(x: float | None, pct: bool = False) -> float | None:
    if x is None or math.isinf(x) or math.isnan(x):
        return None
    return round(100.0 * x if pct else x, 2)


def staffing_rows(f: Folded, queue: str, *, target_sl: float | None = None, target_seconds: float | None = None,
                  max_occupancy: float | None = None, max_abandon: float | None = None) -> list[StaffingRow]:
    """Per interval of ``f``: the measured inputs and the Erlang C and Erlang A staffing for the target (default:
    the queue's configured service level)."""
    sl = target_sl if target_sl is not None else f.settings.target_percent(queue) / 100.0
    t = target_seconds if target_seconds is not None else f.settings.target_seconds(queue)
    stats = queue_stats(f)
    rows = []
    for i, b in enumerate(f.buckets):
        st = stats.get((queue, i))
        measured = (min(b.end, f.data.as_of) - b.start).total_seconds()
        if st is None or measured <= 0:
            continue
        calls = st.offered - st.short_abandoned
        aht = st.aht_seconds
        values: dict[str, float | int | None] = {}
        traffic = None
        if aht is not None and aht > 0:
            inp = StaffingInput(calls, measured, aht, t, sl, st.patience_seconds, max_occupancy, max_abandon)
            traffic = inp.traffic
            c, a = staffing(inp)
            values = {
                "erlang_c_agents": c.agents, "erlang_c_service_level_pct": _r(c.service_level, True),
                "erlang_c_asa_seconds": _r(c.asa_seconds), "erlang_c_occupancy_pct": _r(c.occupancy, True),
                "erlang_a_agents": a.agents, "erlang_a_service_level_pct": _r(a.service_level, True),
                "erlang_a_abandon_pct": _r(a.abandon_rate, True), "erlang_a_asa_seconds": _r(a.asa_seconds),
                "erlang_a_occupancy_pct": _r(a.occupancy, True),
            }
        rows.append(StaffingRow(
            queue=queue, start=b.start.astimezone(f.tz), end=b.end.astimezone(f.tz), measured_seconds=round(measured, 3), offered=st.offered,
            short_abandoned=st.short_abandoned, calls=calls, arrival_rate_per_hour=round(calls * 3600.0 / measured, 3),
            aht_seconds=_r(aht), traffic_erlangs=None if traffic is None else round(traffic, 4),
            abandoned_counted=st.abandoned_counted, patience_seconds=_r(st.patience_seconds),
            target_sl_pct=round(sl * 100.0, 2), target_seconds=t,
            max_occupancy_pct=None if max_occupancy is None else round(max_occupancy * 100.0, 2),
            max_abandon_pct=None if max_abandon is None else round(max_abandon * 100.0, 2),
            **{k: values.get(k) for k in ("erlang_c_agents", "erlang_c_service_level_pct", "erlang_c_asa_seconds",
                                          "erlang_c_occupancy_pct", "erlang_a_agents", "erlang_a_service_level_pct",
                                          "erlang_a_abandon_pct", "erlang_a_asa_seconds", "erlang_a_occupancy_pct")},
        ))
    return rows


__all__ = ["Staffed", "StaffingInput", "StaffingRow", "erlang_a_staffing", "erlang_c_staffing", "staffing",
           "staffing_rows"]
