"""Domain events: the small typed records every service emits about a call.

They are the contract between the services that observe calls (call runtime, IVR, ACD, dialer) and the
event store that persists them. They never carry raw ARI payloads: only what a report or an auditor needs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from callcore.ids import uuid7


class EventType:
    """Stable names of call events (stored in call_events.type; reports depend on them)."""

    CALL_STARTED = "call_started"  # channel entered callcore's Stasis app (StasisStart)
    CALL_ADOPTED = "call_adopted"  # a live channel taken over again after a reconnect or restart
    ANSWERED = "answered"
    PLAYBACK_STARTED = "playback_started"
    PLAYBACK_FINISHED = "playback_finished"
    DTMF = "dtmf"
    DIGITS_COLLECTED = "digits_collected"
    ORIGINATED = "originated"
    BRIDGED = "bridged"
    HANGUP = "hangup"  # hangup requested or observed, with its cause
    CALL_ENDED = "call_ended"  # channel left the Stasis app (StasisEnd) or vanished
    HANDLER_ERROR = "handler_error"
    VARIABLES_SET = "variables_set"  # data: {name: value, ...}, merged into calls.variables


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One thing that happened to one call.

    ``call_id`` groups every event of a call (a call may own several channels, e.g. caller and agent legs);
    ``channel_id`` says which leg; ``event_id`` makes writes idempotent (retries never duplicate a row).
    """

    call_id: uuid.UUID
    type: str
    at: datetime
    channel_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    event_id: uuid.UUID = field(default_factory=uuid7)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("CallEvent.at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """An agent's state change (login, ready, reserved, on_call, wrap_up, paused, logged_out).

    Stored in ``agent_events`` by the same writer as call events, in the same batches: occupancy, adherence
    and "who was offered what" reports join the two by ``call_id``.
    """

    agent_id: str
    state: str
    at: datetime
    previous: str | None = None
    reason: str | None = None
    call_id: uuid.UUID | None = None
    queue: str | None = None
    event_id: uuid.UUID = field(default_factory=uuid7)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("AgentEvent.at must be timezone-aware")


def event_record(event: CallEvent | AgentEvent) -> dict[str, Any]:
    """A JSON-able dict of ``event`` (the disk spool's format), read back by :func:`event_from_record`."""
    if isinstance(event, CallEvent):
        return {"kind": "call", "call_id": str(event.call_id), "type": event.type, "at": event.at.isoformat(),
                "channel_id": event.channel_id, "data": event.data, "event_id": str(event.event_id)}
    return {"kind": "agent", "agent_id": event.agent_id, "state": event.state, "at": event.at.isoformat(),
            "previous": event.previous, "reason": event.reason,
            "call_id": str(event.call_id) if event.call_id else None, "queue": event.queue,
            "event_id": str(event.event_id)}


def event_from_record(r: dict[str, Any]) -> CallEvent | AgentEvent:
    at = datetime.fromisoformat(r["at"])
    if r["kind"] == "call":
        return CallEvent(uuid.UUID(r["call_id"]), r["type"], at, r.get("channel_id"), r.get("data") or {},
                         uuid.UUID(r["event_id"]))
    return AgentEvent(r["agent_id"], r["state"], at, r.get("previous"), r.get("reason"),
                      uuid.UUID(r["call_id"]) if r.get("call_id") else None, r.get("queue"), uuid.UUID(r["event_id"]))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class EventSink(Protocol):
    """Where services send events. ``emit`` never blocks and never raises on database trouble."""

    def emit(self, event: CallEvent | AgentEvent) -> None: ...
