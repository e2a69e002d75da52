"""The public form of callcore's events: one name and one JSON shape, for webhooks and the ``/events`` WebSocket.

Names (each event has exactly one):

* ``agent.<state>`` for an :class:`~callcore.events.AgentEvent` (``agent.ready``, ``agent.paused``, ...);
* ``acd.<type>`` for the call events the ACD emits about a caller's way through a queue (``acd.queued``,
  ``acd.offered``, ``acd.agent_no_answer``, ``acd.connected``, ``acd.abandoned``, ``acd.overflow``,
  ``acd.announcement``);
* ``call.<type>`` for every other :class:`~callcore.events.CallEvent` (``call.call_started``, ``call.answered``,
  ``call.hangup``, ``call.ivr_input``, ``call.transferred``, ...).

Patterns (webhook ``events``): a name, ``<namespace>.*``, a prefix ending in ``*`` (``call.ivr_*``), or ``*``.

Body (JSON)::

    {"event_id": "0190…", "type": "acd.connected", "at": "2026-03-01T09:30:00.123456Z",
     "call_id": "0190…", "channel_id": "1709…", "data": {"queue": "sales", "agent": "agent01", "wait_seconds": 12.5}}
    {"event_id": "0190…", "type": "agent.paused", "at": "…", "agent_id": "agent01", "call_id": null,
     "data": {"state": "paused", "previous": "ready", "reason": "lunch", "queue": null}}
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import timezone
from typing import Any

from callcore.events import AgentEvent, CallEvent
from callcore.store.projection import json_default

# The ACD's call events (callcore.acd.service.AcdEventType; a unit test keeps the two in step).
ACD_TYPES = frozenset({"queued", "offered", "agent_no_answer", "connected", "abandoned", "overflow", "announcement"})
# The ``queue`` topic of /events: a caller's passage through a queue (position announcements are left out).
QUEUE_TYPES = frozenset({"queued", "offered", "agent_no_answer", "connected", "abandoned", "overflow"})
AGENT_STATES = frozenset({"logged_out", "ready", "reserved", "on_call", "wrap_up", "paused"})
NAMESPACES = ("call", "acd", "agent")

_PATTERN_RE = re.compile(r"^(?:\*|(call|acd|agent)\.([a-z0-9_]*)(\*?))$")


def public_type(event: CallEvent | AgentEvent) -> str:
    """The event's public name: ``agent.<state>``, ``acd.<type>`` or ``call.<type>``."""
    if isinstance(event, AgentEvent):
        return f"agent.{event.state}"
    return f"acd.{event.type}" if event.type in ACD_TYPES else f"call.{event.type}"


def _iso(at: Any) -> str:
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def event_body(event: CallEvent | AgentEvent) -> dict[str, Any]:
    """The JSON object sent for ``event`` (webhook body, WebSocket message)."""
    if isinstance(event, AgentEvent):
        return {
            "event_id": str(event.event_id), "type": public_type(event), "at": _iso(event.at),
            "agent_id": event.agent_id, "call_id": str(event.call_id) if event.call_id is not None else None,
            "data": {"state": event.state, "previous": event.previous, "reason": event.reason, "queue": event.queue},
        }
    return {
        "event_id": str(event.event_id), "type": public_type(event), "at": _iso(event.at),
        "call_id": str(event.call_id), "channel_id": event.channel_id, "data": dict(event.data or {}),
    }


def encode(body: Any) -> str:
    """Compact JSON (the bytes that are signed). Raises ValueError for NaN/Infinity, like the event store."""
    return json.dumps(body, default=json_default, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def check_pattern(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid event pattern (None when it is)."""
    m = _PATTERN_RE.match(pattern) if isinstance(pattern, str) else None
    if m is None:
        return (f"{pattern!r} is not an event pattern: use 'call.<type>', 'acd.<type>', 'agent.<state>', "
                "'<namespace>.*', a prefix ending in '*', or '*'")
    namespace, name, star = m.groups()
    if namespace is None or star:
        return None
    if not name:
        return f"{pattern!r}: name an event after the dot, or write '{namespace}.*'"
    if namespace == "agent" and name not in AGENT_STATES:
        return f"{pattern!r}: unknown agent state (one of {', '.join(sorted(AGENT_STATES))})"
    if namespace == "acd" and name not in ACD_TYPES:
        return f"{pattern!r}: unknown ACD event (one of {', '.join(sorted(ACD_TYPES))})"
    if namespace == "call" and name in ACD_TYPES:
        return f"{pattern!r}: the ACD's events are named acd.<type>: write 'acd.{name}'"
    return None


class Matcher:
    """Whether an event name matches any of a list of (valid) patterns."""

    def __init__(self, patterns: Iterable[str]) -> None:
        patterns = list(patterns)
        self.everything = "*" in patterns
        self.exact = frozenset(p for p in patterns if not p.endswith("*"))
        self.prefixes = tuple(p[:-1] for p in patterns if p.endswith("*") and p != "*")

    def __call__(self, name: str) -> bool:
        return self.everything or name in self.exact or (bool(self.prefixes) and name.startswith(self.prefixes))


__all__ = [
    "ACD_TYPES",
    "AGENT_STATES",
    "NAMESPACES",
    "QUEUE_TYPES",
    "Matcher",
    "check_pattern",
    "encode",
    "event_body",
    "public_type",
]
