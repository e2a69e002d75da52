"""Routing policies and the views they look at. Pure: no I/O, no clock (``now`` is float seconds).

The views (``AgentView``, ``CallerView``, ``Offer``) and the requirement math (``merged_requirements``,
``effective_requirements``) live here because the policies need them; ``callcore.acd.router`` re-exports them
and owns ``eligible`` and ``route``.

Definitions (used by both policies):

- **effective priority** = caller priority + the queue's base ``priority``. Higher is served first.
- **weighted wait** = ``max(0, now - enqueued_at) * queue.weight``. Callers of all queues compete for an agent
  by it (after priority), so an agent serving several queues takes the caller with the longest weighted wait
  among those it can take: a queue with weight 2 counts each second of waiting twice.
- **original requirements** = the queue's ``required_skills`` merged with the caller's (highest level per skill),
  before relaxation. **Effective requirements** = the same after the relaxation steps due at the caller's wait.

Caller order (both policies): effective priority desc, weighted wait desc, ``enqueued_at`` asc, id asc.

Agent rank:

- ``LongestWaitPolicy`` (default): **skill match** desc, agents serving the caller's own queue before agents
  admitted by ``add_agents_from``, the highest **skill sum** on the caller's required skills, the **least
  versatile** (fewest skills), longest idle (``idle_since`` asc), id asc. The skill match is normalized to 0..1: the mean over the caller's *original* required skills of
  ``min(agent level / required level, 1)`` (a missing skill counts 0; no requirements → 1.0). Before any
  relaxation every eligible agent scores 1.0; preferring higher levels (the agent whose main skill this is) and
  then fewer skills keeps multi-skilled agents free for the call types only they can take (without them the
  policy behaves like a global FIFO and starves small call types: measured in bench/service_level.py); among
  equals the longest idle gets the call.
  Once relaxation widens the pool, agents that fully meet the original requirements are still preferred.
- ``MostSkilledPolicy``: **skill sum** desc — the sum of the agent's levels on the caller's original required
  skills (a skill dropped by relaxation still counts for agents that have it) — then longest idle, then id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from callcore.acd.model import QueueConfig

AGENT_STATES = ("logged_out", "ready", "reserved", "on_call", "wrap_up", "paused")


@dataclass(frozen=True)
class AgentView:
    id: str
    skills: Mapping[str, int]
    queues: frozenset[str]
    state: str  # one of AGENT_STATES
    idle_since: float  # when the agent last became ready (longest idle first)
    active_calls: int = 0
    max_calls: int = 1

    @property
    def available(self) -> bool:
        """Ready with free capacity: the only agents ``route`` offers calls to."""
        return self.state == "ready" and self.active_calls < self.max_calls


@dataclass(frozen=True)
class CallerView:
    id: str
    queue: str
    priority: int  # the caller's priority (from the IVR); the router adds the queue's base priority
    enqueued_at: float  # original enqueue time: a caller re-queued at the head keeps it
    required_skills: Mapping[str, int]  # caller-specific requirements, merged with the queue's
    offered_to: frozenset[str] = frozenset()  # agents that already rang out for this caller: skipped


@dataclass(frozen=True)
class Offer:
    caller_id: str
    agent_id: str
    score: tuple  # for explanation/logs; see the policy's ``score``


@runtime_checkable
class RoutingPolicy(Protocol):
    name: str

    def caller_order(
        self, callers: Sequence[CallerView], queues: Mapping[str, QueueConfig], now: float
    ) -> list[CallerView]: ...

    def agent_rank(
        self, caller: CallerView, eligible_agents: Sequence[AgentView], queues: Mapping[str, QueueConfig], now: float
    ) -> list[AgentView]: ...


# ---- requirement math ------------------------------------------------------------------------------------------


def merged_requirements(caller: CallerView, queue: QueueConfig) -> dict[str, int]:
    """Queue ∪ caller requirements, the highest level per skill (before relaxation)."""
    out = dict(queue.required_skills)
    for skill, level in caller.required_skills.items():
        out[skill] = max(out.get(skill, 0), level)
    return out


def wait_of(caller: CallerView, now: float) -> float:
    """Seconds waited since the original enqueue (never negative)."""
    return max(0.0, now - caller.enqueued_at)


def effective_requirements(caller: CallerView, queue: QueueConfig, now: float) -> tuple[dict[str, int], frozenset[str]]:
    """The caller's requirements after the relaxation steps due at its wait ``now - enqueued_at``, and the extra
    queues whose agents qualify too (``add_agents_from`` of the steps applied; never the caller's own queue).

    Steps are cumulative: every step with ``after <= wait`` applies, whatever its position in the list.
    ``lower_levels_by`` adds up and lowers every required level, never below 1 (the skill stays required);
    ``drop_skills`` removes skills, whether the queue or the caller required them."""
    required = merged_requirements(caller, queue)
    wait = wait_of(caller, now)
    lower = 0
    dropped: set[str] = set()
    extra: set[str] = set()
    for step in queue.relaxation:
        if wait >= step.after:
            lower += step.lower_levels_by
            dropped.update(step.drop_skills)
            extra.update(step.add_agents_from)
    relaxed = {s: max(1, level - lower) for s, level in required.items() if s not in dropped}
    extra.discard(caller.queue)
    return relaxed, frozenset(extra)


def effective_priority(caller: CallerView, queue: QueueConfig | None) -> int:
    return caller.priority + (queue.priority if queue is not None else 0)


def weighted_wait(caller: CallerView, queue: QueueConfig | None, now: float) -> float:
    return wait_of(caller, now) * (queue.weight if queue is not None else 1.0)


def skill_match(skills: Mapping[str, int], required: Mapping[str, int]) -> float:
    """0..1: mean over ``required`` of ``min(level / required level, 1)``; 1.0 when nothing is required."""
    if not required:
        return 1.0
    total = 0.0
    for skill, need in required.items():
        have = skills.get(skill, 0)
        total += 1.0 if have >= need else max(0, have) / need
    return total / len(required)


def skill_sum(skills: Mapping[str, int], required: Mapping[str, int]) -> int:
    """Sum of the agent's levels on the required skills (0 for a skill it does not have)."""
    return sum(skills.get(skill, 0) for skill in required)


# ---- policies --------------------------------------------------------------------------------------------------


class LongestWaitPolicy:
    """Highest effective priority first, then longest weighted wait across all the agent's queues; the best skill
    match among the eligible agents, then agents of the caller's own queue, then the least versatile (fewest
    skills), then the longest idle. See the module docstring for the exact keys."""

    name = "longest_wait"

    def caller_key(self, caller: CallerView, queues: Mapping[str, QueueConfig], now: float) -> tuple:
        queue = queues.get(caller.queue)
        return (-effective_priority(caller, queue), -weighted_wait(caller, queue, now), caller.enqueued_at, caller.id)

    def caller_order(
        self, callers: Sequence[CallerView], queues: Mapping[str, QueueConfig], now: float
    ) -> list[CallerView]:
        return sorted(callers, key=lambda c: self.caller_key(c, queues, now))

    def agent_key(self, caller: CallerView, agent: AgentView, required: Mapping[str, int]) -> tuple:
        home = caller.queue in agent.queues
        # Fully qualified first (match is capped at 1), then the best levels on what this caller needs (an agent
        # for whom this is the main skill), then the least versatile: both keep multi-skilled agents free for
        # the call types only they can take (measured in bench/service_level.py); then the longest idle.
        return (-skill_match(agent.skills, required), not home, -skill_sum(agent.skills, required),
                len(agent.skills), agent.idle_since, agent.id)

    def agent_rank(
        self, caller: CallerView, eligible_agents: Sequence[AgentView], queues: Mapping[str, QueueConfig], now: float
    ) -> list[AgentView]:
        queue = queues.get(caller.queue)
        required = merged_requirements(caller, queue) if queue is not None else dict(caller.required_skills)
        return sorted(eligible_agents, key=lambda a: self.agent_key(caller, a, required))

    def score(self, caller: CallerView, agent: AgentView, queues: Mapping[str, QueueConfig], now: float) -> tuple:
        """``(effective priority, weighted wait, skill match, serves own queue, idle seconds)``."""
        queue = queues.get(caller.queue)
        required = merged_requirements(caller, queue) if queue is not None else dict(caller.required_skills)
        return (
            effective_priority(caller, queue),
            weighted_wait(caller, queue, now),
            skill_match(agent.skills, required),
            caller.queue in agent.queues,
            max(0.0, now - agent.idle_since),
        )


class MostSkilledPolicy(LongestWaitPolicy):
    """Callers as ``LongestWaitPolicy``; agents by the sum of their levels on the caller's required skills, then
    the longest idle, then id."""

    name = "most_skilled"

    def agent_key(self, caller: CallerView, agent: AgentView, required: Mapping[str, int]) -> tuple:
        return (-skill_sum(agent.skills, required), agent.idle_since, agent.id)

    def score(self, caller: CallerView, agent: AgentView, queues: Mapping[str, QueueConfig], now: float) -> tuple:
        """``(effective priority, weighted wait, skill sum, idle seconds)``."""
        queue = queues.get(caller.queue)
        required = merged_requirements(caller, queue) if queue is not None else dict(caller.required_skills)
        return (
            effective_priority(caller, queue),
            weighted_wait(caller, queue, now),
            skill_sum(agent.skills, required),
            max(0.0, now - agent.idle_since),
        )


DEFAULT_POLICY: RoutingPolicy = LongestWaitPolicy()
POLICIES: dict[str, RoutingPolicy] = {p.name: p for p in (DEFAULT_POLICY, MostSkilledPolicy())}


__all__ = [
    "AGENT_STATES",
    "DEFAULT_POLICY",
    "POLICIES",
    "AgentView",
    "CallerView",
    "LongestWaitPolicy",
    "MostSkilledPolicy",
    "Offer",
    "RoutingPolicy",
    "effective_priority",
    "effective_requirements",
    "merged_requirements",
    "skill_match",
    "skill_sum",
    "wait_of",
    "weighted_wait",
]
