"""The ``calls`` projection: how a batch of events folds into one patch per call (pure Python, no database).

Rules (each applied so that replaying or reordering events never loses information):

* any event of a call with no row yet creates a minimal row (``started_at`` = the earliest ``at`` seen in the
  batch, ``channel_id`` = the first channel seen), so nothing is lost when events arrive before
  ``call_started`` (e.g. re-adopted calls);
* ``call_started`` (data: direction, did, caller_number, caller_name, config_version) fills the columns still
  NULL, sets ``channel_id`` to its channel and ``started_at`` to the earliest of the row's and its own ``at``;
* ``answered``: ``answered_at`` = first answer;
* ``hangup`` (data: cause:int, cause_text:str): the first cause wins (both columns are set only while both
  are NULL);
* ``call_ended`` (data may hold disposition): ``ended_at`` = first end; ``disposition`` = the last one given;
* ``variables_set`` (data: {name: value, …}): merged into ``calls.variables`` (``jsonb ||``, later wins).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from callcore.events import AgentEvent, CallEvent, EventType

VARIABLES_SET = "variables_set"  # proposed for callcore.events.EventType

_START_FIELDS = ("direction", "did", "caller_number", "caller_name", "config_version")


@dataclass(slots=True)
class CallPatch:
    call_id: uuid.UUID
    first_at: datetime
    first_channel: str | None = None
    started_at: datetime | None = None
    start_channel: str | None = None
    direction: str | None = None
    did: str | None = None
    caller_number: str | None = None
    caller_name: str | None = None
    config_version: str | None = None
    answered_at: datetime | None = None
    has_hangup: bool = False
    hangup_cause: int | None = None
    hangup_cause_text: str | None = None
    ended_at: datetime | None = None
    disposition: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)


def _text(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else str(v)


def _int(v: Any) -> int | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        i = int(v)
    except (TypeError, ValueError):
        return None
    return i if -(2**31) <= i < 2**31 else None


def fold(events: Iterable[CallEvent]) -> list[CallPatch]:
    """One patch per call, in order of first appearance, from events in emit order."""
    patches: dict[uuid.UUID, CallPatch] = {}
    for ev in events:
        p = patches.get(ev.call_id)
        if p is None:
            p = patches[ev.call_id] = CallPatch(call_id=ev.call_id, first_at=ev.at, first_channel=ev.channel_id)
        else:
            if ev.at < p.first_at:
                p.first_at = ev.at
            if p.first_channel is None:
                p.first_channel = ev.channel_id
        data = ev.data or {}
        t = ev.type
        if t == EventType.CALL_STARTED:
            if p.started_at is None or ev.at < p.started_at:
                p.started_at = ev.at
            if p.start_channel is None:
                p.start_channel = ev.channel_id
            for name in _START_FIELDS:
                if getattr(p, name) is None:
                    setattr(p, name, _text(data.get(name)))
        elif t == EventType.ANSWERED:
            if p.answered_at is None:
                p.answered_at = ev.at
        elif t == EventType.HANGUP:
            cause, text = _int(data.get("cause")), _text(data.get("cause_text"))
            if not p.has_hangup and (cause is not None or text is not None):
                p.has_hangup, p.hangup_cause, p.hangup_cause_text = True, cause, text
        elif t == EventType.CALL_ENDED:
            if p.ended_at is None:
                p.ended_at = ev.at
            if data.get("disposition") is not None:
                p.disposition = _text(data["disposition"])
        elif t == VARIABLES_SET:
            p.variables.update(data)
    return list(patches.values())


def changes_row(p: CallPatch) -> bool:
    """Whether applying ``p`` can change its calls row beyond the minimal row (else the UPDATE is skipped)."""
    return (
        p.started_at is not None
        or p.answered_at is not None
        or p.has_hangup
        or p.ended_at is not None
        or p.disposition is not None
        or bool(p.variables)
    )


def json_default(o: Any) -> Any:
    """JSON for the values services commonly put in event data (datetimes, UUIDs, sets…)."""
    if isinstance(o, datetime):
        return o.isoformat()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    return str(o)


def dumps(data: Any) -> str:
    """Event payload as JSON text (NaN/Infinity are refused: jsonb cannot store them)."""
    return json.dumps(data, default=json_default, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# SQL for one batch -----------------------------------------------------------------------------------------

# Inserts the events in emit order (bigserial id order == emit order), skipping event_ids already stored, and
# creates a minimal calls row for each call of the batch that has none. Returns the event_ids really inserted.
INSERT_EVENTS_SQL = """
WITH ins AS (
    INSERT INTO call_events (event_id, call_id, channel_id, occurred_at, type, payload)
    SELECT e.event_id, e.call_id, e.channel_id, e.occurred_at, e.type, e.payload::jsonb
    FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::text[], $6::text[])
         WITH ORDINALITY AS e(event_id, call_id, channel_id, occurred_at, type, payload, ord)
    ORDER BY e.ord
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
), mini AS (
    INSERT INTO calls (call_id, started_at, channel_id)
    SELECT m.call_id, m.first_at, m.first_channel
    FROM unnest($7::uuid[], $8::timestamptz[], $9::text[]) AS m(call_id, first_at, first_channel)
    ON CONFLICT (call_id) DO NOTHING
)
SELECT event_id FROM ins
"""

# Applies the folded patches of the events inserted by this batch (never twice: see INSERT_EVENTS_SQL).
UPDATE_CALLS_SQL = """
UPDATE calls AS c SET
    direction = COALESCE(c.direction, p.direction),
    did = COALESCE(c.did, p.did),
    caller_number = COALESCE(c.caller_number, p.caller_number),
    caller_name = COALESCE(c.caller_name, p.caller_name),
    config_version = COALESCE(c.config_version, p.config_version),
    channel_id = COALESCE(p.start_channel, c.channel_id),
    started_at = LEAST(c.started_at, p.started_at),
    answered_at = COALESCE(c.answered_at, p.answered_at),
    hangup_cause = CASE WHEN p.has_hangup AND c.hangup_cause IS NULL AND c.hangup_cause_text IS NULL
                        THEN p.hangup_cause ELSE c.hangup_cause END,
    hangup_cause_text = CASE WHEN p.has_hangup AND c.hangup_cause IS NULL AND c.hangup_cause_text IS NULL
                             THEN p.hangup_cause_text ELSE c.hangup_cause_text END,
    ended_at = COALESCE(c.ended_at, p.ended_at),
    disposition = COALESCE(p.disposition, c.disposition),
    variables = c.variables || p.variables::jsonb,
    updated_at = now()
FROM unnest(
    $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[],
    $9::timestamptz[], $10::bool[], $11::int[], $12::text[], $13::timestamptz[], $14::text[], $15::text[]
) AS p(call_id, direction, did, caller_number, caller_name, config_version, start_channel, started_at,
       answered_at, has_hangup, hangup_cause, hangup_cause_text, ended_at, disposition, variables)
WHERE c.call_id = p.call_id
"""


def event_columns(events: list[CallEvent]) -> tuple[list[Any], ...]:
    """The nine array parameters of INSERT_EVENTS_SQL (raises ValueError/TypeError on an unencodable event)."""
    firsts: dict[uuid.UUID, list[Any]] = {}
    for ev in events:
        f = firsts.get(ev.call_id)
        if f is None:
            firsts[ev.call_id] = [ev.at, ev.channel_id]
        else:
            if ev.at < f[0]:
                f[0] = ev.at
            if f[1] is None:
                f[1] = ev.channel_id
    return (
        [ev.event_id for ev in events],
        [ev.call_id for ev in events],
        [_text(ev.channel_id) for ev in events],
        [ev.at for ev in events],
        [str(ev.type) for ev in events],
        [dumps(ev.data or {}) for ev in events],
        list(firsts),
        [f[0] for f in firsts.values()],
        [_text(f[1]) for f in firsts.values()],
    )


def patch_columns(patches: list[CallPatch]) -> tuple[list[Any], ...]:
    """The fifteen array parameters of UPDATE_CALLS_SQL."""
    return (
        [p.call_id for p in patches],
        [p.direction for p in patches],
        [p.did for p in patches],
        [p.caller_number for p in patches],
        [p.caller_name for p in patches],
        [p.config_version for p in patches],
        [_text(p.start_channel) for p in patches],
        [p.started_at for p in patches],
        [p.answered_at for p in patches],
        [p.has_hangup for p in patches],
        [p.hangup_cause for p in patches],
        [p.hangup_cause_text for p in patches],
        [p.ended_at for p in patches],
        [p.disposition for p in patches],
        [dumps(p.variables) for p in patches],
    )


# Agent state changes: appended as they are (no projection), idempotent on event_id.
INSERT_AGENT_EVENTS_SQL = """
INSERT INTO agent_events (event_id, agent_id, occurred_at, state, previous, reason, call_id, queue)
SELECT e.event_id, e.agent_id, e.occurred_at, e.state, e.previous, e.reason, e.call_id, e.queue
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::uuid[], $8::text[])
     WITH ORDINALITY AS e(event_id, agent_id, occurred_at, state, previous, reason, call_id, queue, ord)
ORDER BY e.ord
ON CONFLICT (event_id) DO NOTHING
"""


def agent_event_columns(events: list[AgentEvent]) -> tuple[list[Any], ...]:
    """The eight array parameters of INSERT_AGENT_EVENTS_SQL."""
    return (
        [e.event_id for e in events],
        [e.agent_id for e in events],
        [e.at for e in events],
        [e.state for e in events],
        [e.previous for e in events],
        [e.reason for e in events],
        [e.call_id for e in events],
        [e.queue for e in events],
    )
