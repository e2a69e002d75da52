"""GET /events: a WebSocket of live events: topics, roles (agent tokens see their agent and its calls), events
after the subscription only, slow consumers dropped with 1013 without ever blocking emit, shutdown with 1001."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest

from callcore.api.auth import Authenticator
from callcore.api.idempotency import MemoryIdempotencyStore
from callcore.api.live_events import CLOSE_GOING_AWAY, CLOSE_TOO_SLOW, EVENT_HUB, EventHub, TeeSink
from callcore.api.openapi import build_openapi
from callcore.api.server import api_routes, create_app
from callcore.events import AgentEvent, CallEvent, utcnow
from tests.unit.api.apifakes import TOKENS, static_tokens, world

C1, C2, C3 = (uuid.UUID(f"01900000-0000-7000-8000-00000000010{i}") for i in (1, 2, 3))


def call_ev(call: uuid.UUID, type_: str, **data: Any) -> CallEvent:
    return CallEvent(call_id=call, type=type_, at=utcnow(), channel_id="ch-1", data=data)


def agent_ev(agent: str, state: str, call: uuid.UUID | None = None) -> AgentEvent:
    return AgentEvent(agent, state, utcnow(), previous="ready", call_id=call)


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who][0]}"}


class Live:
    def __init__(self, client: TestClient, hub: EventHub) -> None:
        self.client = client
        self.hub = hub

    async def connect(self, who: str = "supervisor", topics: str | None = None) -> aiohttp.ClientWebSocketResponse:
        path = "/events" + (f"?topics={topics}" if topics is not None else "")
        ws = await self.client.ws_connect(path, headers=auth(who))
        hello = await ws.receive_json(timeout=2)
        assert hello["type"] == "subscribed"
        return ws


async def start(hub: EventHub | None) -> Live:
    app = create_app(world().services(), authenticator=Authenticator([static_tokens()]),
                     idempotency=MemoryIdempotencyStore())
    if hub is not None:
        app[EVENT_HUB] = hub
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return Live(client, hub or EventHub())


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    lv = await start(EventHub(heartbeat=0))
    try:
        yield lv
    finally:
        await lv.hub.close()
        await lv.client.close()


async def received(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[dict[str, Any]]:
    return [await ws.receive_json(timeout=2) for _ in range(n)]


async def nothing_more(ws: aiohttp.ClientWebSocketResponse) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await ws.receive(timeout=0.15)


# -- the handshake ---------------------------------------------------------------------------------------------------


async def test_plain_get_is_426_no_token_401_bad_topics_422(live: Live):
    async with live.client.get("/events", headers=auth("admin")) as resp:
        assert resp.status == 426 and (await resp.json())["error"]["code"] == "upgrade_required"
        assert resp.headers["Upgrade"] == "websocket"
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await live.client.ws_connect("/events")
    assert err.value.status == 401
    for bad in ("calls", "call,bogus", ",", ""):
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await live.client.ws_connect(f"/events?topics={bad}", headers=auth("admin"))
        assert err.value.status == 422, bad


async def test_without_a_hub_it_is_503():
    lv = await start(None)
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await lv.client.ws_connect("/events", headers=auth("admin"))
        assert err.value.status == 503
    finally:
        await lv.client.close()


async def test_hello_then_events_emitted_after_subscribing_only(live: Live):
    live.hub.emit(call_ev(C1, "answered"))  # before anyone listens: never sent
    ws = await live.connect("integrator")
    ev = call_ev(C1, "hangup", cause=16, cause_text="Normal Clearing")
    live.hub.emit(ev)
    (msg,) = await received(ws, 1)
    assert msg == {"event_id": str(ev.event_id), "type": "call.hangup", "at": msg["at"], "call_id": str(C1),
                   "channel_id": "ch-1", "data": {"cause": 16, "cause_text": "Normal Clearing"}}
    assert msg["at"].endswith("Z")
    await nothing_more(ws)
    await ws.close()


# -- topics ----------------------------------------------------------------------------------------------------------


async def test_topics_select_events_and_an_event_in_two_topics_comes_once(live: Live):
    wss = {t: await live.connect("supervisor", t) for t in ("call", "agent", "queue", "call,queue")}
    everything = await live.connect("admin")
    events = [agent_ev("a1", "paused"), call_ev(C1, "call_started"), call_ev(C1, "queued", queue="sales"),
              call_ev(C1, "announcement", queue="sales", position=1), call_ev(C1, "connected", agent="a1"),
              agent_ev("a1", "on_call", C1), call_ev(C1, "call_ended")]
    for e in events:
        live.hub.emit(e)
    types = [
        "agent.paused", "call.call_started", "acd.queued", "acd.announcement", "acd.connected", "agent.on_call",
        "call.call_ended"]
    expected = {
        "call": [t for t in types if not t.startswith("agent.")],
        "agent": ["agent.paused", "agent.on_call"],
        "queue": ["acd.queued", "acd.connected"],
        "call,queue": [t for t in types if not t.startswith("agent.")],
    }
    for topic, ws in wss.items():
        assert [m["type"] for m in await received(ws, len(expected[topic]))] == expected[topic], topic
        await nothing_more(ws)
    assert [m["type"] for m in await received(everything, len(types))] == types


# -- roles -----------------------------------------------------------------------------------------------------------


async def test_an_agent_token_sees_its_agent_and_the_calls_it_is_on(live: Live):
    agent = await live.connect("agent")  # a1
    supervisor = await live.connect("supervisor")
    seen_by_a1 = []

    def emit(event: CallEvent | AgentEvent, visible: bool) -> None:
        live.hub.emit(event)
        if visible:
            seen_by_a1.append(str(event.event_id))

    emit(agent_ev("a2", "ready"), False)
    emit(agent_ev("a1", "ready"), True)
    emit(call_ev(C1, "call_started"), False)  # not on it (yet)
    emit(call_ev(C1, "queued", queue="sales"), False)
    emit(call_ev(C1, "offered", agent="a2"), False)
    emit(call_ev(C1, "agent_no_answer", agent="a2"), False)
    emit(call_ev(C1, "offered", agent="a1"), True)  # offered to a1: from now on it sees C1
    emit(agent_ev("a1", "reserved", C1), True)
    emit(call_ev(C2, "call_started"), False)  # someone else's call
    emit(call_ev(C1, "connected", agent="a1"), True)
    emit(call_ev(C1, "answered"), True)
    emit(call_ev(C1, "hangup", cause=16), True)
    emit(call_ev(C1, "call_ended"), True)  # the last one it sees of C1
    emit(call_ev(C1, "variables_set", late=True), False)
    emit(call_ev(C3, "offered", agent="a1"), True)
    emit(call_ev(C3, "agent_no_answer", agent="a1"), True)  # it sees its no-answer, then nothing more of C3
    emit(call_ev(C3, "offered", agent="a2"), False)
    emit(call_ev(C2, "consult_started", agent="a2", to_agent="a1"), True)  # consulted: a1 joins C2
    emit(call_ev(C2, "transferred", kind="attended", from_agent="a2", to_agent="a1"), True)
    emit(agent_ev("a2", "wrap_up", C2), False)
    emit(call_ev(C2, "party_left", agent="a1"), True)
    emit(call_ev(C2, "hangup"), False)
    emit(agent_ev("a1", "paused"), True)

    assert [m["event_id"] for m in await received(agent, len(seen_by_a1))] == seen_by_a1
    await nothing_more(agent)
    assert len(await received(supervisor, 23)) == 23  # supervisors see everything
    await nothing_more(supervisor)


async def test_another_agent_sees_none_of_it(live: Live):
    other = await live.connect("other_agent")  # a2
    live.hub.emit(agent_ev("a1", "ready"))
    live.hub.emit(call_ev(C1, "connected", agent="a1"))
    live.hub.emit(call_ev(C1, "answered"))
    marker = agent_ev("a2", "paused")
    live.hub.emit(marker)
    assert (await received(other, 1))[0]["event_id"] == str(marker.event_id)


def test_the_hub_remembers_a_bounded_number_of_calls():
    hub = EventHub(track_max=3)
    calls = [uuid.uuid4() for _ in range(5)]
    for c in calls:
        hub.emit(call_ev(c, "offered", agent="a1"))
    assert [hub.agents_on(c) for c in calls] == [frozenset()] * 2 + [frozenset({"a1"})] * 3
    hub.emit(call_ev(calls[-1], "call_ended"))
    assert hub.agents_on(calls[-1]) == frozenset()


# -- slow consumers --------------------------------------------------------------------------------------------------


async def test_a_client_that_falls_behind_is_closed_with_1013_and_emit_never_waits():
    lv = await start(EventHub(queue_max=5, heartbeat=0))
    try:
        ws = await lv.connect("admin")
        started = time.perf_counter()
        for i in range(50):  # one burst: the client cannot have read anything in between
            lv.hub.emit(call_ev(C1, "dtmf", digit=str(i % 10)))
        assert time.perf_counter() - started < 0.5
        msg = await ws.receive(timeout=2)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == CLOSE_TOO_SLOW and "too slow" in msg.extra
        assert lv.hub.dropped_slow == 1
        for _ in range(50):
            if lv.hub.subscribers == 0:
                break
            await asyncio.sleep(0.01)
        assert lv.hub.subscribers == 0
    finally:
        await lv.hub.close()
        await lv.client.close()


async def _stuck_client(port: int) -> socket.socket:
    """A WebSocket client with a tiny receive buffer that never reads after the handshake."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    request = ("GET /events?topics=call HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               f"Authorization: Bearer {TOKENS['integrator'][0]}\r\n\r\n")
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), 2)
        assert chunk, "connection closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def test_a_stuck_client_is_dropped_while_a_healthy_one_gets_everything():
    lv = await start(EventHub(queue_max=20, heartbeat=0))
    stuck = await _stuck_client(lv.client.port)  # type: ignore[arg-type]
    healthy = await lv.connect("supervisor", "call")
    got: list[str] = []

    async def read() -> None:
        while True:
            msg = await healthy.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return
            got.append(json.loads(msg.data)["event_id"])

    reader = asyncio.create_task(read())
    sent: list[str] = []
    slowest = 0.0
    try:
        for _ in range(400):
            for _ in range(5):
                ev = call_ev(C1, "variables_set", blob="x" * 32_000)
                t0 = time.perf_counter()
                lv.hub.emit(ev)
                slowest = max(slowest, time.perf_counter() - t0)
                sent.append(str(ev.event_id))
            await asyncio.sleep(0.002)
            if lv.hub.dropped_slow:
                break
        assert lv.hub.dropped_slow == 1, "the stuck client was never dropped"
        for _ in range(300):
            if len(got) >= len(sent):
                break
            await asyncio.sleep(0.01)
        assert got == sent  # the healthy client lost nothing and kept the order
        assert slowest < 0.05  # emit only ever queues (a few µs; generous bound for a loaded machine)
        assert lv.hub.subscribers == 1
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        stuck.close()
        await healthy.close()
        await lv.hub.close()
        await lv.client.close()


# -- lifecycle, limits, sinks, metrics ------------------------------------------------------------------------------


async def test_closing_the_hub_closes_clients_with_1001_and_refuses_new_ones(live: Live):
    ws = await live.connect("admin")
    started = time.perf_counter()
    await live.hub.close()
    assert time.perf_counter() - started < 2
    msg = await ws.receive(timeout=2)
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == CLOSE_GOING_AWAY
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await live.client.ws_connect("/events", headers=auth("admin"))
    assert err.value.status == 503


async def test_subscribers_beyond_the_limit_get_503_and_a_client_leaving_frees_its_place():
    lv = await start(EventHub(max_subscribers=1, heartbeat=0))
    try:
        first = await lv.connect("admin")
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await lv.client.ws_connect("/events", headers=auth("admin"))
        assert err.value.status == 503 and lv.hub.refused == 1
        await first.close()
        for _ in range(100):
            if lv.hub.subscribers == 0:
                break
            await asyncio.sleep(0.01)
        second = await lv.connect("admin")
        await second.close()
    finally:
        await lv.hub.close()
        await lv.client.close()


async def test_a_browser_may_pass_the_token_in_the_query(live: Live):
    ws = await live.client.ws_connect(f"/events?token={TOKENS['supervisor'][0]}")
    assert (await ws.receive_json(timeout=2))["type"] == "subscribed"
    await ws.close()


def test_emit_never_raises():
    hub = EventHub()
    hub.emit(None)  # type: ignore[arg-type]
    hub.emit(call_ev(C1, "variables_set", x=math.nan))
    assert hub.errors == 1  # None; NaN is only encoded when someone listens


async def test_nan_is_not_sent_but_counted(live: Live):
    ws = await live.connect("admin")
    live.hub.emit(call_ev(C1, "variables_set", x=math.nan))
    marker = call_ev(C1, "answered")
    live.hub.emit(marker)
    assert (await received(ws, 1))[0]["event_id"] == str(marker.event_id)
    assert live.hub.errors == 1


def test_tee_sink_feeds_every_sink_even_when_one_fails():
    class Boom:
        def emit(self, event: object) -> None:
            raise RuntimeError("boom")

    class Keep:
        def __init__(self) -> None:
            self.events: list[object] = []

        def emit(self, event: object) -> None:
            self.events.append(event)

    first, last = Keep(), Keep()
    tee = TeeSink(first, Boom(), last)
    ev = call_ev(C1, "answered")
    tee.emit(ev)
    tee.emit(ev)
    assert first.events == last.events == [ev, ev] and tee.errors == 2


async def test_metrics(live: Live):
    ws = await live.connect("admin")
    live.hub.emit(call_ev(C1, "answered"))
    await received(ws, 1)
    registry = CollectorRegistry()
    registry.register(live.hub.metrics_collector())
    text = generate_latest(registry).decode()
    assert "callcore_live_event_subscribers 1.0" in text
    assert "callcore_live_event_messages_total 1.0" in text
    assert 'callcore_live_event_subscribers_dropped_total{reason="too_slow"} 0.0' in text


def test_the_document_describes_the_websocket():
    spec = build_openapi(api_routes().routes)
    op = spec["paths"]["/events"]["get"]
    assert op["x-roles"] == ["admin", "supervisor", "agent", "integrator"]
    assert "WebSocket" in op["description"] and "1013" in op["description"]
    assert {p["name"] for p in op["parameters"]} == {"topics", "token"}
    assert {"401", "403", "422", "426", "503"} <= set(op["responses"])


async def test_a_client_that_vanishes_is_forgotten(live: Live):
    sock = await _stuck_client(live.client.port)  # type: ignore[arg-type]
    for _ in range(100):
        if live.hub.subscribers == 1:
            break
        await asyncio.sleep(0.01)
    assert live.hub.subscribers == 1
    sock.close()  # no close frame: the TCP connection just ends
    live.hub.emit(call_ev(C1, "answered"))
    for _ in range(200):
        if live.hub.subscribers == 0:
            break
        await asyncio.sleep(0.01)
    assert live.hub.subscribers == 0


async def test_the_server_stopping_with_clients_connected_ends_cleanly():
    lv = await start(EventHub(heartbeat=0))
    ws = await lv.connect("admin")
    lv.hub.emit(call_ev(C1, "answered"))
    await received(ws, 1)
    started = time.perf_counter()
    await lv.client.close()  # no hub.close() first: the server cancels the handler
    assert time.perf_counter() - started < 5
    assert lv.hub.subscribers == 0
