"""What the read endpoints show: agents' live state, queue statistics, live calls, a call's history; pagination."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone


from callcore.acd.model import AcdConfig, AgentConfig, QueueConfig
from callcore.acd.service import AcdService
from callcore.api.pagination import PageQuery, decode_cursor, encode_cursor, paginate
from callcore.api.services import AcdControl, ApiServices, ConversationControl
from tests.unit.api.apifakes import CALL1, CALL2, FakeCall, Sink, World, start_api, world

# -- agents ----------------------------------------------------------------------------------------------------


async def test_agents_show_state_times_skills_and_queues():
    w = world()
    w.acd.in_wrap_up("a2", seconds=30)
    w.acd.clock += 12
    api = await start_api(w)
    try:
        status, body, _ = await api.call("GET", "/agents/a2", "supervisor")
    finally:
        await api.client.close()
    assert status == 200
    assert body["state"] == "wrap_up"
    assert body["seconds_in_state"] == 12
    assert body["wrap_up_remaining_seconds"] == 18
    assert (body["name"], body["skills"], body["queues"]) == ("Bob", {"billing": 7}, ["billing", "sales"])
    since = datetime.fromisoformat(body["since"])
    assert abs((datetime.now(timezone.utc) - since).total_seconds() - 12) < 2


async def test_agents_filter_by_state_and_queue(api):
    api.world.acd.login("a1")
    api.world.acd.login("a3", paused=True)
    _, ready, _ = await api.call("GET", "/agents?state=ready")
    _, billing, _ = await api.call("GET", "/agents?queue=billing")
    assert [a["id"] for a in ready["items"]] == ["a1"]
    assert [a["id"] for a in billing["items"]] == ["a2", "a3"]


async def test_pages_follow_next_links_to_the_end_without_repeats():
    many = AcdConfig(skills=[], queues={"q": QueueConfig()},
                     agents={f"agent{n:02}": AgentConfig(endpoint=f"PJSIP/{n}", queues=["q"]) for n in range(7)})
    w = world()
    from tests.unit.api.apifakes import FakeAcd

    w.acd = FakeAcd(many, w.sink)
    api = await start_api(w)
    try:
        seen: list[str] = []
        link: str | None = "/agents?limit=3"
        pages = 0
        while link is not None:
            status, body, _ = await api.call("GET", link)
            assert status == 200
            assert len(body["items"]) <= 3
            seen += [a["id"] for a in body["items"]]
            link = body["next"]
            pages += 1
        assert pages == 3
        assert seen == [f"agent{n:02}" for n in range(7)]
    finally:
        await api.client.close()


def test_a_cursor_survives_items_coming_and_going():
    q = PageQuery(limit=2)
    page, cursor = paginate(["a", "b", "c", "d"], str, q)
    assert page == ["a", "b"]
    assert cursor is not None and decode_cursor(cursor) == "b"
    # "a" left and "bb" arrived meanwhile: the next page starts right after "b"
    page2, _ = paginate(["bb", "c", "d"], str, PageQuery(limit=2, cursor=cursor))
    assert page2 == ["bb", "c"]
    assert paginate(["a"], str, PageQuery(limit=1)) == (["a"], None)
    assert decode_cursor(encode_cursor("x:y")) == "x:y"


# -- queues ----------------------------------------------------------------------------------------------------


async def test_queue_stats_and_callers_in_line():
    w = world()
    w.acd.login("a1")
    w.acd.login("a2", paused=True)
    w.acd.enqueue(uuid.UUID(int=1), "sales", waited=40)
    w.acd.enqueue(uuid.UUID(int=2), "sales", waited=10, priority=5)
    w.acd.enqueue(uuid.UUID(int=3), "sales", waited=70, assigned="a1")
    w.acd.enqueue(uuid.UUID(int=4), "billing", waited=5)
    api = await start_api(w)
    try:
        status, body, _ = await api.call("GET", "/queues/sales", "agent")
        _, listing, _ = await api.call("GET", "/queues?limit=1", "integrator")
    finally:
        await api.client.close()
    assert status == 200
    assert (body["waiting"], body["longest_wait_seconds"]) == (3, 70)
    assert body["agents"] == {"logged_out": 0, "ready": 1, "reserved": 0, "on_call": 0, "wrap_up": 0, "paused": 1}
    assert body["agents_logged_in"] == 2
    assert body["service_level_target"] == {"percent": 80.0, "seconds": 20.0}
    assert [(c["call_id"], c["position"], c["ringing_agent"]) for c in body["callers"]] == [
        (str(uuid.UUID(int=2)), 1, None), (str(uuid.UUID(int=3)), 2, "a1"), (str(uuid.UUID(int=1)), 3, None)]
    assert [q["name"] for q in listing["items"]] == ["billing"]
    assert listing["next"].startswith("/queues?")


# -- calls -----------------------------------------------------------------------------------------------------


async def test_live_calls_show_where_they_are_in_the_acd():
    w = world()
    w.registry.live = [FakeCall(CALL1), FakeCall(CALL2, channel_id="chan-2")]
    w.acd.on_call("a1", CALL1)
    w.acd.enqueue(CALL2, "billing", waited=3)
    api = await start_api(w)
    try:
        status, body, _ = await api.call("GET", "/calls", "integrator")
    finally:
        await api.client.close()
    assert status == 200
    assert [(c["call_id"], c["acd"], c["queue"], c["agent"]) for c in body["items"]] == [
        (str(CALL1), "connected", None, "a1"), (str(CALL2), "queued", "billing", None)]


async def test_a_call_with_its_event_history(api):
    at = datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)
    api.world.store.events[CALL1] = [
        {"event_id": uuid.UUID(int=10), "type": "call_started", "occurred_at": at, "channel_id": "c1",
         "payload": {"did": "1000"}},
        {"event_id": uuid.UUID(int=11), "type": "answered", "occurred_at": at, "channel_id": "c1", "payload": None},
    ]
    status, body, _ = await api.call("GET", f"/calls/{CALL1}", "supervisor")
    assert status == 200
    assert body["live"] is None
    assert body["record"]["variables"] == {"lang": "nl"}
    assert [(e["type"], e["payload"]) for e in body["events"]] == [("call_started", {"did": "1000"}),
                                                                   ("answered", {})]


async def test_a_live_call_not_yet_stored_is_found(api):
    api.world.registry.live = [FakeCall(CALL2)]
    status, body, _ = await api.call("GET", f"/calls/{CALL2}")
    assert status == 200
    assert body["record"] is None and body["live"]["call_id"] == str(CALL2)


# -- the real AcdService behind the API ------------------------------------------------------------------------


def test_acd_service_offers_what_the_protocols_ask():
    instance_attributes = {"agents", "waiting", "config"}
    asked = {m for m in dir(AcdControl) if not m.startswith("_")} - instance_attributes
    assert {m for m in asked if not callable(getattr(AcdService, m, None))} == set()
    conversation = {m for m in dir(ConversationControl) if not m.startswith("_")}
    assert all(callable(getattr(AcdService, m, None)) for m in conversation)


def real_acd() -> AcdService:
    agents = {"a1": AgentConfig(endpoint="PJSIP/a1", queues=["sales"]),
              "a2": AgentConfig(endpoint="PJSIP/a2", queues=["sales"])}
    return AcdService(AcdConfig(skills=[], agents=agents, queues={"sales": QueueConfig()}), Sink())


async def test_agent_commands_drive_the_real_acd_service():
    acd = real_acd()
    w: World = world()
    api = await start_api(w, services=ApiServices(acd=acd, sink=w.sink))  # type: ignore[arg-type]
    try:
        assert (await api.call("POST", "/agents/a1/login", "agent", json={"paused": True}))[1]["state"] == "paused"
        assert (await api.call("POST", "/agents/a1/ready", "agent"))[1]["state"] == "ready"
        status, body, _ = await api.call("POST", "/agents/a1/pause", "agent", json={"reason": "coffee"})
        assert (status, body["state"], body["pause_reason"]) == (200, "paused", "coffee")
        assert (await api.call("POST", "/agents/a1/login", "agent", json={}))[0] == 409
        assert (await api.call("POST", "/agents/a1/logout", "agent"))[1]["state"] == "logged_out"
        assert (await api.call("GET", "/queues/sales", "agent"))[1]["agents"]["logged_out"] == 2
    finally:
        await api.client.close()
        acd.close()
    assert [e.state for e in acd.sink.events] == ["paused", "ready", "paused", "logged_out"]  # type: ignore[attr-defined]


async def test_end_wrap_up_ends_it_early_on_the_real_acd_service():
    from callcore.acd import agent_state as st

    acd = real_acd()
    acd.login("a1")
    for event in (st.Offered(str(CALL1)), st.Answered(str(CALL1)), st.CallEnded(str(CALL1), wrap_up_seconds=60)):
        acd._apply("a1", event)
    api = await start_api(services=ApiServices(acd=acd))  # type: ignore[arg-type]
    try:
        status, body, _ = await api.call("POST", "/agents/a1/wrap-up/end", "agent")
    finally:
        await api.client.close()
        acd.close()
    assert (status, body["state"]) == (200, "ready")
