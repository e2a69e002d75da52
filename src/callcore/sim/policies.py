"""BASELINE routing policies, for comparison only: they are NOT callcore's router (``callcore.acd.router``).

* :func:`app_queue_like` — how Asterisk's app_queue routes when every skill is a queue: each queue on its
  own; callers in queue order (priority, then arrival — app_queue's ``QUEUE_PRIO`` then position); a caller
  only considers members of its own queue; among the ready members the lowest *penalty* tier is tried first
  (penalty derived from the skill level), and within a tier strategy ``leastrecent`` (the member whose last
  call ended longest ago). Queues do not coordinate: when several queues want the same free agent it is a
  race, modelled as a fresh (seeded, reproducible) random order of the queues at every routing instant.
* :func:`naive_fifo` — one global FIFO over all callers (arrival order, no priorities); each caller takes the
  first free agent that has the skills (the one idle longest), whatever the agent's level.

Both are plain :data:`callcore.sim.model.Router` functions and deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from callcore.sim.model import AgentView, CallerView, Router, has_skills

__all__ = ["app_queue_like", "default_penalty", "naive_fifo"]


def default_penalty(level: int) -> int:
    """Skill level (1–10, higher is better) → app_queue member penalty tier (lower is tried first):
    8–10 → 0, 5–7 → 1, below 5 → 2."""
    if level >= 8:
        return 0
    if level >= 5:
        return 1
    return 2


def _level(agent: AgentView, caller: CallerView) -> int:
    """The agent's level for the caller: its lowest level among the caller's required skills."""
    return min((agent.skills.get(s, 0) for s in caller.required_skills), default=0)


def app_queue_like(*, penalty: Callable[[int], int] = default_penalty, seed: int = 0) -> Router:
    """A BASELINE router modelled on Asterisk app_queue (see the module docstring)."""

    def route(now: float, callers: list[CallerView], agents: list[AgentView]) -> list[tuple[str, str]]:
        by_queue: dict[str, list[CallerView]] = {}
        for c in callers:
            by_queue.setdefault(c.queue, []).append(c)
        order = sorted(by_queue)
        random.Random(f"{seed}:{now!r}").shuffle(order)  # queues race for free agents
        free = {a.id: a for a in agents if a.state == "ready"}
        offers: list[tuple[str, str]] = []
        for q in order:
            queue = sorted(by_queue[q], key=lambda c: (-c.priority, c.enqueued_at, c.id))
            for c in queue:
                best: tuple[int, float, str] | None = None
                for a in free.values():
                    if q in a.queues and has_skills(a.skills, c.required_skills):
                        key = (penalty(_level(a, c)), a.idle_since, a.id)
                        if best is None or key < best:
                            best = key
                if best is None:
                    break  # no member of this queue is free: the callers behind the head wait too
                offers.append((c.id, best[2]))
                del free[best[2]]
        return offers

    route.__name__ = route.__qualname__ = "app_queue_like"
    return route


def naive_fifo(now: float, callers: list[CallerView], agents: list[AgentView]) -> list[tuple[str, str]]:
    """A BASELINE router: global FIFO, each caller to the longest-idle ready agent that has the skills."""
    free = sorted((a for a in agents if a.state == "ready"), key=lambda a: (a.idle_since, a.id))
    offers: list[tuple[str, str]] = []
    for c in sorted(callers, key=lambda c: (c.enqueued_at, c.id)):
        if not free:
            break
        for i, a in enumerate(free):
            if has_skills(a.skills, c.required_skills):
                offers.append((c.id, a.id))
                del free[i]
                break
    return offers
