"""An in-process fake of Asterisk's ARI (REST + event WebSocket) for fast unit tests.

It keeps just enough state to behave like Asterisk for callcore's runtime: channels in the Stasis app,
playbacks that finish when told (or at once), hangups that produce ChannelHangupRequest/StasisEnd/
ChannelDestroyed. Tests push events, drop the WebSocket, or "restart" it (forgetting every channel).
Every request is recorded for assertions. Real-Asterisk behaviour is proven by the integration tests.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

USER, PASSWORD, APP = "callcore", "secret", "callcore"


def _now() -> str:
    return "2026-11-24T00:00:00.000+0000"


@dataclass
class FakeChannel:
    id: str
    exten: str = "1000"
    caller: str = "+31201234567"
    state: str = "Ring"
    args: list[str] = field(default_factory=lambda: ["inbound", "1000"])
    variables: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": f"PJSIP/trunk-{self.id}",
            "state": self.state,
            "caller": {"name": "", "number": self.caller},
            "connected": {"name": "", "number": ""},
            "accountcode": "",
            "dialplan": {
                "context": "from-trunk",
                "exten": self.exten,
                "priority": 2,
                "app_name": "Stasis",
                "app_data": ",".join([APP, *self.args]),
            },
            "creationtime": _now(),
            "language": "en",
        }


class FakeAri:
    def __init__(self, *, auto_finish_playback: bool = True) -> None:
        self.auto_finish_playback = auto_finish_playback
        self.channels: dict[str, FakeChannel] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.connects = 0
        self.refuse_connections = False
        self.fail_requests: dict[tuple[str, str], int] = {}  # (method, path suffix) -> status
        self.playbacks: dict[str, str] = {}  # playback id -> channel id
        self.event_filter: list[str] | None = None
        self.subscribed: set[str] = set()  # channels subscribed explicitly: they get ChannelDestroyed
        self._ids = itertools.count(1)
        self.connected = asyncio.Event()
        self.app = web.Application(middlewares=[self._auth])
        r = self.app.router
        r.add_get("/ari/events", self._events)
        r.add_get("/ari/applications/{app}", self._get_app)
        r.add_put("/ari/applications/{app}/eventFilter", self._event_filter)
        r.add_post("/ari/applications/{app}/subscription", self._subscribe)
        r.add_get("/ari/channels", self._list_channels)
        r.add_post("/ari/channels/{id}/answer", self._answer)
        r.add_post("/ari/channels/{id}/play/{pid}", self._play)
        r.add_delete("/ari/playbacks/{pid}", self._stop_playback)
        r.add_delete("/ari/channels/{id}", self._hangup)
        r.add_post("/ari/channels/{id}/variable", self._set_var)
        r.add_get("/ari/channels/{id}/variable", self._get_var)
        r.add_post("/ari/channels/{id}/continue", self._continue)
        r.add_get("/ari/asterisk/info", self._info)

    # -- server plumbing -------------------------------------------------------------------------------
    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"message": "Authentication required"}, status=401)
        self.requests.append((request.method, request.path, dict(request.query)))
        for (method, suffix), status in self.fail_requests.items():
            if request.method == method and request.path.endswith(suffix):
                return web.json_response({"message": "injected failure"}, status=status)
        return await handler(request)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_connections:
            return web.json_response({"message": "down"}, status=503)
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.connects += 1
        self.sockets.append(ws)
        self.connected.set()
        async for msg in ws:
            if msg.type == WSMsgType.CLOSE:
                break
        if ws in self.sockets:
            self.sockets.remove(ws)
        return ws

    async def send(self, event: dict[str, Any]) -> None:
        event.setdefault("application", APP)
        event.setdefault("timestamp", _now())
        for ws in list(self.sockets):
            await ws.send_str(json.dumps(event))

    async def send_raw(self, text: str) -> None:
        for ws in list(self.sockets):
            await ws.send_str(text)

    async def drop_connections(self) -> None:
        self.connected.clear()
        for ws in list(self.sockets):
            await ws.close()
        self.sockets.clear()

    async def restart(self) -> None:
        """Asterisk restarted: every channel is gone, no events about it are sent."""
        self.channels.clear()
        await self.drop_connections()

    # -- helpers for tests -------------------------------------------------------------------------------
    async def new_call(self, exten: str = "1000", caller: str = "+31201234567") -> FakeChannel:
        ch = FakeChannel(id=f"1732400000.{next(self._ids)}", exten=exten, caller=caller, args=["inbound", exten])
        self.channels[ch.id] = ch
        await self.send({"type": "StasisStart", "args": ch.args, "channel": ch.as_json()})
        return ch

    async def press(self, channel_id: str, digit: str) -> None:
        ch = self.channels[channel_id]
        await self.send({"type": "ChannelDtmfReceived", "digit": digit, "duration_ms": 100, "channel": ch.as_json()})

    async def caller_hangs_up(self, channel_id: str) -> None:
        """Like Asterisk 22 on a remote BYE: a HangupRequest without cause, StasisEnd, and ChannelDestroyed
        (with the cause) only for channels the app subscribed to explicitly."""
        ch = self.channels.pop(channel_id, None)
        if ch is None:
            return
        await self.send({"type": "ChannelHangupRequest", "channel": ch.as_json()})
        await self._end(ch, 16, "Normal Clearing")

    async def _end(self, ch: FakeChannel, cause: int, cause_txt: str) -> None:
        await self.send({"type": "StasisEnd", "channel": ch.as_json()})
        if ch.id in self.subscribed:
            self.subscribed.discard(ch.id)
            await self.send({"type": "ChannelDestroyed", "cause": cause, "cause_txt": cause_txt, "channel": ch.as_json()})

    async def finish_playback(self, playback_id: str) -> None:
        channel_id = self.playbacks.pop(playback_id, None)
        if channel_id is None:
            return
        await self.send({
            "type": "PlaybackFinished",
            "playback": {"id": playback_id, "media_uri": "sound:x", "target_uri": f"channel:{channel_id}", "state": "done"},
        })

    def calls_to(self, method: str, suffix: str) -> list[tuple[str, str, dict[str, str]]]:
        return [r for r in self.requests if r[0] == method and r[1].endswith(suffix)]

    # -- REST handlers -----------------------------------------------------------------------------------
    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response({"system": {"version": "22.0.0-fake", "entity_id": "fake"}})

    async def _get_app(self, request: web.Request) -> web.Response:
        return web.json_response({
            "name": request.match_info["app"], "channel_ids": list(self.channels),
            "bridge_ids": [], "endpoint_ids": [], "device_names": [],
        })

    async def _event_filter(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.event_filter = [e["type"] for e in body.get("allowed", [])]
        return await self._get_app(request)

    async def _subscribe(self, request: web.Request) -> web.Response:
        for source in request.query.get("eventSource", "").split(","):
            kind, _, ident = source.partition(":")
            if kind != "channel" or ident not in self.channels:
                return web.json_response({"message": "Event source not found"}, status=422)
            self.subscribed.add(ident)
        return await self._get_app(request)

    async def _list_channels(self, request: web.Request) -> web.Response:
        return web.json_response([c.as_json() for c in self.channels.values()])

    def _channel(self, request: web.Request) -> FakeChannel:
        ch = self.channels.get(request.match_info["id"])
        if ch is None:
            raise web.HTTPNotFound(text=json.dumps({"message": "Channel not found"}), content_type="application/json")
        return ch

    async def _answer(self, request: web.Request) -> web.Response:
        ch = self._channel(request)
        ch.state = "Up"
        await self.send({"type": "ChannelStateChange", "channel": ch.as_json()})
        return web.Response(status=204)

    async def _play(self, request: web.Request) -> web.Response:
        ch = self._channel(request)
        pid = request.match_info["pid"]
        self.playbacks[pid] = ch.id
        pb = {"id": pid, "media_uri": request.query.get("media", ""), "target_uri": f"channel:{ch.id}", "state": "playing"}
        await self.send({"type": "PlaybackStarted", "playback": pb})
        if self.auto_finish_playback:
            asyncio.get_running_loop().call_later(0.01, lambda: asyncio.ensure_future(self.finish_playback(pid)))
        return web.json_response(pb, status=201)

    async def _stop_playback(self, request: web.Request) -> web.Response:
        pid = request.match_info["pid"]
        if pid not in self.playbacks:
            return web.json_response({"message": "Playback not found"}, status=404)
        await self.finish_playback(pid)
        return web.Response(status=204)

    async def _hangup(self, request: web.Request) -> web.Response:
        ch = self._channel(request)
        self.channels.pop(ch.id, None)
        await self.send({"type": "ChannelHangupRequest", "cause": 32, "channel": ch.as_json()})
        await self._end(ch, 16, "Normal Clearing")
        return web.Response(status=204)

    async def _continue(self, request: web.Request) -> web.Response:
        ch = self._channel(request)
        self.channels.pop(ch.id, None)
        await self.send({"type": "StasisEnd", "channel": ch.as_json()})
        if ch.id in self.subscribed:
            # The fallback dialplan plays its apology, then hangs up with cause 34.
            async def later() -> None:
                await asyncio.sleep(0.02)
                self.subscribed.discard(ch.id)
                await self.send({"type": "ChannelDestroyed", "cause": 34, "cause_txt": "Circuit/channel congestion", "channel": ch.as_json()})
            asyncio.ensure_future(later())
        return web.Response(status=204)

    async def _set_var(self, request: web.Request) -> web.Response:
        ch = self._channel(request)
        ch.variables[request.query["variable"]] = request.query.get("value", "")
        return web.Response(status=204)

    async def _get_var(self, request: web.Request) -> web.Response:
        ch = self._channel(request)
        name = request.query["variable"]
        if name not in ch.variables:
            return web.json_response({"message": "Provided variable was not found"}, status=404)
        return web.json_response({"value": ch.variables[name]})
