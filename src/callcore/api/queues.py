"""Queues: live statistics (waiting callers, longest wait, agents by state, service level today).

Every role may read them (agents' desktops and wallboards show them too).
"""

from __future__ import annotations

from typing import Annotated, get_args

from pydantic import Field, StringConstraints

from callcore.acd.agent_state import AgentState
from callcore.api.auth import Role
from callcore.api.common import Out, require
from callcore.api.errors import not_found
from callcore.api.pagination import PageQuery, paginate
from callcore.api.routing import ApiRequest, RouteTable
from callcore.api.services import AcdControl, WaitingCaller

routes = RouteTable()

READ = (Role.agent, Role.integrator)  # everyone (supervisors and admins through the agent role)
TAGS = ("queues",)
STATES: tuple[str, ...] = get_args(AgentState)
QueueName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class ServiceLevelTarget(Out):
    percent: float
    seconds: float


class QueueOut(Out):
    name: str
    waiting: int = Field(description="callers waiting, including those whose agent's phone rings")
    longest_wait_seconds: float = Field(description="0 when nobody waits")
    agents: dict[str, int] = Field(description="agents serving the queue, by state (every state listed)")
    agents_logged_in: int
    service_level_target: ServiceLevelTarget
    service_level_today: float | None = Field(
        None, description="percent of today's callers answered within the target; null: not known (yet)")


class WaitingCallerOut(Out):
    call_id: str
    position: int = Field(description="1-based place in line (priority first, then arrival)")
    priority: int
    wait_seconds: float
    ringing_agent: str | None = Field(None, description="the agent whose phone rings for this caller")


class QueueDetail(QueueOut):
    callers: list[WaitingCallerOut]


class QueuePage(Out):
    items: list[QueueOut]
    next: str | None


def _callers(acd: AcdControl, name: str) -> list[WaitingCaller]:
    """Callers of ``name`` in line order."""
    mine = [c for c in acd.waiting.values() if c.queue == name]
    return sorted(mine, key=lambda c: (-c.priority, c.enqueued_at))


def _fields(acd: AcdControl, name: str) -> dict[str, object]:
    now = acd.now()
    callers = _callers(acd, name)
    by_state = dict.fromkeys(STATES, 0)
    for agent_id, status in acd.agents.items():
        cfg = acd.config.agents.get(agent_id)
        if cfg is not None and name in cfg.queues:
            by_state[status.state] = by_state.get(status.state, 0) + 1
    sl = acd.config.queues[name].service_level
    return {
        "name": name,
        "waiting": len(callers),
        "longest_wait_seconds": round(max((now - c.enqueued_at for c in callers), default=0.0), 3),
        "agents": by_state,
        "agents_logged_in": sum(n for state, n in by_state.items() if state != "logged_out"),
        "service_level_target": ServiceLevelTarget(percent=sl.percent, seconds=sl.seconds),
    }


async def _sl_today(req: ApiRequest, name: str) -> float | None:
    kpis = req.services.kpis
    return await kpis.service_level_today(name) if kpis is not None else None


@routes.get("/queues", summary="List queues with live statistics", tags=TAGS, roles=READ, query=PageQuery,
            response=QueuePage)
async def list_queues(req: ApiRequest) -> QueuePage:
    acd = require(req.services.acd, "ACD")
    page, next_link = paginate(list(acd.config.queues), str, req.query, req)
    items = [QueueOut(**_fields(acd, name), service_level_today=await _sl_today(req, name)) for name in page]
    return QueuePage(items=items, next=next_link)


@routes.get("/queues/{name}", summary="One queue: statistics and the callers waiting", tags=TAGS, roles=READ,
            response=QueueDetail, path_params={"name": QueueName}, errors=(404,))
async def get_queue(req: ApiRequest) -> QueueDetail:
    acd = require(req.services.acd, "ACD")
    name = req.path["name"]
    if name not in acd.config.queues:
        raise not_found("queue", name)
    now = acd.now()
    callers = [
        WaitingCallerOut(call_id=c.id, position=i, priority=c.priority,
                         wait_seconds=round(max(0.0, now - c.enqueued_at), 3), ringing_agent=c.assigned)
        for i, c in enumerate(_callers(acd, name), start=1)
    ]
    return QueueDetail(**_fields(acd, name), service_level_today=await _sl_today(req, name), callers=callers)


__all__ = ["QueueDetail", "QueueOut", "routes"]
