"""Agents: live state, state commands, skills, dispositions.

| endpoint | roles |
|---|---|
| ``GET /agents`` | supervisor, integrator |
| ``GET /agents/{agent_id}`` | agent (own), supervisor, integrator |
| ``POST /agents/{agent_id}/login|logout|ready|pause``, ``POST /agents/{agent_id}/wrap-up/end`` | agent (own), supervisor, integrator |
| ``PUT /agents/{agent_id}/skills`` | supervisor |
| ``POST /agents/{agent_id}/disposition`` | agent (own), supervisor, integrator |

(admin may do everything.) A command the agent's state does not allow is a 409 ``invalid_transition``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from callcore.acd.agent_state import AgentState, AgentStatus, InvalidTransition
from callcore.acd.model import MAX_LEVEL, MIN_LEVEL
from callcore.api.auth import Role
from callcore.api.common import Body, Out, method, require, service_errors, wall_clock
from callcore.api.errors import ApiError, not_found
from callcore.api.pagination import PageQuery, paginate
from callcore.api.routing import ApiRequest, RouteTable
from callcore.api.services import AcdControl
from callcore.events import CallEvent, utcnow

routes = RouteTable()

READ_ALL = (Role.supervisor, Role.integrator)
SELF = (Role.agent, Role.integrator)  # agent tokens for their own agent; supervisors (and admins) for anyone
TAGS = ("agents",)

AgentId = Annotated[str, StringConstraints(min_length=1, max_length=100)]
DISPOSITION_EVENT = "disposition"


class AgentOut(Out):
    id: str
    name: str
    state: AgentState
    since: datetime = Field(description="when the agent entered this state (UTC)")
    seconds_in_state: float
    pause_reason: str | None = None
    calls: list[str] = Field(description="ids of the calls the agent is on")
    offer: str | None = Field(None, description="the call ringing the agent's phone (state reserved)")
    wrap_up_remaining_seconds: float | None = None
    logout_pending: bool = False
    max_calls: int
    skills: dict[str, int]
    queues: list[str]


class AgentPage(Out):
    items: list[AgentOut]
    next: str | None = Field(description="path of the next page; null on the last page")


class AgentListQuery(PageQuery):
    state: AgentState | None = Field(None, description="only agents in this state")
    queue: str | None = Field(None, max_length=100, description="only agents serving this queue")


class LoginBody(Body):
    paused: bool = Field(False, description="log in paused (reason 'login') instead of ready")


class PauseBody(Body):
    reason: str = Field("break", min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")


SkillName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Level = Annotated[int, Field(ge=MIN_LEVEL, le=MAX_LEVEL, strict=True)]


class SkillsBody(Body):
    skills: dict[SkillName, Level] = Field(max_length=200, description="skill → level (1-10); replaces all skills")


class DispositionBody(Body):
    call_id: uuid.UUID
    disposition: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$",
                             description="the outcome code, e.g. sale, no-sale, callback")
    notes: str | None = Field(None, max_length=4000)


class DispositionOut(Out):
    event_id: uuid.UUID
    call_id: uuid.UUID
    agent_id: str
    disposition: str
    notes: str | None
    at: datetime


def agent_out(acd: AcdControl, status: AgentStatus) -> AgentOut:
    cfg = acd.config.agents.get(status.id)
    now = acd.now()
    remaining = None
    if status.state == "wrap_up" and status.wrap_up_until is not None:
        remaining = round(max(0.0, status.wrap_up_until - now), 3)
    return AgentOut(
        id=status.id,
        name=cfg.name if cfg else "",
        state=status.state,
        since=wall_clock(now, status.since),
        seconds_in_state=round(max(0.0, now - status.since), 3),
        pause_reason=status.pause_reason,
        calls=list(status.calls),
        offer=status.offer,
        wrap_up_remaining_seconds=remaining,
        logout_pending=status.logout_pending,
        max_calls=status.max_calls,
        skills=dict(cfg.skills) if cfg else {},
        queues=list(cfg.queues) if cfg else [],
    )


def _acd(req: ApiRequest) -> AcdControl:
    return require(req.services.acd, "ACD")


def _status(acd: AcdControl, agent_id: str) -> AgentStatus:
    status = acd.agents.get(agent_id)
    if status is None:
        raise not_found("agent", agent_id)
    return status


@routes.get("/agents", summary="List agents with their live state", tags=TAGS, roles=READ_ALL,
            query=AgentListQuery, response=AgentPage)
async def list_agents(req: ApiRequest) -> AgentPage:
    acd = _acd(req)
    q: AgentListQuery = req.query
    statuses = [
        s for s in acd.agents.values()
        if (q.state is None or s.state == q.state)
        and (q.queue is None or (s.id in acd.config.agents and q.queue in acd.config.agents[s.id].queues))
    ]
    page, next_link = paginate(statuses, lambda s: s.id, q, req)
    return AgentPage(items=[agent_out(acd, s) for s in page], next=next_link)


@routes.get("/agents/{agent_id}", summary="One agent's live state", tags=TAGS, roles=SELF, response=AgentOut,
            path_params={"agent_id": AgentId}, agent_param="agent_id", errors=(404,))
async def get_agent(req: ApiRequest) -> AgentOut:
    acd = _acd(req)
    return agent_out(acd, _status(acd, req.path["agent_id"]))


Act = Callable[[AcdControl, str, Any], None]


def _command(name: str, act: Act, summary: str, description: str, body: type[Body] | None = None,
             path: str | None = None) -> None:
    async def handler(req: ApiRequest) -> AgentOut:
        acd = _acd(req)
        agent_id = req.path["agent_id"]
        _status(acd, agent_id)
        with service_errors():
            act(acd, agent_id, req.body)
        return agent_out(acd, _status(acd, agent_id))

    handler.__name__ = f"agent_{name}"
    routes.post(path or f"/agents/{{agent_id}}/{name}", summary=summary, description=description, tags=TAGS,
                roles=SELF, body=body, response=AgentOut, path_params={"agent_id": AgentId},
                agent_param="agent_id", errors=(404, 409))(handler)


_command("login", lambda acd, a, b: acd.login(a, paused=b.paused), "Log an agent in",
         "logged_out → ready (or paused with reason 'login' if `paused`).", LoginBody)
_command("logout", lambda acd, a, b: acd.logout(a), "Log an agent out",
         "ready / paused / wrap_up → logged_out. During a call or an offer the logout is pending "
         "(`logout_pending`) and takes effect when the call ends.")
_command("ready", lambda acd, a, b: acd.ready(a), "Make an agent ready",
         "paused → ready; wrap_up → ready (ends wrap-up early).")
_command("pause", lambda acd, a, b: acd.pause(a, b.reason), "Pause an agent",
         "ready / wrap_up / paused → paused(reason).", PauseBody)
def _end_wrap_up(acd: AcdControl, agent_id: str, body: Any) -> None:
    status = acd.agents[agent_id]
    if status.state != "wrap_up":
        raise InvalidTransition(agent_id, status.state, "end wrap-up", "not in wrap-up")
    acd.end_wrap_up(agent_id)


_command("end_wrap_up", _end_wrap_up, "End an agent's wrap-up now", "wrap_up → ready.",
         path="/agents/{agent_id}/wrap-up/end")


@routes.put("/agents/{agent_id}/skills", summary="Replace an agent's skills", tags=TAGS, roles=(Role.supervisor,),
            body=SkillsBody, response=AgentOut, path_params={"agent_id": AgentId}, errors=(404,),
            description="Skills must be declared in the config's `skills`; levels 1-10. Applies to routing "
                        "from now on, in this process; the YAML is not changed (a restart restores it).")
async def set_agent_skills(req: ApiRequest) -> AgentOut:
    acd = _acd(req)
    agent_id = req.path["agent_id"]
    _status(acd, agent_id)
    body: SkillsBody = req.body
    declared = set(acd.config.skills)
    unknown = sorted(set(body.skills) - declared)
    if unknown:
        raise ApiError(422, "unknown_skill", f"skills not declared in the config: {', '.join(unknown)}",
                       [{"loc": ["body", "skills", s], "message": "not a declared skill", "type": "unknown_skill"}
                        for s in unknown])
    set_skills = method(acd, "set_skills", "changing skills")
    with service_errors():
        set_skills(agent_id, dict(body.skills))
    return agent_out(acd, _status(acd, agent_id))


@routes.post("/agents/{agent_id}/disposition", summary="Record a call's disposition and notes", tags=TAGS,
             roles=SELF, body=DispositionBody, response=DispositionOut, status=201,
             path_params={"agent_id": AgentId}, agent_param="agent_id", errors=(404,),
             description="Stored as a `disposition` call event (data: agent, disposition, notes, by).")
async def set_disposition(req: ApiRequest) -> DispositionOut:
    acd = _acd(req)
    agent_id = req.path["agent_id"]
    _status(acd, agent_id)
    body: DispositionBody = req.body
    sink = require(req.services.sink, "event store")
    if not await _call_known(req, body.call_id):
        raise not_found("call", body.call_id)
    by = req.principal.name if req.principal else None
    event = CallEvent(body.call_id, DISPOSITION_EVENT, utcnow(),
                      data={"agent": agent_id, "disposition": body.disposition, "notes": body.notes, "by": by})
    sink.emit(event)
    return DispositionOut(event_id=event.event_id, call_id=body.call_id, agent_id=agent_id,
                          disposition=body.disposition, notes=body.notes, at=event.at)


async def _call_known(req: ApiRequest, call_id: uuid.UUID) -> bool:
    """Live now, or in the store. With neither service wired, the check is skipped."""
    registry, store = req.services.calls, req.services.store
    if registry is None and store is None:
        return True
    if registry is not None and any(c.call_id == call_id for c in registry.calls()):
        return True
    return store is not None and await store.call_row(call_id) is not None


__all__ = ["AgentOut", "agent_out", "routes"]
