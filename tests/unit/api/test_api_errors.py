"""Bad input gets a clear 4xx in the one error shape, never a 5xx."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from callcore.api.server import api_routes
from callcore.api.services import ApiServices
from tests.unit.api.apifakes import CALL1, TOKENS, UNKNOWN_CALL, Api, start_api, world


def assert_error(body: Any, code: str | None = None) -> dict[str, Any]:
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


# -- the HTTP layer ------------------------------------------------------------------------------------------


async def test_unknown_route_is_404_in_the_error_shape(api: Api):
    status, body, _ = await api.call("GET", "/no/such/thing")
    assert status == 404
    assert "GET /no/such/thing" in assert_error(body, "not_found")["message"]


async def test_wrong_method_is_405_with_allow(api: Api):
    status, body, headers = await api.call("DELETE", "/agents/a1")
    assert status == 405
    assert assert_error(body, "method_not_allowed")["details"] == {"allowed": ["GET"]}
    assert headers["Allow"] == "GET"


async def test_body_over_the_limit_is_413(api: Api):
    status, body, _ = await api.call("POST", "/agents/a1/disposition",
                                     json={"call_id": str(CALL1), "disposition": "x", "notes": "n" * 5000})
    assert status == 413
    assert assert_error(body, "payload_too_large")["details"] == {"limit": 4096}


async def test_invalid_json_is_400(api: Api):
    status, body, _ = await api.call("POST", "/agents/a1/pause", data=b'{"reason": ',
                                     headers={"Content-Type": "application/json"})
    assert status == 400
    assert assert_error(body, "invalid_json")["message"].startswith("the body is not valid JSON")


async def test_a_body_that_is_not_json_is_415(api: Api):
    status, body, _ = await api.call("POST", "/agents/a1/pause", data="reason=lunch",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    assert_error(body, "unsupported_media_type")


@pytest.mark.parametrize("payload,loc", [
    ([], ["body"]),
    ("lunch", ["body"]),
    ({"reason": "lunch", "extra": 1}, ["body", "extra"]),
    ({"reason": 5}, ["body", "reason"]),
    ({"reason": ""}, ["body", "reason"]),
    ({"reason": "tab\there"}, ["body", "reason"]),
])
async def test_bad_bodies_are_422_with_the_location(api: Api, payload: Any, loc: list[Any]):
    api.world.acd.login("a1")
    status, body, _ = await api.call("POST", "/agents/a1/pause", json=payload)
    assert status == 422, body
    err = assert_error(body, "validation_error")
    assert err["details"][0]["loc"] == loc
    assert api.world.acd.agents["a1"].state == "ready"


async def test_missing_required_fields_are_all_listed(api: Api):
    status, body, _ = await api.call("POST", "/agents/a1/disposition", json={})
    assert status == 422
    err = assert_error(body, "validation_error")
    assert {tuple(d["loc"]) for d in err["details"]} == {("body", "call_id"), ("body", "disposition")}
    assert "(and 1 more)" in err["message"]


async def test_an_empty_body_is_an_empty_object(api: Api):
    status, body, _ = await api.call("POST", "/agents/a1/login", data=b"")
    assert status == 200 and body["state"] == "ready"


# -- path and query --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path,loc", [
    ("/calls/not-a-uuid", ["path", "call_id"]),
    (f"/calls/{CALL1}/recording/explode", ["path", "operation"]),
])
async def test_bad_path_parameters_are_422(api: Api, path: str, loc: list[str]):
    api.world.acd.on_call("a1", CALL1)
    method = "GET" if path.count("/") == 2 else "POST"
    status, body, _ = await api.call(method, path)
    assert status == 422
    assert assert_error(body, "validation_error")["details"][0]["loc"][:2] == loc


@pytest.mark.parametrize("method,path", [
    ("GET", "/agents/nobody"), ("POST", "/agents/nobody/login"), ("PUT", "/agents/nobody/skills"),
    ("GET", "/queues/nowhere"), ("GET", f"/calls/{UNKNOWN_CALL}"),
])
async def test_unknown_resources_are_404(api: Api, method: str, path: str):
    body_in = {"skills": {}} if method == "PUT" else None
    status, body, _ = await api.call(method, path, json=body_in)
    assert status == 404, body
    assert_error(body, "not_found")


@pytest.mark.parametrize("query,status,code", [
    ("limit=0", 422, "validation_error"),
    ("limit=501", 422, "validation_error"),
    ("limit=abc", 422, "validation_error"),
    ("limit=2&limit=3", 422, "validation_error"),
    ("limti=3", 422, "validation_error"),
    ("state=asleep", 422, "validation_error"),
    ("cursor=%%%", 400, "invalid_cursor"),
    ("cursor=bm9wZQ", 400, "invalid_cursor"),
])
async def test_bad_query_parameters(api: Api, query: str, status: int, code: str):
    got, body, _ = await api.call("GET", f"/agents?{query}")
    assert got == status, body
    assert_error(body, code)


# -- state -------------------------------------------------------------------------------------------------------


async def test_an_invalid_transition_is_409_with_the_reason(api: Api):
    await api.call("POST", "/agents/a1/login", json={})
    status, body, _ = await api.call("POST", "/agents/a1/login", json={})
    assert status == 409
    err = assert_error(body, "invalid_transition")
    assert err["message"] == "agent 'a1' is ready: cannot log in: already logged in"
    assert err["details"] == {"agent": "a1", "state": "ready", "action": "log in", "reason": "already logged in"}


@pytest.mark.parametrize("path,body", [
    ("/agents/a1/pause", {"reason": "lunch"}),  # logged out
    ("/agents/a1/ready", None),
    ("/agents/a1/logout", None),
    ("/agents/a1/wrap-up/end", None),
])
async def test_commands_the_state_does_not_allow_are_409(api: Api, path: str, body: Any):
    status, out, _ = await api.call("POST", path, json=body)
    assert status == 409
    assert_error(out, "invalid_transition")


async def test_end_wrap_up_of_a_ready_agent_is_409(api: Api):
    api.world.acd.login("a1")
    status, body, _ = await api.call("POST", "/agents/a1/wrap-up/end")
    assert status == 409
    assert "not in wrap-up" in assert_error(body, "invalid_transition")["message"]


async def test_logout_during_a_call_is_pending(api: Api):
    api.world.acd.on_call("a1", CALL1)
    status, body, _ = await api.call("POST", "/agents/a1/logout")
    assert status == 200
    assert (body["state"], body["logout_pending"]) == ("on_call", True)


@pytest.mark.parametrize("skills,code", [
    ({"gardening": 3}, "unknown_skill"),
    ({"sales": 0}, "validation_error"),
    ({"sales": 11}, "validation_error"),
    ({"sales": "5"}, "validation_error"),
    ({"sales": 5.5}, "validation_error"),
    ({"": 5}, "validation_error"),
])
async def test_skills_must_be_declared_with_levels_1_to_10(api: Api, skills: dict[str, Any], code: str):
    status, body, _ = await api.call("PUT", "/agents/a1/skills", "supervisor", json={"skills": skills})
    assert status == 422, body
    assert_error(body, code)
    assert api.world.acd.config.agents["a1"].skills == {"sales": 5}


async def test_skills_are_replaced(api: Api):
    status, body, _ = await api.call("PUT", "/agents/a1/skills", "supervisor",
                                     json={"skills": {"billing": 10, "language:nl": 1}})
    assert status == 200
    assert body["skills"] == {"billing": 10, "language:nl": 1}


async def test_disposition_of_an_unknown_call_is_404(api: Api):
    status, body, _ = await api.call("POST", "/agents/a1/disposition", "agent",
                                     json={"call_id": str(UNKNOWN_CALL), "disposition": "sale"})
    assert status == 404
    assert_error(body, "not_found")
    assert api.world.sink.events == []


async def test_disposition_is_an_event_on_the_call(api: Api):
    status, body, _ = await api.call("POST", "/agents/a1/disposition", "agent",
                                     json={"call_id": str(CALL1), "disposition": "sale", "notes": "2 lines"})
    assert status == 201
    [event] = api.world.sink.events
    assert (event.call_id, event.type) == (CALL1, "disposition")
    assert event.data == {"agent": "a1", "disposition": "sale", "notes": "2 lines", "by": "agent"}
    assert body["event_id"] == str(event.event_id)


async def test_a_refused_call_action_is_409(api: Api):
    api.world.acd.on_call("a1", CALL1)
    api.world.conversations.refuse = "no consultation to complete"
    status, body, _ = await api.call("POST", f"/calls/{CALL1}/transfer/complete", "agent")
    assert status == 409
    assert assert_error(body, "rejected")["message"] == "no consultation to complete"


async def test_a_call_without_an_agent_cannot_be_transferred(api: Api):
    status, body, _ = await api.call("POST", f"/calls/{CALL1}/transfer", json={"mode": "blind", "queue": "sales"})
    assert status == 409
    assert_error(body, "not_connected")


@pytest.mark.parametrize("payload", [
    {"mode": "blind"},
    {"mode": "blind", "queue": "sales", "agent": "a2"},
    {"mode": "attended", "queue": "sales"},
    {"mode": "sideways", "agent": "a2"},
    {"mode": "blind", "number": "06-12"},
])
async def test_transfer_bodies_are_checked(api: Api, payload: dict[str, Any]):
    api.world.acd.on_call("a1", CALL1)
    status, body, _ = await api.call("POST", f"/calls/{CALL1}/transfer", json=payload)
    assert status == 422, body
    assert_error(body, "validation_error")


async def test_attended_transfer_consults(api: Api):
    api.world.acd.on_call("a1", CALL1)
    status, body, _ = await api.call("POST", f"/calls/{CALL1}/transfer", "agent",
                                     json={"mode": "attended", "agent": "a2"})
    assert status == 200
    assert api.world.conversations.requests == [("consult", "a1", "a2", None)]


@pytest.mark.parametrize("payload", [
    {"number": "0612345678"},
    {"number": "0612345678", "agent_id": "a1", "endpoint": "PJSIP/x"},
    {"number": "12;drop", "agent_id": "a1"},
    {"number": "0612345678", "endpoint": "PJSIP/x&PJSIP/y"},
    {"number": "0612345678", "agent_id": "a1", "timeout": 0},
])
async def test_originate_bodies_are_checked(api: Api, payload: dict[str, Any]):
    status, body, _ = await api.call("POST", "/calls", json=payload)
    assert status == 422, body


async def test_hangup_of_an_unknown_call_is_404(api: Api):
    status, body, _ = await api.call("POST", f"/calls/{UNKNOWN_CALL}/hangup", json={})
    assert status == 404
    assert_error(body, "not_found")


# -- services missing or failing -----------------------------------------------------------------------------------


async def test_services_not_wired_are_503_or_501():
    api = await start_api(services=ApiServices())
    try:
        assert (await api.call("GET", "/agents"))[0] == 503
        assert (await api.call("POST", "/calls", json={"number": "0612345678", "agent_id": "a1"}))[0] == 501
    finally:
        await api.client.close()


async def test_an_unexpected_exception_is_a_logged_500_in_the_error_shape(api: Api, capsys):
    def broken(agent_id: str, *, paused: bool = False) -> None:
        raise RuntimeError("boom")

    api.world.acd.login = broken  # type: ignore[method-assign]
    status, body, _ = await api.call("POST", "/agents/a1/login", json={})
    assert status == 500
    err = assert_error(body, "internal_error")
    assert "boom" not in err["message"]
    assert re.fullmatch(r"[0-9a-f]{32}", err["details"]["request_id"])
    assert err["details"]["request_id"] in capsys.readouterr().out


# -- authentication headers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Basic YWRtaW46eA==", "Bearer", "Bearer ", "Bearer cc_wrong", "Token x",
                                    "Bearer " + "x" * 600])
async def test_bad_authorization_headers_are_401(api: Api, header: str):
    status, body, _ = await api.call("GET", "/agents", None, headers={"Authorization": header})
    assert status == 401
    assert_error(body, "unauthorized")


async def test_the_bearer_scheme_is_case_insensitive(api: Api):
    status, _, _ = await api.call("GET", "/agents", None, headers={"Authorization": f"bearer {TOKENS['admin'][0]}"})
    assert status == 200


# -- never a 5xx for bad input --------------------------------------------------------------------------------------

GARBAGE_BODIES: list[Any] = [None, {}, [], [1, 2], "text", 0, -1, 1e308, True, {"": None},
                             {"a": {"b": {"c": []}}}, {"reason": None, "paused": "yes"},
                             {"skills": {"sales": 10 ** 30}}, {"call_id": "x" * 100, "disposition": "\u0000"},
                             {"mode": None, "number": 5}, {"number": "1" * 1000, "agent_id": ["a1"]},
                             {"skills": []}, {"skills": {"sales": None}}, {"variables": {"a": 1}}]
GARBAGE_PATH_VALUES = ["a1", "%00", "..", "x" * 150, "🙂", str(CALL1), "-1", " ", "start"]


def _concrete(template: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value.replace("%", "%25") if value != "%00" else value, template)


async def test_garbage_never_gets_a_5xx():
    w = world()
    w.acd.on_call("a1", CALL1)
    api = await start_api(w, ready_checks={"x": lambda: True})
    seen: list[tuple[str, str, int]] = []
    try:
        for route in api_routes():
            for value, payload in itertools.product(GARBAGE_PATH_VALUES, GARBAGE_BODIES):
                path = _concrete(route.path, value)
                status, body, _ = await api.call(route.method, path, json=payload)
                seen.append((route.method, path, status))
                assert status < 500 or status in (501, 503) and body["error"]["code"] != "internal_error", \
                    (route.method, path, payload, status, body)
            for raw in (b"{", b"\xff\xfe", b"[" * 5000, b'{"a":' * 100 + b"1" + b"}" * 100):
                status, body, _ = await api.call(route.method, _concrete(route.path, "a1"), data=raw,
                                                 headers={"Content-Type": "application/json"})
                assert status < 500 or status == 501, (route.method, raw[:10], status, body)
    finally:
        await api.client.close()
    assert len(seen) == len(list(api_routes())) * len(GARBAGE_PATH_VALUES) * len(GARBAGE_BODIES)


class _Down:
    """A store whose database is away."""

    async def lookup(self, token_hash: str) -> None:
        raise ConnectionRefusedError("database away")

    async def claim(self, *args: Any) -> None:
        raise ConnectionRefusedError("database away")


async def test_an_unreachable_token_store_is_503_but_config_tokens_still_work():
    from tests.unit.api.apifakes import static_tokens

    api = await start_api(stores=[static_tokens(), _Down()])
    try:
        assert (await api.call("GET", "/agents", "admin"))[0] == 200
        status, body, _ = await api.call("GET", "/agents", None, headers={"Authorization": "Bearer cc_unknown"})
    finally:
        await api.client.close()
    assert status == 503
    assert_error(body, "service_unavailable")


async def test_an_unreachable_idempotency_store_is_503_and_nothing_runs():
    api = await start_api(idem=_Down())  # type: ignore[arg-type]
    try:
        status, body, _ = await api.call("POST", "/agents/a1/login", json={}, headers={"Idempotency-Key": "k"})
        assert status == 503
        assert_error(body, "service_unavailable")
        assert api.world.acd.agents["a1"].state == "logged_out"
    finally:
        await api.client.close()
