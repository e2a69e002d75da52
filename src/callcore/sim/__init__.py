"""Discrete-event call-center simulator over the pure ACD router (no I/O, no wall clock, seeded).

``simulate(scenario, router, seed)`` → :class:`SimResult`. Routers: callcore's own
(:func:`callcore_router`), and two BASELINES for comparison (:func:`app_queue_like`, :func:`naive_fifo`).
"""

from callcore.sim.adapters import callcore_router, queue_configs
from callcore.sim.engine import RouterError, SimResult, TypeStats, combine, generate_calls, simulate
from callcore.sim.model import (
    AgentGroup,
    AgentView,
    CallerView,
    CallType,
    Constant,
    Distribution,
    Empirical,
    Exponential,
    LogNormal,
    Router,
    Scenario,
    has_skills,
)
from callcore.sim.policies import app_queue_like, default_penalty, naive_fifo

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
    "RouterError",
    "Scenario",
    "SimResult",
    "TypeStats",
    "app_queue_like",
    "callcore_router",
    "combine",
    "default_penalty",
    "generate_calls",
    "has_skills",
    "naive_fifo",
    "queue_configs",
    "simulate",
]
