"""callcore's real router (``callcore.acd.router.route``) as a simulator :data:`~callcore.sim.model.Router`.

::

    from callcore.sim import callcore_router, queue_configs, simulate
    router = callcore_router(queue_configs(scenario))            # DEFAULT_POLICY (longest wait)
    result = simulate(scenario, router, seed=1)

The simulator already passes the ACD's own ``CallerView`` / ``AgentView``, so the adapter only adds the queue
configuration and the policy, turns the ``Offer`` list into ``(caller_id, agent_id)`` pairs, and exposes
``next_relaxation_at`` as the router's ``next_wakeup`` (the simulator asks the router again when a relaxation
step falls due).
"""

from __future__ import annotations

from collections.abc import Mapping

from callcore.acd.model import QueueConfig, ServiceLevel
from callcore.acd.router import DEFAULT_POLICY, AgentView, CallerView, RoutingPolicy, next_relaxation_at, route
from callcore.sim.model import Router, Scenario

__all__ = ["callcore_router", "queue_configs"]


def queue_configs(scenario: Scenario, sl_percent: float = 80.0, **overrides: object) -> dict[str, QueueConfig]:
    """One ``QueueConfig`` per queue of the scenario: the required skills of its call types (highest level per
    skill), the scenario's service-level target; ``overrides`` are passed to every ``QueueConfig`` (e.g.
    ``relaxation=[...]``, ``weight=...``)."""
    skills: dict[str, dict[str, int]] = {}
    for ct in scenario.call_types:
        req = skills.setdefault(ct.queue_name, {})
        for s, level in ct.skills.items():
            req[s] = max(req.get(s, 0), level)
    target = ServiceLevel(percent=sl_percent, seconds=scenario.target_seconds)
    return {q: QueueConfig(required_skills=req, service_level=target, **overrides) for q, req in skills.items()}


def callcore_router(queues: Mapping[str, QueueConfig], policy: RoutingPolicy = DEFAULT_POLICY) -> Router:
    """callcore's ACD router over ``queues`` with ``policy``, as a simulator router."""
    queues = dict(queues)

    def router(now: float, callers: list[CallerView], agents: list[AgentView]) -> list[tuple[str, str]]:
        return [(o.caller_id, o.agent_id) for o in route(now, callers, agents, queues, policy)]

    def next_wakeup(now: float, callers: list[CallerView]) -> float | None:
        return next_relaxation_at(callers, queues, now)

    router.next_wakeup = next_wakeup  # type: ignore[attr-defined]
    router.__name__ = router.__qualname__ = f"callcore[{policy.name}]"
    return router
