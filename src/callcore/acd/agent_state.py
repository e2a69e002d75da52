"""Agent states as a pure transition function: ``apply(status, event, now) -> (status, transitions)``.

States: ``logged_out``, ``ready``, ``reserved`` (an offer: the phone rings), ``on_call``, ``wrap_up``,
``paused`` (with a reason). Time is passed in (float seconds); nothing here does I/O or keeps a clock.

Agent commands (from the agent's UI / the API):

| command | from → to |
|---|---|
| ``Login(paused=False)`` | logged_out → ready, or paused("login") |
| ``Pause(reason)`` | ready / wrap_up / paused → paused(reason) |
| ``Ready()`` | paused → ready; wrap_up → ready (the agent ends wrap-up early) |
| ``Logout()`` | ready / paused / wrap_up → logged_out; reserved / on_call → *logout pending* (same state; it takes effect when the agent has no call and no offer left, skipping wrap-up) |

Call events (from the ACD service):

| event | from → to |
|---|---|
| ``Offered(call_id)`` | ready → reserved |
| ``Answered(call_id)`` | reserved → on_call |
| ``RingNoAnswer(call_id, pause)`` | reserved → paused("no answer") if ``pause`` (the queue's ``no_answer_pause``), else ready |
| ``OfferCancelled(call_id)`` | reserved → ready (the caller abandoned, the offer was withdrawn) |
| ``CallEnded(call_id, wrap_up_seconds)`` | on_call → wrap_up until ``now + wrap_up_seconds`` if > 0, else ready |
| ``WrapUpExpired()`` | wrap_up → ready, once ``now >= wrap_up_until``; a stale timer is ignored (no transition) |
| ``Resumed(call_id)`` | any state → on_call (or ready below capacity) with that call: after a restart, the agent's call was found still bridged in Asterisk |

Anything else raises ``InvalidTransition`` (the API maps it to HTTP 409). Wrap-up holds across queues: an agent in
``wrap_up`` is not ``ready``, so ``route`` offers it nothing from any queue. The wrap-up length is that of the
queue the call came from (``QueueConfig.wrap_up_for(agent_config)``), passed in ``CallEnded``.

Agents with ``max_calls > 1``: after ``Answered`` the agent is ``on_call`` only when it is at capacity, else
``ready`` (with ``active_calls`` > 0, so it can take another offer). ``CallEnded`` of one of several calls leaves
the agent ``ready`` (or ``paused`` if it paused meanwhile); wrap-up starts when its last call ends.

Every change is returned as a ``Transition`` (agent_id, from_state, to_state, reason, at, call_id): what the
service stores as an event. ``idle_since`` (for longest-idle routing) is the last time the agent became ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Union

from callcore.acd.policies import AgentView

AgentState = Literal["logged_out", "ready", "reserved", "on_call", "wrap_up", "paused"]


class InvalidTransition(Exception):
    """An agent command or call event that the agent's current state does not allow (HTTP 409)."""

    def __init__(self, agent_id: str, state: str, event: str, message: str) -> None:
        super().__init__(f"agent {agent_id!r} is {state}: cannot {event}: {message}")
        self.agent_id = agent_id
        self.state = state
        self.event = event
        self.message = message


@dataclass(frozen=True)
class Transition:
    agent_id: str
    from_state: str
    to_state: str
    reason: str
    at: float
    call_id: str | None = None


@dataclass(frozen=True)
class AgentStatus:
    id: str
    state: AgentState = "logged_out"
    since: float = 0.0  # when the agent entered ``state``
    idle_since: float = 0.0  # when it last became ready
    pause_reason: str | None = None
    calls: tuple[str, ...] = ()  # the calls it is on (answered, not ended)
    offer: str | None = None  # the call ringing its phone (state reserved)
    wrap_up_until: float | None = None  # state wrap_up: when the timer should end it (schedule WrapUpExpired)
    logout_pending: bool = False
    max_calls: int = 1

    @property
    def active_calls(self) -> int:
        return len(self.calls)

    def view(self, skills: dict[str, int] | None = None, queues: frozenset[str] | set[str] = frozenset()) -> AgentView:
        """The router's view of this agent (skills and queues come from its ``AgentConfig``). An agent whose
        logout is pending shows no free capacity, so it gets no new offers."""
        return AgentView(
            id=self.id,
            skills=dict(skills or {}),
            queues=frozenset(queues),
            state=self.state,
            idle_since=self.idle_since,
            active_calls=self.active_calls,
            max_calls=self.active_calls if self.logout_pending else self.max_calls,
        )


# ---- events ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    paused: bool = False


@dataclass(frozen=True)
class Logout:
    pass


@dataclass(frozen=True)
class Pause:
    reason: str = "break"


@dataclass(frozen=True)
class Ready:
    pass


@dataclass(frozen=True)
class Offered:
    call_id: str


@dataclass(frozen=True)
class Answered:
    call_id: str


@dataclass(frozen=True)
class RingNoAnswer:
    call_id: str
    pause: bool = True  # the queue's no_answer_pause


@dataclass(frozen=True)
class OfferCancelled:
    call_id: str
    reason: str = "offer cancelled"


@dataclass(frozen=True)
class CallEnded:
    call_id: str
    wrap_up_seconds: float = 0.0


@dataclass(frozen=True)
class WrapUpExpired:
    pass


@dataclass(frozen=True)
class Resumed:
    call_id: str


AgentCommand = Union[Login, Logout, Pause, Ready]
CallEvent = Union[Offered, Answered, RingNoAnswer, OfferCancelled, CallEnded, WrapUpExpired, Resumed]

_NAMES = {
    Login: "log in",
    Logout: "log out",
    Pause: "pause",
    Ready: "become ready",
    Offered: "take an offer",
    Answered: "answer",
    RingNoAnswer: "ring out",
    OfferCancelled: "cancel an offer",
    CallEnded: "end a call",
    WrapUpExpired: "end wrap-up",
    Resumed: "resume a call",
}


# ---- the transition function -----------------------------------------------------------------------------------


@dataclass
class _Step:
    status: AgentStatus
    now: float
    call_id: str | None = None
    out: list[Transition] = field(default_factory=list)

    def go(self, state: AgentState, reason: str, **changes: object) -> None:
        old = self.status
        if state != old.state or state == "paused" or reason == "logout pending":
            self.out.append(Transition(old.id, old.state, state, reason, self.now, self.call_id))
        if state != old.state or state == "paused":
            changes.setdefault("since", self.now)
        if state == "ready" and old.state != "ready":
            changes["idle_since"] = self.now
        if state != "paused":
            changes["pause_reason"] = None
        if state != "wrap_up":
            changes["wrap_up_until"] = None
        if state == "logged_out":
            changes.update(calls=(), offer=None, logout_pending=False)
        self.status = replace(old, state=state, **changes)  # type: ignore[arg-type]


def new_agent(agent_id: str, *, max_calls: int = 1, now: float = 0.0) -> AgentStatus:
    """A logged-out agent."""
    return AgentStatus(id=agent_id, since=now, idle_since=now, max_calls=max_calls)


def apply(
    status: AgentStatus, event: AgentCommand | CallEvent, now: float
) -> tuple[AgentStatus, list[Transition]]:
    """The agent's next status and the transitions to record. Raises ``InvalidTransition``."""
    name = _NAMES.get(type(event))
    if name is None:
        raise TypeError(f"not an agent command or call event: {event!r}")
    s = status.state

    def invalid(message: str) -> InvalidTransition:
        return InvalidTransition(status.id, s if s != "paused" else f"paused ({status.pause_reason})", name, message)

    step = _Step(status, now, getattr(event, "call_id", None))

    if isinstance(event, Login):
        if s != "logged_out":
            raise invalid("already logged in")
        if event.paused:
            step.go("paused", "login", pause_reason="login")
        else:
            step.go("ready", "login")

    elif isinstance(event, Logout):
        if s == "logged_out":
            raise invalid("not logged in")
        if status.offer is not None or status.calls:
            if status.logout_pending:
                raise invalid("logout is already pending")
            step.go(s, "logout pending", logout_pending=True)
        else:
            step.go("logged_out", "logout")

    elif isinstance(event, Pause):
        if not event.reason:
            raise invalid("a pause needs a reason")
        if s not in ("ready", "wrap_up", "paused"):
            raise invalid("only a ready agent, or one in wrap-up, can pause")
        step.go("paused", event.reason, pause_reason=event.reason)

    elif isinstance(event, Ready):
        if s not in ("paused", "wrap_up"):
            raise invalid("only a paused agent, or one in wrap-up, can become ready" if s != "ready" else "already ready")
        step.go(_with_calls(status), "ready" if s == "paused" else "wrap-up ended")

    elif isinstance(event, Offered):
        if s != "ready":
            raise invalid("offers go to ready agents only")
        if status.active_calls >= status.max_calls:
            raise invalid(f"at capacity ({status.active_calls} of {status.max_calls} calls)")
        if status.logout_pending:
            raise invalid("logout is pending")
        step.go("reserved", "offer", offer=event.call_id)

    elif isinstance(event, (Answered, RingNoAnswer, OfferCancelled)):
        if s != "reserved":
            raise invalid("no offer is ringing")
        if event.call_id != status.offer:
            raise invalid(f"the ringing offer is call {status.offer!r}, not {event.call_id!r}")
        if isinstance(event, Answered):
            calls = (*status.calls, event.call_id)
            after = replace(status, calls=calls, offer=None)
            step.go(_with_calls(after), "answered", calls=calls, offer=None)
        elif status.logout_pending and not status.calls:
            step.go("logged_out", "logout")
        elif isinstance(event, RingNoAnswer) and event.pause:
            step.go("paused", "no answer", pause_reason="no answer", offer=None)
        else:
            reason = "no answer" if isinstance(event, RingNoAnswer) else event.reason
            step.go(_with_calls(status), reason, offer=None)

    elif isinstance(event, CallEnded):
        if event.call_id not in status.calls:
            raise invalid(f"call {event.call_id!r} is not one of its calls")
        calls = tuple(c for c in status.calls if c != event.call_id)
        if status.logout_pending and not calls and status.offer is None:
            step.go("logged_out", "logout")
        elif s in ("paused", "reserved"):
            step.status = replace(status, calls=calls)  # a multi-call agent: it stays paused / ringing
            step.out.append(Transition(status.id, s, s, "call ended", now, event.call_id))
        elif calls:
            step.go(_with_calls(replace(status, calls=calls)), "call ended", calls=calls)
        elif event.wrap_up_seconds > 0:
            step.go("wrap_up", "call ended", calls=calls, wrap_up_until=now + event.wrap_up_seconds)
        else:
            step.go("ready", "call ended", calls=calls)

    elif isinstance(event, Resumed):
        if event.call_id in status.calls:
            return status, []  # already known: reconciliation may run twice
        calls = (*status.calls, event.call_id)
        resumed = replace(status, calls=calls, offer=None, logout_pending=False)
        step.go(_with_calls(resumed), "call resumed after restart", calls=calls, offer=None, logout_pending=False)

    elif isinstance(event, WrapUpExpired):
        if s != "wrap_up" or status.wrap_up_until is None or now < status.wrap_up_until:
            return status, []  # a stale timer (the agent ended wrap-up, paused or logged out meanwhile)
        step.go("ready", "wrap-up timeout")

    return step.status, step.out


def _with_calls(status: AgentStatus) -> AgentState:
    """Where an agent rests with its current calls: on_call at capacity, else ready."""
    return "on_call" if status.active_calls >= status.max_calls else "ready"


def wrap_up_until(status: AgentStatus) -> float | None:
    """When the service should send ``WrapUpExpired`` (None unless the agent is in wrap-up)."""
    return status.wrap_up_until if status.state == "wrap_up" else None


__all__ = [
    "AgentCommand",
    "AgentState",
    "AgentStatus",
    "Answered",
    "CallEnded",
    "CallEvent",
    "InvalidTransition",
    "Login",
    "Logout",
    "OfferCancelled",
    "Offered",
    "Pause",
    "Ready",
    "Resumed",
    "RingNoAnswer",
    "Transition",
    "WrapUpExpired",
    "apply",
    "new_agent",
    "wrap_up_until",
]
