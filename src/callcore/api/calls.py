"""Calls: the live calls, one call with its stored event history, and telephony actions on calls.

Reading (``GET /calls``, ``GET /calls/{call_id}``) is for supervisors and integrators. Transfers, recording and
supervision act on the agent connected to the call through
:class:`~callcore.api.services.ConversationControl`; originate and hang-up go through
:class:`~callcore.api.services.CallActions` (501 ``not_implemented`` until it is wired). An agent token acts only
on calls its agent is on, and originates only for itself; supervision is for supervisors.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from callcore.api.agents import AgentId
from callcore.api.auth import Role
from callcore.api.common import Body, Out, require, service_errors
from callcore.api.errors import ApiError, conflict, forbidden, not_found
from callcore.api.pagination import PageQuery, paginate
from callcore.api.routing import ApiRequest, RouteTable
from callcore.api.services import CallActions, ConversationControl, LiveCall, RecordingOperation, SupervisionMode

routes = RouteTable()

READ = (Role.supervisor, Role.integrator)
ACT = (Role.agent, Role.integrator)  # agent tokens: their own calls only
TAGS = ("calls",)
CALL_ID = {"call_id": uuid.UUID}

AcdState = Literal["queued", "ringing", "connected"]


class LiveCallOut(Out):
    call_id: uuid.UUID
    channel_id: str
    direction: str
    did: str
    caller_number: str
    answered: bool
    adopted: bool = Field(description="taken over again after a reconnect or restart")
    acd: AcdState | None = Field(None, description="where the call is in the ACD, if it is there")
    queue: str | None = None
    agent: str | None = Field(None, description="the agent it rings or talks to")


class CallPage(Out):
    items: list[LiveCallOut]
    next: str | None


class CallRecord(Out):
    """The stored ``calls`` row (a projection of the events)."""

    direction: str | None = None
    did: str | None = None
    caller_number: str | None = None
    caller_name: str | None = None
    channel_id: str | None = None
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    disposition: str | None = None
    hangup_cause: int | None = None
    hangup_cause_text: str | None = None
    config_version: str | None = None
    variables: dict[str, Any] = Field(default_factory=dict)


class CallEventOut(Out):
    event_id: uuid.UUID
    type: str
    occurred_at: datetime
    channel_id: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)


class CallDetail(Out):
    call_id: uuid.UUID
    live: LiveCallOut | None = Field(None, description="present while the call is live in this process")
    record: CallRecord | None = Field(None, description="null until the first events are written (≤ 1 s)")
    events: list[CallEventOut] = Field(description="every stored event of the call, in order")


def _acd_positions(req: ApiRequest) -> dict[str, tuple[AcdState, str | None, str | None]]:
    """call id → (acd state, queue, agent) from the ACD, if it is wired."""
    acd = req.services.acd
    out: dict[str, tuple[AcdState, str | None, str | None]] = {}
    if acd is None:
        return out
    for caller in acd.waiting.values():
        out[caller.id] = ("ringing" if caller.assigned else "queued", caller.queue, caller.assigned)
    for agent_id, status in acd.agents.items():
        for call_id in status.calls:
            out[call_id] = ("connected", None, agent_id)
        if status.offer is not None:
            queue = out.get(status.offer, (None, None, None))[1]
            out[status.offer] = ("ringing", queue, agent_id)
    return out


def _live_out(call: LiveCall, positions: Mapping[str, tuple[AcdState, str | None, str | None]]) -> LiveCallOut:
    acd, queue, agent = positions.get(str(call.call_id), (None, None, None))
    return LiveCallOut(call_id=call.call_id, channel_id=call.channel_id, direction=call.direction, did=call.did,
                       caller_number=call.caller_number, answered=call.answered, adopted=call.adopted, acd=acd,
                       queue=queue, agent=agent)


@routes.get("/calls", summary="List live calls", tags=TAGS, roles=READ, query=PageQuery, response=CallPage)
async def list_calls(req: ApiRequest) -> CallPage:
    registry = require(req.services.calls, "call runtime")
    page, next_link = paginate(list(registry.calls()), lambda c: str(c.call_id), req.query, req)
    positions = _acd_positions(req)
    return CallPage(items=[_live_out(c, positions) for c in page], next=next_link)


@routes.get("/calls/{call_id}", summary="One call with its event history", tags=TAGS, roles=READ,
            response=CallDetail, path_params=CALL_ID, errors=(404,))
async def get_call(req: ApiRequest) -> CallDetail:
    call_id: uuid.UUID = req.path["call_id"]
    store = require(req.services.store, "event store")
    live = None
    if req.services.calls is not None:
        live = next((c for c in req.services.calls.calls() if c.call_id == call_id), None)
    row = await store.call_row(call_id)
    events = await store.call_events(call_id)
    if row is None and live is None and not events:
        raise not_found("call", call_id)
    record = CallRecord.model_validate({k: row.get(k) for k in CallRecord.model_fields if row.get(k) is not None}) \
        if row is not None else None
    return CallDetail(
        call_id=call_id,
        live=_live_out(live, _acd_positions(req)) if live is not None else None,
        record=record,
        events=[CallEventOut(event_id=e["event_id"], type=e["type"], occurred_at=e["occurred_at"],
                             channel_id=e.get("channel_id"), payload=e.get("payload") or {}) for e in events],
    )


# -- actions ------------------------------------------------------------------------------------------------

Number = Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{2,20}$")]
DialString = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_./@:+-]+$")]


class OriginateBody(Body):
    number: Number = Field(description="the number to call: digits, optionally with a leading +")
    agent_id: AgentId | None = Field(None, description="ring this agent's phone first (click-to-call)")
    endpoint: DialString | None = Field(None, description="or ring this Asterisk endpoint first (not for agent "
                                                            "tokens)")
    caller_id: str | None = Field(None, max_length=80)
    variables: dict[str, str] = Field(default_factory=dict, max_length=50)
    timeout: float = Field(30.0, ge=1, le=300, description="seconds the first leg may ring")

    @model_validator(mode="after")
    def _one_first_leg(self) -> OriginateBody:
        if (self.agent_id is None) == (self.endpoint is None):
            raise ValueError("give exactly one of agent_id and endpoint")
        return self


class CallCreated(Out):
    call_id: uuid.UUID


class HangupBody(Body):
    reason: str = Field("api", min_length=1, max_length=100)


class TransferBody(Body):
    mode: Literal["blind", "attended"] = Field(
        description="blind: hand over at once; attended: consult first, then complete, cancel or conference")
    queue: str | None = Field(None, min_length=1, max_length=100, description="blind only: back into this queue")
    agent: AgentId | None = Field(None, description="to this agent (must be ready)")
    number: Number | None = Field(None, description="to this external number")

    @model_validator(mode="after")
    def _one_target(self) -> TransferBody:
        if sum(t is not None for t in (self.queue, self.agent, self.number)) != 1:
            raise ValueError("give exactly one of queue, agent and number")
        if self.mode == "attended" and self.queue is not None:
            raise ValueError("an attended transfer goes to an agent or a number, not a queue")
        return self


class SuperviseBody(Body):
    mode: SupervisionMode
    endpoint: DialString = Field(description="the supervisor's phone, e.g. PJSIP/sup01")


class ActionOut(Out):
    call_id: uuid.UUID
    action: str
    agent: str | None = Field(None, description="the agent whose call it is")
    result: dict[str, Any] | None = Field(None, description="what the service reported (e.g. a recording's state, "
                                                             "a supervision session id)")


def _agent_on_call(req: ApiRequest, call_id: uuid.UUID) -> str:
    """The agent on ``call_id``: an agent token's own (403 if it is not on the call), else the first one."""
    acd = require(req.services.acd, "ACD")
    key = str(call_id)
    p = req.principal
    if p is not None and p.role is Role.agent:
        status = acd.agents.get(p.agent_id or "")
        if status is None or key not in status.calls:
            raise forbidden(f"agent {p.agent_id!r} is not on call {call_id}",
                            {"agent": p.agent_id, "call_id": key})
        return status.id
    on_call = sorted(a for a, s in acd.agents.items() if key in s.calls)
    if not on_call:
        raise conflict("not_connected", f"no agent is on call {call_id} (it is not a connected ACD call)",
                       {"call_id": key})
    return on_call[0]


def _result(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None


def _conversations(req: ApiRequest) -> ConversationControl:
    return require(req.services.conversations, "call control")


def _actions(req: ApiRequest) -> CallActions:
    actions = req.services.actions
    if actions is None:
        raise ApiError(501, "not_implemented", "originate and hang-up are not available yet")
    return actions


@routes.post("/calls", summary="Originate a call (click-to-call)", tags=TAGS, roles=ACT, body=OriginateBody,
             response=CallCreated, status=201, errors=(404, 409, 501),
             description="Rings the agent's phone (or the endpoint) first, then dials `number`. An agent token "
                         "originates for its own agent only.")
async def originate_call(req: ApiRequest) -> CallCreated:
    body: OriginateBody = req.body
    p = req.principal
    if p is not None and p.role is Role.agent and (body.endpoint is not None or body.agent_id != p.agent_id):
        raise forbidden(f"this token may originate only for agent {p.agent_id!r}", {"agent": p.agent_id})
    acd = req.services.acd
    if body.agent_id is not None and acd is not None and body.agent_id not in acd.agents:
        raise not_found("agent", body.agent_id)
    actions = _actions(req)
    with service_errors():
        call_id = await actions.originate(number=body.number, agent_id=body.agent_id, endpoint=body.endpoint,
                                          caller_id=body.caller_id, variables=body.variables, timeout=body.timeout)
    return CallCreated(call_id=call_id)


@routes.post("/calls/{call_id}/hangup", summary="Hang up a call", tags=TAGS, roles=ACT, body=HangupBody,
             response=ActionOut, path_params=CALL_ID, errors=(404, 409, 501),
             description="An agent token may hang up only a call its agent is on.")
async def hangup_call(req: ApiRequest) -> ActionOut:
    call_id = req.path["call_id"]
    agent = _agent_on_call(req, call_id) if req.principal and req.principal.role is Role.agent else None
    actions = _actions(req)
    with service_errors():
        await actions.hangup(call_id, reason=req.body.reason)
    return ActionOut(call_id=call_id, action="hangup", agent=agent)


@routes.post("/calls/{call_id}/transfer", summary="Transfer a call (blind, or attended: consult first)",
             tags=TAGS, roles=ACT, body=TransferBody, response=ActionOut, path_params=CALL_ID, errors=(409,),
             description="The call must be connected to an agent (an agent token: its own). An attended transfer "
                         "puts the caller on hold while the agent consults; finish it with `transfer/complete`, "
                         "`transfer/cancel` or `conference`.")
async def transfer_call(req: ApiRequest) -> ActionOut:
    call_id = req.path["call_id"]
    body: TransferBody = req.body
    agent = _agent_on_call(req, call_id)
    conv = _conversations(req)
    with service_errors():
        if body.mode == "blind":
            result = await conv.transfer(agent, queue=body.queue, to_agent=body.agent, number=body.number)
        else:
            result = await conv.consult(agent, to_agent=body.agent, number=body.number)
    return ActionOut(call_id=call_id, action=f"transfer:{body.mode}", agent=agent, result=_result(result))


def _step(name: str, path: str, summary: str, method_name: str) -> None:
    async def handler(req: ApiRequest) -> ActionOut:
        call_id = req.path["call_id"]
        agent = _agent_on_call(req, call_id)
        conv = _conversations(req)
        with service_errors():
            result = await getattr(conv, method_name)(agent)
        return ActionOut(call_id=call_id, action=name, agent=agent, result=_result(result))

    handler.__name__ = name.replace("-", "_").replace(":", "_")
    routes.post(path, summary=summary, tags=TAGS, roles=ACT, response=ActionOut, path_params=CALL_ID,
                errors=(409,))(handler)


_step("complete_transfer", "/calls/{call_id}/transfer/complete",
      "Complete an attended transfer (the caller talks to the consulted party)", "complete_transfer")
_step("cancel_transfer", "/calls/{call_id}/transfer/cancel",
      "Cancel an attended transfer (back to the caller)", "cancel_consult")
_step("conference", "/calls/{call_id}/conference",
      "Turn an attended transfer into a three-way call", "conference")


@routes.post("/calls/{call_id}/recording/{operation}", summary="Start, pause, resume or stop recording a call",
             tags=TAGS, roles=ACT, response=ActionOut,
             path_params={**CALL_ID, "operation": RecordingOperation}, errors=(409,))
async def record_call(req: ApiRequest) -> ActionOut:
    call_id, operation = req.path["call_id"], req.path["operation"]
    agent = _agent_on_call(req, call_id)
    conv = _conversations(req)
    with service_errors():
        result = await conv.recording(agent, operation)
    return ActionOut(call_id=call_id, action=f"recording:{operation}", agent=agent, result=_result(result))


@routes.post("/calls/{call_id}/supervise", summary="Listen to, whisper to or barge into a call", tags=TAGS,
             roles=(Role.supervisor,), body=SuperviseBody, response=ActionOut, path_params=CALL_ID, errors=(409,),
             description="Rings the supervisor's phone (`endpoint`) and joins it to the agent's call: `listen` "
                         "hears both sides, `whisper` talks to the agent only, `barge` talks to both.")
async def supervise_call(req: ApiRequest) -> ActionOut:
    call_id = req.path["call_id"]
    body: SuperviseBody = req.body
    agent = _agent_on_call(req, call_id)
    conv = _conversations(req)
    with service_errors():
        result = await conv.supervise(agent, body.endpoint, body.mode)
    return ActionOut(call_id=call_id, action=f"supervise:{body.mode}", agent=agent, result=_result(result))


@routes.post("/calls/{call_id}/supervise/{session_id}/stop", summary="End a supervision session", tags=TAGS,
             roles=(Role.supervisor,), response=ActionOut,
             path_params={**CALL_ID, "session_id": Annotated[str, StringConstraints(min_length=1, max_length=100)]},
             errors=(409,))
async def stop_supervision(req: ApiRequest) -> ActionOut:
    call_id, session_id = req.path["call_id"], req.path["session_id"]
    agent = _agent_on_call(req, call_id)
    conv = _conversations(req)
    with service_errors():
        result = await conv.stop_supervision(agent, session_id)
    return ActionOut(call_id=call_id, action="supervise:stop", agent=agent, result=_result(result))


__all__ = ["CallDetail", "LiveCallOut", "routes"]
