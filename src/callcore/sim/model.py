"""The simulator's inputs: distributions, call types, agent groups, the scenario, and the router contract.

The simulator only depends on the :data:`Router` callable below; the views it passes are the ACD core's own
``CallerView`` / ``AgentView`` (``callcore.acd.router``), and :func:`callcore.sim.adapters.callcore_router`
wraps the real ``route`` into a :data:`Router`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from callcore.acd.router import AgentView, CallerView

__all__ = [
    "AgentGroup",
    "AgentView",
    "CallType",
    "CallerView",
    "Constant",
    "Distribution",
    "Empirical",
    "Exponential",
    "LogNormal",
    "Router",
    "Scenario",
    "has_skills",
]


# ------------------------------------------------------------------------------------------------ distributions


@runtime_checkable
class Distribution(Protocol):
    """A non-negative random duration in seconds."""

    @property
    def mean(self) -> float: ...

    def sample(self, rng: random.Random) -> float: ...


@dataclass(frozen=True, slots=True)
class Exponential:
    mean: float

    def __post_init__(self) -> None:
        if not self.mean > 0:
            raise ValueError("Exponential mean must be > 0")

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean)


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Log-normal with the given ``mean`` and coefficient of variation ``cv`` (std / mean)."""

    mean: float
    cv: float = 1.0

    def __post_init__(self) -> None:
        if not (self.mean > 0 and self.cv > 0):
            raise ValueError("LogNormal needs mean > 0 and cv > 0")

    def sample(self, rng: random.Random) -> float:
        s2 = math.log1p(self.cv * self.cv)
        return rng.lognormvariate(math.log(self.mean) - s2 / 2.0, math.sqrt(s2))


@dataclass(frozen=True, slots=True)
class Constant:
    value: float

    @property
    def mean(self) -> float:
        return self.value

    def sample(self, rng: random.Random) -> float:
        return self.value


@dataclass(frozen=True, slots=True)
class Empirical:
    """Draws uniformly from observed values (e.g. measured patience or handle times)."""

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values or min(self.values) < 0:
            raise ValueError("Empirical needs at least one value, all >= 0")

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values)

    def sample(self, rng: random.Random) -> float:
        return self.values[rng.randrange(len(self.values))]


# -------------------------------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class CallType:
    """One kind of inbound call.

    ``calls_per_hour`` is a constant Poisson rate or a piecewise-constant schedule
    ``[(start_second, calls_per_hour), ...]`` (each rate holds until the next start; before the first start
    the rate is 0). ``patience`` None: callers never abandon. ``queue`` defaults to the name and
    ``required_skills`` to ``{name: 1}``. Handle time and wrap-up are drawn per call, when it arrives.
    """

    name: str
    calls_per_hour: float | Sequence[tuple[float, float]]
    handle_time: Distribution
    patience: Distribution | None = None
    wrap_up: Distribution | None = None
    queue: str | None = None
    required_skills: Mapping[str, int] | None = None
    priority: int = 0

    @property
    def queue_name(self) -> str:
        return self.queue if self.queue is not None else self.name

    @property
    def skills(self) -> Mapping[str, int]:
        return self.required_skills if self.required_skills is not None else {self.name: 1}

    def schedule(self) -> list[tuple[float, float]]:
        """The arrival rate as ``[(start_second, calls_per_second), ...]``."""
        if isinstance(self.calls_per_hour, (int, float)):
            return [(0.0, float(self.calls_per_hour) / 3600.0)]
        steps = sorted((float(s), float(r) / 3600.0) for s, r in self.calls_per_hour)
        if any(r < 0 for _, r in steps):
            raise ValueError(f"{self.name}: negative arrival rate")
        return steps

    def mean_calls(self, horizon: float) -> float:
        """Expected number of arrivals in ``[0, horizon)``."""
        steps = self.schedule()
        total = 0.0
        for i, (start, rate) in enumerate(steps):
            end = steps[i + 1][0] if i + 1 < len(steps) else horizon
            total += rate * max(0.0, min(end, horizon) - max(start, 0.0))
        return total


@dataclass(frozen=True, slots=True)
class AgentGroup:
    """``count`` identical agents. ``queues`` None: every queue whose call types' skills they have."""

    name: str
    count: int
    skills: Mapping[str, int]
    queues: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    """Calls arrive in ``[0, horizon_seconds)``; the run then continues until every call is resolved.

    Statistics count calls that arrive at or after ``warmup_seconds``, and occupancy is measured over
    ``[warmup_seconds, horizon_seconds)``. ``ring_delay`` seconds pass between an offer and the answer (the
    caller can still abandon meanwhile; the agent is reserved).
    """

    call_types: tuple[CallType, ...]
    agent_groups: tuple[AgentGroup, ...]
    horizon_seconds: float
    target_seconds: float = 20.0
    ring_delay: float = 0.0
    warmup_seconds: float = 0.0

    def __post_init__(self) -> None:
        names = [c.name for c in self.call_types]
        if len(set(names)) != len(names):
            raise ValueError("call type names must be unique")
        groups = [g.name for g in self.agent_groups]
        if len(set(groups)) != len(groups):
            raise ValueError("agent group names must be unique")
        if not 0 <= self.warmup_seconds < self.horizon_seconds:
            raise ValueError("need 0 <= warmup_seconds < horizon_seconds")

    def queues_of(self, group: AgentGroup) -> frozenset[str]:
        if group.queues is not None:
            return group.queues
        return frozenset(c.queue_name for c in self.call_types if has_skills(group.skills, c.skills))

    def with_counts(self, counts: Mapping[str, int]) -> Scenario:
        """The same scenario with other group head counts (groups not named keep theirs)."""
        groups = tuple(
            AgentGroup(g.name, counts.get(g.name, g.count), g.skills, g.queues) for g in self.agent_groups
        )
        return Scenario(self.call_types, groups, self.horizon_seconds, self.target_seconds, self.ring_delay,
                        self.warmup_seconds)


# -------------------------------------------------------------------------------------------- router contract

# The ACD core's own views: a router sees exactly what the live service would show it.
Router = Callable[[float, list[CallerView], list[AgentView]], list[tuple[str, str]]]
"""``router(now, waiting_callers, ready_agents) -> [(caller_id, agent_id), ...]``.

The simulator passes the waiting callers in arrival order and only the agents in state ``"ready"`` (the other
states it uses: ``"reserved"`` while ringing, ``"on_call"``, ``"wrap_up"``, as in ``callcore.acd``); every
pair it gets back is started at once (or after the ring delay). A router must not offer a caller or an agent
twice, nor offer an agent that lacks one of the caller's required skills at the required level.
"""


def has_skills(agent_skills: Mapping[str, int], required: Mapping[str, int]) -> bool:
    """True when the agent has every required skill at (at least) the required level."""
    return all(agent_skills.get(skill, 0) >= level for skill, level in required.items())

