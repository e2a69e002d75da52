"""What the HTTP API needs from the rest of callcore, as Protocols.

The API holds no telephony logic: handlers read state and call these methods. The composition root
(:mod:`callcore.app`) passes the real objects in an :class:`ApiServices`; tests pass fakes.

| Protocol | implemented by | status |
|---|---|---|
| :class:`AcdControl` | ``acd.service.AcdService`` | has everything except ``set_skills`` |
| :class:`CallRegistry` / :class:`LiveCall` | ``calls.runtime.CallRuntime`` / ``calls.call.Call`` | complete |
| :class:`CallStore` | :class:`PgCallStore` (here, over ``store.queries``) | complete |
| :class:`ConversationControl` | ``AcdService`` (``acd.controls.CallControls``) | complete |
| :class:`CallActions` | to be written (originate / click-to-call, hang up) | missing |
| :class:`QueueKpis` | to be written with the KPIs | missing (``sl_today`` is null until then) |
| ``EventSink`` | ``store.writer.EventWriter`` | complete (dispositions are emitted to it) |

Errors: agent state changes raise ``acd.agent_state.InvalidTransition`` (→ 409). Other services raise
:class:`NotFound` (→ 404) or :class:`Rejected` (→ 409) with a message for the client.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from callcore.acd.agent_state import AgentStatus
from callcore.acd.model import AcdConfig
from callcore.events import EventSink


class ServiceError(Exception):
    """A request the service refuses; ``message`` is shown to the API client."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(ServiceError):
    """The call / agent / queue the request names does not exist (HTTP 404)."""


class Rejected(ServiceError):
    """The request is valid but cannot be done in the current state (HTTP 409)."""


# -- the ACD -----------------------------------------------------------------------------------------------


class WaitingCaller(Protocol):
    """A caller in a queue (``acd.service.QueuedCaller``)."""

    @property
    def id(self) -> str: ...  # the call id

    @property
    def queue(self) -> str: ...

    @property
    def priority(self) -> int: ...

    @property
    def enqueued_at(self) -> float: ...  # the service's clock (``now()``)

    @property
    def assigned(self) -> str | None: ...  # the agent whose phone rings for it


class AcdControl(Protocol):
    """Agent states and queues (``AcdService``)."""

    @property
    def config(self) -> AcdConfig: ...

    @property
    def agents(self) -> Mapping[str, AgentStatus]: ...

    @property
    def waiting(self) -> Mapping[str, WaitingCaller]: ...

    def now(self) -> float: ...  # the clock of AgentStatus.since / wrap_up_until / enqueued_at (seconds)

    def login(self, agent_id: str, *, paused: bool = False) -> None: ...

    def logout(self, agent_id: str) -> None: ...

    def ready(self, agent_id: str) -> None: ...

    def pause(self, agent_id: str, reason: str = "break") -> None: ...

    def end_wrap_up(self, agent_id: str) -> None:
        """wrap_up → ready now (before the timer); InvalidTransition in any other state."""
        ...

    def set_skills(self, agent_id: str, skills: dict[str, int]) -> None:
        """Replace the agent's skills (names already checked against ``config.skills``, levels 1-10) for routing
        from now on; emits an agent event. MISSING in AcdService."""
        ...


class QueueKpis(Protocol):
    async def service_level_today(self, queue: str) -> float | None:
        """Percent of today's answered+abandoned callers of ``queue`` answered within its target (None: no calls)."""
        ...


# -- calls ------------------------------------------------------------------------------------------------


class LiveCall(Protocol):
    """A call in the runtime now (``calls.call.Call``)."""

    @property
    def call_id(self) -> uuid.UUID: ...

    @property
    def channel_id(self) -> str: ...

    @property
    def direction(self) -> str: ...

    @property
    def did(self) -> str: ...

    @property
    def caller_number(self) -> str: ...

    @property
    def answered(self) -> bool: ...

    @property
    def adopted(self) -> bool: ...

    @property
    def variables(self) -> Mapping[str, str]: ...


class CallRegistry(Protocol):
    """The live calls (``CallRuntime``)."""

    def calls(self) -> Sequence[LiveCall]: ...


class CallStore(Protocol):
    """A call's stored record and events (PostgreSQL)."""

    async def call_row(self, call_id: uuid.UUID) -> Mapping[str, Any] | None: ...

    async def call_events(self, call_id: uuid.UUID) -> Sequence[Mapping[str, Any]]: ...


class PgCallStore:
    """:class:`CallStore` over the ``calls`` and ``call_events`` tables (``store.queries``)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    async def call_row(self, call_id: uuid.UUID) -> Mapping[str, Any] | None:
        from callcore.store.queries import call_row

        row = await call_row(self.db, call_id)
        return dict(row) if row is not None else None

    async def call_events(self, call_id: uuid.UUID) -> Sequence[Mapping[str, Any]]:
        from callcore.store.queries import call_events_for

        return [dict(r) for r in await call_events_for(self.db, call_id)]


RecordingOperation = Literal["start", "pause", "resume", "stop"]
SupervisionMode = Literal["listen", "whisper", "barge"]


class ConversationControl(Protocol):
    """Actions on an agent's connected call (``AcdService``, from ``acd.controls.CallControls``).

    The API finds the agent on the call and passes its id. Refusals raise ``acd.conversation.ConversationError``
    (→ 409) or ``InvalidTransition`` (a target agent that is not ready → 409). Results are small dicts (or
    None) returned to the client as ``result``."""

    async def transfer(self, agent_id: str, *, queue: str | None = None, to_agent: str | None = None,
                       number: str | None = None) -> Any:
        """Blind transfer to a queue, another agent or a number (exactly one)."""
        ...

    async def consult(self, agent_id: str, *, to_agent: str | None = None, number: str | None = None) -> Any:
        """Attended transfer, step one: the caller holds while the agent talks to the target."""
        ...

    async def complete_transfer(self, agent_id: str) -> Any: ...

    async def cancel_consult(self, agent_id: str) -> Any: ...

    async def conference(self, agent_id: str) -> Any: ...

    async def recording(self, agent_id: str, operation: str) -> Any:
        """operation: start, pause, resume, stop."""
        ...

    async def supervise(self, agent_id: str, endpoint: str, mode: str = "listen") -> Any:
        """Ring ``endpoint`` (the supervisor's phone) into the agent's call: listen, whisper or barge."""
        ...

    async def stop_supervision(self, agent_id: str, session_id: str) -> Any: ...


class CallActions(Protocol):
    """Originate and hang up (MISSING: no service offers them yet; the endpoints answer 501 until wired).

    Raise :class:`NotFound` for an unknown or finished call, :class:`Rejected` when it cannot be done."""

    async def originate(self, *, number: str, agent_id: str | None, endpoint: str | None,
                        caller_id: str | None, variables: Mapping[str, str], timeout: float) -> uuid.UUID:
        """Click-to-call: ring the agent's phone (or ``endpoint``) first, then dial ``number``; the call id."""
        ...

    async def hangup(self, call_id: uuid.UUID, *, reason: str) -> None: ...


@dataclass
class ApiServices:
    """Everything the handlers use; None: not wired (the endpoints using it answer 503 or 501)."""

    acd: AcdControl | None = None
    calls: CallRegistry | None = None
    store: CallStore | None = None
    conversations: ConversationControl | None = None
    actions: CallActions | None = None
    sink: EventSink | None = None
    kpis: QueueKpis | None = None


__all__ = [
    "AcdControl",
    "ApiServices",
    "CallActions",
    "CallRegistry",
    "CallStore",
    "ConversationControl",
    "LiveCall",
    "NotFound",
    "PgCallStore",
    "QueueKpis",
    "RecordingOperation",
    "Rejected",
    "ServiceError",
    "SupervisionMode",
    "WaitingCaller",
]
