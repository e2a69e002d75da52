"""Live events: ``GET /events`` (a WebSocket) streams call, agent and queue events as they are emitted.

:class:`EventHub` is an :class:`~callcore.events.EventSink`; the app sends every event to the event writer *and*
the hub with a :class:`TeeSink`. ``emit`` never blocks and never raises: each subscriber has a bounded queue of
encoded messages; a subscriber whose queue is full (a client that does not read fast enough) is dropped: its
socket is closed with code 1013 (try again later) and a reason, and it is counted. Nothing else waits for it.

Topics (``?topics=call,agent,queue``, default all): ``call`` every call event (``call.*`` and ``acd.*``), ``agent``
agents' state changes (``agent.*``), ``queue`` the ACD's queue events (queued, offered, agent_no_answer, connected,
abandoned, overflow). An event is sent once even when it is in two subscribed topics. Messages are the JSON bodies
of :mod:`callcore.webhooks.payload`, preceded by one ``{"type": "subscribed", ...}`` message: every event emitted
after the subscription is delivered (nothing emitted before it, no replay: fetch the state from the REST API).

Who sees what: admin, supervisor and integrator tokens see every event. An agent token sees its own agent's events
and the events of the calls its agent is on: offered to it, connected to it, consulted or transferred to it, until
the call ends or the agent leaves it (no answer, transferred away, left the conversation). The hub follows that
from the events themselves, so it needs nothing else.

Wiring (composition root)::

    hub = EventHub()
    sink = TeeSink(writer, hub)          # to every service instead of the writer
    api.app[EVENT_HUB] = hub             # before api.start()
    ...
    await hub.close()                    # before api.stop(): clients get 1001
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Iterable
from typing import Any

import structlog
from aiohttp import WSCloseCode, web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field, field_validator

from callcore.api.auth import Role
from callcore.api.errors import ApiError
from callcore.api.routing import ApiRequest, RouteTable
from callcore.events import AgentEvent, CallEvent, EventSink
from callcore.webhooks.payload import QUEUE_TYPES, encode, event_body

log = structlog.get_logger("callcore.api")

TOPICS = ("call", "agent", "queue")
CLOSE_TOO_SLOW = int(WSCloseCode.TRY_AGAIN_LATER)  # 1013
CLOSE_GOING_AWAY = int(WSCloseCode.GOING_AWAY)  # 1001
CLOSE_TIMEOUT = 2.0  # seconds a close handshake may take before the connection is cut


class TeeSink:
    """An EventSink that hands each event to several sinks, in order (persist first: ``TeeSink(writer, hub)``).
    A sink that raises (it should not) is logged, at most once a second, and the others still get the event."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = sinks
        self.errors = 0
        self._logged_at = 0.0

    def emit(self, event: CallEvent | AgentEvent) -> None:
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception:  # noqa: BLE001 - one broken sink must not starve the others
                self.errors += 1
                now = time.monotonic()
                if now - self._logged_at >= 1.0:
                    self._logged_at = now
                    log.exception("event sink failed", sink=type(sink).__name__, errors=self.errors)


class Subscription:
    """One client: what it wants, what it may see, and its bounded queue of encoded messages."""

    def __init__(self, topics: frozenset[str], agent_id: str | None, limit: int, name: str = "") -> None:
        self.topics = topics
        self.agent_id = agent_id  # None: every event (roles other than agent)
        self.limit = limit
        self.name = name
        self.pending: deque[str] = deque()
        self.wake = asyncio.Event()
        self.ended: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self.sent = 0

    def push(self, text: str) -> bool:
        if len(self.pending) >= self.limit:
            return False
        self.pending.append(text)
        self.wake.set()
        return True

    def take(self) -> list[str]:
        items = list(self.pending)
        self.pending.clear()
        self.wake.clear()
        return items

    def end(self, code: int, reason: str) -> None:
        self.pending.clear()
        if not self.ended.done():
            self.ended.set_result((code, reason))


class HubUnavailable(Exception):
    """The hub refuses a subscription (closed, or too many subscribers)."""


class EventHub:
    """Fans events out to WebSocket subscribers. ``queue_max``: messages a subscriber may have waiting before it
    is dropped; ``max_subscribers``: more are refused (503); ``track_max``: calls whose agents are remembered for
    agent tokens (the oldest are forgotten beyond it, e.g. calls whose end was never seen)."""

    def __init__(self, *, queue_max: int = 1000, max_subscribers: int = 200, track_max: int = 100_000,
                 heartbeat: float = 30.0) -> None:
        if queue_max < 1 or max_subscribers < 1 or track_max < 1:
            raise ValueError("queue_max, max_subscribers and track_max must be positive")
        self.queue_max = queue_max
        self.max_subscribers = max_subscribers
        self.track_max = track_max
        self.heartbeat = heartbeat
        self._subs: set[Subscription] = set()
        self._agents_on: dict[uuid.UUID, set[str]] = {}  # call -> agents that may see it
        self._closed = False
        self._empty: asyncio.Event | None = None
        self.messages = 0  # messages queued to subscribers
        self.dropped_slow = 0  # subscribers dropped for not keeping up
        self.refused = 0  # subscriptions refused
        self.errors = 0
        self._error_logged_at = 0.0

    # ---- EventSink ---------------------------------------------------------------------------------------------

    def emit(self, event: CallEvent | AgentEvent) -> None:
        """Queue ``event`` for every subscriber that may see it. Never blocks, never raises."""
        try:
            self._track(event, before=True)
            if self._subs:
                self._fan_out(event)
            self._track(event, before=False)
        except Exception:  # noqa: BLE001 - a sink never raises into the service that emits
            self.errors += 1
            now = time.monotonic()
            if now - self._error_logged_at >= 1.0:
                self._error_logged_at = now
                log.exception("live events: emit failed", errors=self.errors,
                              event_id=str(getattr(event, "event_id", "")))

    def _fan_out(self, event: CallEvent | AgentEvent) -> None:
        text: str | None = None
        for sub in list(self._subs):
            if not self.visible(sub, event):
                continue
            if text is None:
                text = encode(event_body(event))
            if sub.push(text):
                self.messages += 1
            else:
                self._drop_slow(sub)

    def visible(self, sub: Subscription, event: CallEvent | AgentEvent) -> bool:
        if isinstance(event, AgentEvent):
            return "agent" in sub.topics and (sub.agent_id is None or event.agent_id == sub.agent_id)
        if not ("call" in sub.topics or ("queue" in sub.topics and event.type in QUEUE_TYPES)):
            return False
        return sub.agent_id is None or sub.agent_id in self._agents_on.get(event.call_id, ())

    # ---- who is on which call (for agent tokens) ---------------------------------------------------------------

    def _track(self, event: CallEvent | AgentEvent, *, before: bool) -> None:
        """Before delivery, an event that brings an agent onto a call lets that agent see it; after delivery, one
        that takes it away (or ends the call) applies, so the agent still sees that last event."""
        if isinstance(event, AgentEvent):
            if before and event.call_id is not None and event.state in ("reserved", "on_call"):
                self._join(event.call_id, event.agent_id)
            return
        data, t = event.data or {}, event.type
        if before:
            if t in ("offered", "connected"):
                self._join(event.call_id, data.get("agent"))
            elif t == "consult_started" or t == "transferred":
                self._join(event.call_id, data.get("to_agent"))
            elif t == "conversation_resumed":
                for agent in data.get("agents") or ():
                    self._join(event.call_id, agent)
        elif t == "call_ended":
            self._agents_on.pop(event.call_id, None)
        elif t in ("agent_no_answer", "party_left"):
            self._leave(event.call_id, data.get("agent"))
        elif t == "transferred":
            self._leave(event.call_id, data.get("from_agent"))

    def _join(self, call_id: uuid.UUID, agent: Any) -> None:
        if not isinstance(agent, str) or not agent:
            return
        agents = self._agents_on.get(call_id)
        if agents is None:
            if len(self._agents_on) >= self.track_max:
                self._agents_on.pop(next(iter(self._agents_on)))
            agents = self._agents_on[call_id] = set()
        agents.add(agent)

    def _leave(self, call_id: uuid.UUID, agent: Any) -> None:
        agents = self._agents_on.get(call_id)
        if agents is not None and isinstance(agent, str):
            agents.discard(agent)

    def agents_on(self, call_id: uuid.UUID) -> frozenset[str]:
        return frozenset(self._agents_on.get(call_id, ()))

    # ---- subscribers -------------------------------------------------------------------------------------------

    def subscribe(self, topics: Iterable[str], *, agent_id: str | None = None, name: str = "") -> Subscription:
        if self._closed:
            self.refused += 1
            raise HubUnavailable("callcore is shutting down")
        if len(self._subs) >= self.max_subscribers:
            self.refused += 1
            raise HubUnavailable(f"too many live event subscribers (at most {self.max_subscribers})")
        sub = Subscription(frozenset(topics), agent_id, self.queue_max, name)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        sub.end(int(WSCloseCode.OK), "")
        if not self._subs and self._empty is not None:
            self._empty.set()

    def _drop_slow(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        self.dropped_slow += 1
        log.warning("live events: subscriber too slow, dropped", subscriber=sub.name, queue_max=sub.limit)
        sub.end(CLOSE_TOO_SLOW, f"too slow: more than {sub.limit} events waiting; reconnect")

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    async def close(self, timeout: float = CLOSE_TIMEOUT + 1) -> None:
        """Refuse new subscribers, close the current ones (1001) and wait (bounded) until they are gone."""
        self._closed = True
        self._empty = asyncio.Event()
        subs = list(self._subs)
        for sub in subs:
            sub.end(CLOSE_GOING_AWAY, "callcore is shutting down")
        if self._subs:
            try:
                await asyncio.wait_for(self._empty.wait(), timeout)
            except TimeoutError:
                log.warning("live event subscribers still connected at shutdown", subscribers=len(self._subs))

    def metrics_collector(self) -> Collector:
        """A Prometheus collector (``registry.register(hub.metrics_collector())``)."""
        return LiveEventsCollector(self)


class LiveEventsCollector(Collector):
    """``callcore_live_event_subscribers``, ``callcore_live_event_messages_total``,
    ``callcore_live_event_subscribers_dropped_total{reason}``."""

    def __init__(self, hub: EventHub) -> None:
        self.hub = hub

    def collect(self) -> Iterable[Any]:
        subscribers = GaugeMetricFamily("callcore_live_event_subscribers", "Clients connected to /events")
        subscribers.add_metric([], self.hub.subscribers)
        messages = CounterMetricFamily("callcore_live_event_messages", "Events queued to /events clients")
        messages.add_metric([], self.hub.messages)
        dropped = CounterMetricFamily("callcore_live_event_subscribers_dropped",
                                      "Clients of /events refused or dropped", labels=["reason"])
        dropped.add_metric(["too_slow"], self.hub.dropped_slow)
        dropped.add_metric(["refused"], self.hub.refused)
        return [subscribers, messages, dropped]


EVENT_HUB = web.AppKey("event_hub", EventHub)

# ---- the route ---------------------------------------------------------------------------------------------------

routes = RouteTable()


class EventsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topics: str | None = Field(None, max_length=100, description="comma-separated topics: call, agent, queue "
                                                                 "(default: all three)")
    token: str | None = Field(None, max_length=512, description="the bearer token, for browsers (which cannot set "
                                                                "headers on a WebSocket); prefer the Authorization "
                                                                "header: URLs end up in logs")

    @field_validator("topics")
    @classmethod
    def _topics(cls, v: str | None) -> str | None:
        if v is None:
            return None
        chosen = {t.strip() for t in v.split(",") if t.strip()}
        unknown = sorted(chosen - set(TOPICS))
        if unknown:
            raise ValueError(f"unknown topic(s) {', '.join(unknown)}: use call, agent, queue")
        if not chosen:
            raise ValueError("name at least one topic: call, agent, queue")
        return ",".join(t for t in TOPICS if t in chosen)


DESCRIPTION = """\
A **WebSocket** (`Upgrade: websocket`; a plain GET gets 426). The server sends JSON text messages: first
`{"type": "subscribed", "topics": [...], "agent_id": ..., "queue_max": N}`, then one message per event emitted from
then on, in emit order, shaped like a webhook body: `{"event_id", "type", "at", "call_id" | "agent_id", "data"}` with
`type` `call.*`, `acd.*` or `agent.*` (docs/webhooks.md). Nothing is replayed. Messages from the client are ignored.

Topics: `call` (every call event), `agent` (agent state changes), `queue` (acd.queued, offered, agent_no_answer,
connected, abandoned, overflow). Admin, supervisor and integrator tokens see everything; an agent token sees its own
agent's events and those of the calls it is on.

A client that falls more than `queue_max` messages behind is disconnected with close code 1013 and a reason; at
shutdown clients get 1001. Browsers, which cannot send an Authorization header here, may pass `?token=` (see
docs/api.md for the trade-off)."""


@routes.get("/events", summary="Live call, agent and queue events (WebSocket)", tags=("events",),
            roles=(Role.agent, Role.integrator), query=EventsQuery, raw="application/json", errors=(426, 503),
            description=DESCRIPTION)
async def live_events(req: ApiRequest) -> web.StreamResponse:
    request = req.request
    if not web.WebSocketResponse().can_prepare(request).ok:
        raise ApiError(426, "upgrade_required", "GET /events is a WebSocket: connect with Upgrade: websocket",
                       headers={"Upgrade": "websocket"})
    hub = request.app.get(EVENT_HUB)
    if hub is None:
        raise ApiError(503, "service_unavailable", "live events are not available in this process")
    principal = req.principal
    assert principal is not None  # the route needs a token
    query: EventsQuery = req.query
    topics = query.topics.split(",") if query.topics else list(TOPICS)
    agent_id = principal.agent_id if principal.role is Role.agent else None
    try:
        sub = hub.subscribe(topics, agent_id=agent_id, name=principal.name)
    except HubUnavailable as exc:
        raise ApiError(503, "service_unavailable", str(exc)) from None
    ws = web.WebSocketResponse(heartbeat=hub.heartbeat or None, compress=False, max_msg_size=4096,
                               timeout=CLOSE_TIMEOUT)
    try:
        await ws.prepare(request)
        hello = {"type": "subscribed", "topics": sorted(sub.topics), "agent_id": agent_id, "queue_max": sub.limit}
        await ws.send_str(encode(hello))
        await _serve(ws, sub)
    except (ConnectionError, RuntimeError) as exc:  # the client went away mid-way
        log.debug("live events: connection lost", subscriber=sub.name, error=str(exc))
    finally:
        hub.unsubscribe(sub)
    return ws


async def _serve(ws: web.WebSocketResponse, sub: Subscription) -> None:
    """Send ``sub``'s messages until the client leaves or the hub ends the subscription (its code and reason)."""
    reader = asyncio.ensure_future(_read(ws))
    sender = asyncio.ensure_future(_send(ws, sub))
    try:
        await asyncio.wait({reader, sender, sub.ended}, return_when=asyncio.FIRST_COMPLETED)
        sender.cancel()  # e.g. stuck on a client that does not read
        await asyncio.gather(sender, return_exceptions=True)
        if not ws.closed:
            code, reason = sub.ended.result() if sub.ended.done() else (int(WSCloseCode.OK), "")
            with contextlib.suppress(TimeoutError, ConnectionError):
                # bounded: a client that does not read cannot take the close frame; then the connection is cut
                await asyncio.wait_for(ws.close(code=code, message=reason.encode()[:123]), CLOSE_TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader, CLOSE_TIMEOUT)
    finally:
        for task in (sender, reader):
            task.cancel()
        await asyncio.gather(sender, reader, return_exceptions=True)


async def _send(ws: web.WebSocketResponse, sub: Subscription) -> None:
    while True:
        await sub.wake.wait()
        for text in sub.take():
            await ws.send_str(text)  # waits while the client's socket is full: the queue fills meanwhile
            sub.sent += 1


async def _read(ws: web.WebSocketResponse) -> None:
    """Consume what the client sends (ignored), so pings, pongs and the close handshake are handled."""
    async for _ in ws:
        pass


__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_TOO_SLOW",
    "EVENT_HUB",
    "EventHub",
    "EventsQuery",
    "HubUnavailable",
    "LiveEventsCollector",
    "Subscription",
    "TeeSink",
    "routes",
]
