"""The pure core of the ACD (automatic call distributor): config models, the router and its policies, agent
states and static config checks. No I/O, no asyncio, no clock: time is passed in as float seconds.

- ``model``: ``skills`` / ``agents`` / ``queues`` as admins write them in YAML (``AcdConfig``).
- ``router``: ``route(now, callers, agents, queues, policy)`` → offers; ``eligible``, ``effective_requirements``.
- ``policies``: ``LongestWaitPolicy`` (default), ``MostSkilledPolicy``, and the views they look at.
- ``agent_state``: ``apply(status, event, now)`` → new status + ``Transition`` records.
- ``validate``: ``validate_acd`` / ``check_acd`` → ``(errors, warnings)`` of ``ConfigIssue``.
"""

from callcore.acd.agent_state import (
    AgentCommand,
    AgentState,
    AgentStatus,
    Answered,
    CallEnded,
    CallEvent,
    InvalidTransition,
    Login,
    Logout,
    OfferCancelled,
    Offered,
    Pause,
    Ready,
    RingNoAnswer,
    Transition,
    WrapUpExpired,
    apply,
    new_agent,
    wrap_up_until,
)
from callcore.acd.model import (
    AcdConfig,
    AgentConfig,
    Announcements,
    Overflow,
    QueueConfig,
    RelaxationStep,
    ServiceLevel,
    caller_skills,
)
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
)
from callcore.acd.router import (
    effective_requirements,
    eligible,
    max_wait_reached,
    next_relaxation_at,
    only_offered_left,
    queue_full,
    route,
)
from callcore.acd.validate import check_acd, validate_acd

__all__ = [
    "AGENT_STATES",
    "DEFAULT_POLICY",
    "POLICIES",
    "AcdConfig",
    "AgentCommand",
    "AgentConfig",
    "AgentState",
    "AgentStatus",
    "AgentView",
    "Announcements",
    "Answered",
    "CallEnded",
    "CallEvent",
    "CallerView",
    "InvalidTransition",
    "Login",
    "Logout",
    "LongestWaitPolicy",
    "MostSkilledPolicy",
    "Offer",
    "OfferCancelled",
    "Offered",
    "Overflow",
    "Pause",
    "QueueConfig",
    "Ready",
    "RelaxationStep",
    "RingNoAnswer",
    "RoutingPolicy",
    "ServiceLevel",
    "Transition",
    "WrapUpExpired",
    "apply",
    "caller_skills",
    "check_acd",
    "effective_requirements",
    "eligible",
    "max_wait_reached",
    "new_agent",
    "next_relaxation_at",
    "only_offered_left",
    "queue_full",
    "route",
    "validate_acd",
    "wrap_up_until",
]
