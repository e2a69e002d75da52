"""``GET /status``: what ``callcore status`` shows (Asterisk nodes, live calls, agents by state, the event writer,
the config version), for supervisors and admins.

The app registers where the status comes from before the server starts::

    api.app[STATUS_SOURCE] = lambda: build_status(app)     # callcore.ops.status.build_status

Without one (tests, an app that did not wire it) the status is built from the API's services alone: agents and
live calls, the rest null.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import Field

from callcore.api.auth import Role
from callcore.api.common import Out
from callcore.api.routing import ApiRequest, RouteTable

STATUS_SOURCE = web.AppKey("status_source", Callable[[], dict])  # type: ignore[type-abstract]

routes = RouteTable()
ROLES = (Role.supervisor,)  # admins through the grant; agents and integrators may not
TAGS = ("health",)


class NodeStatus(Out):
    node: str = Field(description="the Asterisk node (host:port of its ARI)")
    url: str | None
    connected: bool | None = Field(description="the ARI event stream is connected; null: unknown")
    reconnects: int | None
    events: int | None = Field(description="ARI events received since start")


class WriterStatus(Out):
    backlog: int | None = Field(description="events accepted, not yet in PostgreSQL")
    written: int | None
    dropped: int | None = Field(description="events refused because the buffer was full (lost)")
    rejected: int | None = Field(description="events PostgreSQL refused for their content")
    retries: int | None
    last_commit_lag_seconds: float | None
    last_error: str | None


class StatusOut(Out):
    pid: int
    version: str = Field(description="callcore's version")
    state: str = Field(description="running, draining (SIGTERM: live calls finish), stopping or stopped")
    started_at: datetime | None
    updated_at: datetime
    config_version: str | None = Field(description="fingerprint of the config file in use (changes on reload)")
    asterisk: list[NodeStatus]
    live_calls: int | None
    agents: dict[str, int] = Field(description="agents by state, every state listed")
    event_writer: WriterStatus | None
    api_url: str | None


@routes.get("/status", summary="The running callcore: Asterisk nodes, live calls, agents, event writer, config",
            tags=TAGS, roles=ROLES, response=StatusOut,
            description="What `callcore status` prints. The same document is written to `state_dir/status.json` "
                        "every few seconds.")
async def get_status(req: ApiRequest) -> StatusOut:
    source = req.request.app.get(STATUS_SOURCE)
    if source is not None:
        data: dict[str, Any] = source()
    else:
        from callcore.ops.status import status_from_services

        data = status_from_services(req.services)
    return StatusOut.model_validate(data)


__all__ = ["STATUS_SOURCE", "StatusOut", "routes"]
