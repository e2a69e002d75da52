"""The pure ACD router: which waiting callers to offer to which ready agents *now*.

No I/O, no asyncio, no clock: ``now`` is float seconds, passed in. The live service and the simulator call
``route`` whenever something changed (a caller arrived, an agent became ready, a relaxation step became due —
see ``next_relaxation_at``) and make the offers it returns.

**Eligibility** (``eligible``): the agent is ``ready`` with ``active_calls < max_calls``; it serves the caller's
queue, or one of the ``add_agents_from`` queues of the relaxation steps due; it has every effective required
skill (queue ∪ caller, after relaxation at the wait ``now - enqueued_at``) at least at the required level; and it
is not in the caller's ``offered_to`` (it already rang out for this caller). Agents in ``offered_to`` are skipped
even when no other agent is available: the service decides when a new round starts (clear ``offered_to``);
``only_offered_left`` tells it when every agent that could take the caller has already rung out.

**Matching** (``route``): greedy over the callers in the policy's order; each takes the best-ranked eligible agent
not taken yet in this round. Each agent and each caller appears in at most one offer (also agents with
``max_calls > 1``: one offer per round), and the match is maximal: no caller left without an offer has an
eligible agent left without one. Callers of unknown queues are skipped. Deterministic: the output does not depend
on the order of the inputs (ties are broken by ids; duplicate ids are a ValueError).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from callcore.acd.model import QueueConfig
from callcore.acd.policies import (
    AGENT_STATES,
    DEFAULT_POLICY,
    POLICIES,
    AgentView,
    CallerView,
    LongestWaitPolicy,
    MostSkilledPolicy,
    Offer,
    RoutingPolicy,
    effective_priority,
    effective_requirements,
    merged_requirements,
    skill_match,
    skill_sum,
    wait_of,
    weighted_wait,
)


def _qualifies(
    caller: CallerView, agent: AgentView, required: Mapping[str, int], extra_queues: frozenset[str]
) -> bool:
    if not agent.available or agent.id in caller.offered_to:
        return False
    if caller.queue not in agent.queues and not (agent.queues & extra_queues):
        return False
    skills = agent.skills
    return all(skills.get(skill, 0) >= level for skill, level in required.items())


def eligible(caller: CallerView, agent: AgentView, queues: Mapping[str, QueueConfig], now: float) -> bool:
    """Could ``agent`` take ``caller`` now? (See the module docstring; False for a caller of an unknown queue.)"""
    queue = queues.get(caller.queue)
    if queue is None:
        return False
    required, extra = effective_requirements(caller, queue, now)
    return _qualifies(caller, agent, required, extra)


def _unique(items: Iterable[CallerView | AgentView], kind: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ValueError(f"duplicate {kind} id {item.id!r}")
        seen.add(item.id)


def route(
    now: float,
    callers: Sequence[CallerView],
    agents: Sequence[AgentView],
    queues: Mapping[str, QueueConfig],
    policy: RoutingPolicy = DEFAULT_POLICY,
) -> list[Offer]:
    """The offers to make now, in the policy's caller order (greedy, maximal; see the module docstring)."""
    _unique(callers, "caller")
    _unique(agents, "agent")
    free = {a.id: a for a in sorted(agents, key=lambda a: a.id) if a.available}
    if not free:
        return []
    waiting = sorted((c for c in callers if c.queue in queues), key=lambda c: c.id)
    offers: list[Offer] = []
    scorer = getattr(policy, "score", None)
    for caller in policy.caller_order(waiting, queues, now):
        if not free:
            break
        queue = queues[caller.queue]
        required, extra = effective_requirements(caller, queue, now)
        candidates = [a for a in free.values() if _qualifies(caller, a, required, extra)]
        if not candidates:
            continue
        best = policy.agent_rank(caller, candidates, queues, now)[0]
        if best.id not in free or best not in candidates:
            raise ValueError(f"policy {policy.name!r} ranked agent {best.id!r}, which is not eligible for {caller.id!r}")
        if scorer is not None:
            score = tuple(scorer(caller, best, queues, now))
        else:
            score = (effective_priority(caller, queue), weighted_wait(caller, queue, now))
        offers.append(Offer(caller.id, best.id, score))
        del free[best.id]
    return offers


def only_offered_left(
    caller: CallerView, agents: Sequence[AgentView], queues: Mapping[str, QueueConfig], now: float
) -> bool:
    """True when no agent is eligible for ``caller`` but at least one would be if it were not in ``offered_to``:
    every available agent that could take the caller has rung out. The service may then start a new round by
    clearing ``offered_to`` (or leave the caller waiting for another agent, or overflow it)."""
    queue = queues.get(caller.queue)
    if queue is None or not caller.offered_to:
        return False
    required, extra = effective_requirements(caller, queue, now)
    fresh = CallerView(caller.id, caller.queue, caller.priority, caller.enqueued_at, caller.required_skills)
    blocked = False
    for agent in agents:
        if _qualifies(caller, agent, required, extra):
            return False
        if agent.id in caller.offered_to and _qualifies(fresh, agent, required, extra):
            blocked = True
    return blocked


def next_relaxation_at(callers: Iterable[CallerView], queues: Mapping[str, QueueConfig], now: float) -> float | None:
    """The earliest time after ``now`` at which a relaxation step becomes due for one of ``callers`` (their
    eligible agents may change then: call ``route`` again), or None."""
    best: float | None = None
    for caller in callers:
        queue = queues.get(caller.queue)
        if queue is None:
            continue
        wait = wait_of(caller, now)
        for step in queue.relaxation:
            if step.after > wait:
                # Never ``now`` itself, even when float rounding puts enqueued_at + after at or before it.
                at = max(caller.enqueued_at + step.after, math.nextafter(now, math.inf))
                if best is None or at < best:
                    best = at
    return best


def max_wait_reached(queue: QueueConfig, waited: float) -> bool:
    """The caller has waited ``waited`` seconds in ``queue``: time to overflow?"""
    return queue.max_wait is not None and waited >= queue.max_wait


def estimated_wait(position: int, agents_serving: int, handle_seconds: float) -> float:
    """Seconds a caller at ``position`` (1 = next) may expect to wait: the callers ahead, and this one, each need
    one of the ``agents_serving`` agents for about ``handle_seconds`` (talk + wrap-up). A plain, honest estimate
    for announcements; 0 agents → infinity (say nothing)."""
    if agents_serving <= 0:
        return math.inf
    return position * handle_seconds / agents_serving


def queue_full(queue: QueueConfig, waiting: int) -> bool:
    """``waiting`` callers already wait in ``queue``: does a new caller overflow at once?"""
    return queue.max_length is not None and waiting >= queue.max_length


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
    "eligible",
    "max_wait_reached",
    "merged_requirements",
    "next_relaxation_at",
    "only_offered_left",
    "queue_full",
    "route",
    "skill_match",
    "skill_sum",
    "weighted_wait",
]
