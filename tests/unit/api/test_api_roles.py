"""Every endpoint × every role: allowed roles succeed, the others get 403, no token gets 401; an agent token acting
on another agent (or another agent's call) gets 403."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from callcore.api.server import api_routes
from tests.unit.api.apifakes import CALL1, PRINCIPALS, Api, World, start_api

ALL_BUT_AGENTS = {"admin", "supervisor", "integrator"}
SELF = {"admin", "supervisor", "agent", "integrator"}  # agent: a1's own token; other_agent (a2) is refused
EVERYONE = set(PRINCIPALS)
SUPERVISORS = {"admin", "supervisor"}


def nothing(w: World) -> None:
    pass


def logged_in(w: World) -> None:
    w.acd.login("a1")


def paused(w: World) -> None:
    w.acd.login("a1", paused=True)


def wrap_up(w: World) -> None:
    w.acd.in_wrap_up("a1")


def talking(w: World) -> None:
    w.acd.on_call("a1", CALL1)


@dataclass(frozen=True)
class Case:
    method: str
    template: str
    path: str
    allowed: set[str]
    status: int = 200
    body: Any = None
    setup: Callable[[World], None] = nothing

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


C = f"/calls/{CALL1}"
CASES = [
    Case("GET", "/agents", "/agents", ALL_BUT_AGENTS),
    Case("GET", "/agents/{agent_id}", "/agents/a1", SELF),
    Case("POST", "/agents/{agent_id}/login", "/agents/a1/login", SELF, body={}),
    Case("POST", "/agents/{agent_id}/logout", "/agents/a1/logout", SELF, setup=logged_in),
    Case("POST", "/agents/{agent_id}/ready", "/agents/a1/ready", SELF, setup=paused),
    Case("POST", "/agents/{agent_id}/pause", "/agents/a1/pause", SELF, body={"reason": "lunch"}, setup=logged_in),
    Case("POST", "/agents/{agent_id}/wrap-up/end", "/agents/a1/wrap-up/end", SELF, setup=wrap_up),
    Case("PUT", "/agents/{agent_id}/skills", "/agents/a1/skills", SUPERVISORS, body={"skills": {"sales": 7}}),
    Case("POST", "/agents/{agent_id}/disposition", "/agents/a1/disposition", SELF, 201,
         {"call_id": str(CALL1), "disposition": "sale", "notes": "2 lines"}),
    Case("GET", "/queues", "/queues", EVERYONE),
    Case("GET", "/queues/{name}", "/queues/sales", EVERYONE),
    Case("GET", "/calls", "/calls", ALL_BUT_AGENTS),
    Case("GET", "/calls/{call_id}", C, ALL_BUT_AGENTS),
    Case("POST", "/calls", "/calls", SELF, 201, {"number": "0612345678", "agent_id": "a1"}),
    Case("POST", "/calls/{call_id}/hangup", f"{C}/hangup", SELF, body={}, setup=talking),
    Case("POST", "/calls/{call_id}/transfer", f"{C}/transfer", SELF, body={"mode": "blind", "queue": "billing"},
         setup=talking),
    Case("POST", "/calls/{call_id}/transfer/complete", f"{C}/transfer/complete", SELF, setup=talking),
    Case("POST", "/calls/{call_id}/transfer/cancel", f"{C}/transfer/cancel", SELF, setup=talking),
    Case("POST", "/calls/{call_id}/conference", f"{C}/conference", SELF, setup=talking),
    Case("POST", "/calls/{call_id}/recording/{operation}", f"{C}/recording/start", SELF, setup=talking),
    Case("POST", "/calls/{call_id}/supervise", f"{C}/supervise", SUPERVISORS,
         body={"mode": "listen", "endpoint": "PJSIP/sup01"}, setup=talking),
    Case("POST", "/calls/{call_id}/supervise/{session_id}/stop", f"{C}/supervise/s1/stop", SUPERVISORS,
         setup=talking),
    Case("GET", "/events", "/events", EVERYONE, 426),  # a plain GET, not a WebSocket upgrade
    Case("GET", "/status", "/status", SUPERVISORS),
    Case("GET", "/config", "/config", {"admin"}, 501),  # not wired in the fake world: the role check comes first
    Case("POST", "/config/validate", "/config/validate", {"admin"}, 501, {"yaml": "a: 1"}),
    Case("POST", "/config/dry-run", "/config/dry-run", {"admin"}, 501, {"yaml": "a: 1"}),
    Case("POST", "/config/reload", "/config/reload", {"admin"}, 501, {}),
]
PUBLIC = [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/api"),
          ("GET", "/wallboard")]


def test_the_matrix_covers_every_route():
    from tests.unit.api.test_api_campaigns import CASES as OUTBOUND_CASES  # campaigns, DNC, callbacks
    from tests.unit.api.test_api_kpis import KPI_CASES  # the KPI routes' role checks run in their own file

    declared = {(r.method, r.path) for r in api_routes() if r.roles}
    public = {(r.method, r.path) for r in api_routes() if not r.roles}
    covered = {(c.method, c.template) for c in CASES} | {(m, t) for m, t, _ in KPI_CASES}
    covered |= {(c.method, c.template) for c in OUTBOUND_CASES}
    assert covered == declared
    assert set(PUBLIC) == public


async def _run(case: Case, who: str | None) -> tuple[int, Any, Api]:
    api = await start_api()
    case.setup(api.world)
    try:
        status, body, _ = await api.call(case.method, case.path, who, json=case.body)
    finally:
        await api.client.close()
    return status, body, api


@pytest.mark.parametrize("who", PRINCIPALS)
@pytest.mark.parametrize("case", CASES, ids=str)
async def test_each_role_is_allowed_or_forbidden(case: Case, who: str):
    status, body, _ = await _run(case, who)
    if who in case.allowed:
        assert status == case.status, body
    else:
        assert status == 403, body
        assert body["error"]["code"] == "forbidden"


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_no_token_is_401_with_a_challenge(case: Case):
    api = await start_api()
    try:
        status, body, headers = await api.call(case.method, case.path, None, json=case.body)
    finally:
        await api.client.close()
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method,path", PUBLIC)
async def test_public_endpoints_need_no_token(method: str, path: str):
    api = await start_api(ready_checks={"config": lambda: True})
    try:
        status, _, _ = await api.call(method, path, None)
    finally:
        await api.client.close()
    assert status == 200


async def test_agent_token_on_another_agent_is_403_and_changes_nothing(api: Api):
    status, body, _ = await api.call("POST", "/agents/a2/login", "agent", json={})
    assert status == 403
    assert body["error"]["details"] == {"role": "agent", "agent": "a1", "requested_agent": "a2"}
    assert api.world.acd.agents["a2"].state == "logged_out"


async def test_agent_token_on_another_agents_call_is_403(api: Api):
    api.world.acd.on_call("a2", CALL1)
    status, body, _ = await api.call("POST", f"/calls/{CALL1}/transfer", "agent",
                                     json={"mode": "blind", "queue": "billing"})
    assert status == 403
    assert "not on call" in body["error"]["message"]
    assert api.world.conversations.requests == []


async def test_agent_token_cannot_originate_for_another_agent_or_an_endpoint(api: Api):
    for body in ({"number": "0612345678", "agent_id": "a2"}, {"number": "0612345678", "endpoint": "PJSIP/x"}):
        status, out, _ = await api.call("POST", "/calls", "agent", json=body)
        assert status == 403, out
    assert api.world.actions.originated == []


async def test_supervisor_acts_on_whoever_is_on_the_call(api: Api):
    api.world.acd.on_call("a2", CALL1)
    status, body, _ = await api.call("POST", f"/calls/{CALL1}/recording/pause", "supervisor")
    assert status == 200
    assert body == {"call_id": str(CALL1), "action": "recording:pause", "agent": "a2", "result": {"done": "recording"}}
    assert api.world.conversations.requests == [("recording", "a2", "pause")]
