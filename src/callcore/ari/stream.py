"""The ARI event stream: one WebSocket per Stasis app, kept alive for as long as callcore runs.

Asterisk does not replay events missed while we were disconnected, so every (re)connect calls ``on_connected``
before any event of that connection is dispatched: the owner resyncs its state from REST there.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import structlog

from callcore.ari.client import AriClient
from callcore.ari.errors import ApplicationReplaced, AriAuthError, AriError
from callcore.ari.events import (
    AriEvent,
    ApplicationReplacedEvent,
    MalformedEvent,
    UnknownEvent,
    parse_event_json,
)

log = structlog.get_logger("callcore.ari")


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter (spreads reconnects of many instances after an outage)."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    attempt: int = 0

    def next_delay(self, rng: random.Random | None = None) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return (rng or random).uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class StreamStats:
    connects: int = 0
    reconnects: int = 0
    events: int = 0
    unknown: int = 0
    malformed: int = 0
    connected: bool = False


class AriEventStream:
    def __init__(
        self,
        client: AriClient,
        *,
        on_event: Callable[[AriEvent], None],
        on_connected: Callable[[], Awaitable[None]] | None = None,
        on_disconnected: Callable[[], None] | None = None,
        backoff: Backoff | None = None,
        heartbeat: float = 10.0,
        subscribe_all: bool = False,
    ) -> None:
        self._client = client
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._backoff = backoff or Backoff()
        self._heartbeat = heartbeat
        self._subscribe_all = subscribe_all
        self._closing = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.stats = StreamStats()
        self.connected_event = asyncio.Event()

    @property
    def ws_url(self) -> str:
        base = self._client.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return f"{base}/ari/events"

    async def run(self) -> None:
        """Connect, dispatch, reconnect forever. Returns on ``close()``; raises ApplicationReplaced."""
        while not self._closing:
            try:
                await self._connect_once()
            except ApplicationReplaced:
                raise
            except AriAuthError as exc:
                # Wrong credentials are a config error; retrying slowly keeps logs readable.
                log.error("ARI rejected our credentials", error=str(exc))
            except (aiohttp.ClientError, AriError, OSError, TimeoutError) as exc:
                if not self._closing:
                    log.warning("ARI connection failed", error=f"{type(exc).__name__}: {exc}")
            except Exception:
                # A bug in resync must not end the stream for good: log it and reconnect.
                log.exception("ARI stream error")
            finally:
                if self.stats.connected:
                    self.stats.connected = False
                    self.connected_event.clear()
                    if self._on_disconnected:
                        self._on_disconnected()
            if self._closing:
                break
            delay = self._backoff.next_delay()
            log.info("ARI reconnecting", in_seconds=round(delay, 2))
            await asyncio.sleep(delay)

    async def _connect_once(self) -> None:
        params = {"app": self._client.app, "subscribeAll": "true" if self._subscribe_all else "false"}
        async with self._client.session.ws_connect(
            self.ws_url,
            params=params,
            headers=self._client.auth_headers,
            heartbeat=self._heartbeat,
            autoping=True,
        ) as ws:
            self._ws = ws
            self.stats.connects += 1
            if self.stats.connects > 1:
                self.stats.reconnects += 1
            log.info("ARI connected", app=self._client.app, connects=self.stats.connects)
            # Resync before dispatching anything from this connection: events queue in the socket meanwhile.
            if self._on_connected:
                await self._on_connected()
            self.stats.connected = True
            self.connected_event.set()
            self._backoff.reset()
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._handle_frame(msg.data)
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break
            if not self._closing:
                log.warning("ARI WebSocket closed", code=ws.close_code)
        self._ws = None

    def _handle_frame(self, text: str) -> None:
        try:
            event = parse_event_json(text)
        except (ValueError, MalformedEvent) as exc:
            self.stats.malformed += 1
            log.error("ARI sent a malformed event; skipped", error=str(exc)[:500])
            return
        self.stats.events += 1
        if isinstance(event, ApplicationReplacedEvent):
            log.critical(
                "another client took over our ARI application; stopping instead of fighting for it",
                app=self._client.app,
            )
            self._closing = True
            raise ApplicationReplaced(self._client.app)
        if isinstance(event, UnknownEvent):
            self.stats.unknown += 1
        self._on_event(event)

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
