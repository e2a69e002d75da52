"""Several Asterisk nodes behind one call registry (scale-out, docs/scaling.md).

Each node has its own ARI connection and its own ``CallRuntime``: a call lives on the node its channel is on,
and everything done to it (play, bridge, record, snoop, agent legs) happens there. ``Nodes`` is what the services
(ACD, dialer, API) hold instead of a single runtime: it lists calls of every node and places new calls on the
least loaded connected node. A caller on one node reaches an agent whose phone is registered on another through
the SIP trunk between the nodes (``CallRuntime.dial_string``), so routing stays one decision over all agents.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from callcore.ari.client import AriClient
from callcore.ari.dispatch import OrderedDispatcher
from callcore.ari.events import AriEvent
from callcore.ari.stream import AriEventStream, Backoff
from callcore.calls.call import Call, OriginateFailed
from callcore.calls.runtime import CallRuntime, Handler, Router


class NoNodeAvailable(OriginateFailed):
    """No Asterisk node is connected and accepting calls: nothing can be dialled now (an attempt that failed)."""

    def __init__(self, why: str) -> None:
        super().__init__("any Asterisk node", 0, why)


class Nodes:
    def __init__(self, runtimes: list[CallRuntime], connected: Mapping[str, Callable[[], bool]] | None = None) -> None:
        if not runtimes:
            raise ValueError("at least one Asterisk node")
        self.runtimes = {r.node: r for r in runtimes}
        self.primary = runtimes[0]
        for runtime in runtimes[1:]:
            runtime.id_scope = f"{runtime.node}/"
        self._connected = dict(connected or {})

    # -- what every node shares --------------------------------------------------------------------------
    @property
    def router(self) -> Router:
        return self.primary.router

    @router.setter
    def router(self, router: Router) -> None:
        for runtime in self.runtimes.values():
            runtime.router = router

    @property
    def config_version(self) -> str:
        return self.primary.config_version

    @config_version.setter
    def config_version(self, version: str) -> None:
        for runtime in self.runtimes.values():
            runtime.config_version = version

    @property
    def resume(self) -> Callable[[Call, str], Handler | None] | None:
        return self.primary.resume

    @resume.setter
    def resume(self, hook: Callable[[Call, str], Handler | None] | None) -> None:
        for runtime in self.runtimes.values():
            runtime.resume = hook

    def set_endpoint_homes(self, homes: Mapping[str, str], peer_dial: str) -> None:
        """Where agents' phones are registered (endpoint → node) and how the nodes ring each other's phones."""
        for runtime in self.runtimes.values():
            runtime.endpoint_homes = dict(homes)
            runtime.peer_dial = peer_dial

    # -- the calls of every node -------------------------------------------------------------------------
    @property
    def accepting(self) -> bool:
        return all(r.accepting for r in self.runtimes.values())

    @property
    def live_calls(self) -> int:
        return sum(r.live_calls for r in self.runtimes.values())

    @property
    def counters(self) -> dict[str, int]:
        """The runtimes' counters (started, adopted, vanished, …) summed over the nodes."""
        total: dict[str, int] = {}
        for runtime in self.runtimes.values():
            for key, value in runtime.counters.items():
                total[key] = total.get(key, 0) + value
        return total

    def calls(self) -> list[Call]:
        return [c for r in self.runtimes.values() for c in r.calls()]

    def call_for_channel(self, channel_id: str) -> Call | None:
        for runtime in self.runtimes.values():
            call = runtime.call_for_channel(channel_id)
            if call is not None:
                return call
        return None

    def connected(self, node: str) -> bool:
        check = self._connected.get(node)
        return True if check is None else bool(check())

    def pick(self, node: str | None = None) -> CallRuntime:
        """The node a new outgoing call goes out on: ``node`` if given, else the least loaded one that is
        connected and accepting calls (a node whose ARI is down cannot place or control a call)."""
        if node is not None:
            runtime = self.runtimes.get(node)
            if runtime is None:
                raise NoNodeAvailable(f"unknown Asterisk node {node!r}")
            return runtime
        up = [r for r in self.runtimes.values() if r.accepting and self.connected(r.node)]
        if not up:
            raise NoNodeAvailable("no Asterisk node is connected")
        return min(up, key=lambda r: r.live_calls)

    async def place_call(self, endpoint: str, handler: Handler, *, node: str | None = None,
                         caller_id: str | None = None, timeout: float = 30.0, data: dict[str, object] | None = None,
                         call_id: uuid.UUID | None = None, context: str | None = None,
                         variables: dict[str, str] | None = None, caller_name: str | None = None) -> Call:
        return await self.pick(node).place_call(endpoint, handler, caller_id=caller_id, timeout=timeout, data=data,
                                                call_id=call_id, context=context, variables=variables,
                                                caller_name=caller_name)

    # -- shutdown ----------------------------------------------------------------------------------------
    def stop_accepting(self) -> None:
        for runtime in self.runtimes.values():
            runtime.stop_accepting()

    async def drain(self, timeout: float) -> int:
        """Drain every node at once (the same deadline for all); returns the calls handed back."""
        handed_back = await asyncio.gather(*(r.drain(timeout) for r in self.runtimes.values()))
        return sum(handed_back)


@dataclass
class NodeLink:
    """One Asterisk node's connection as the app owns it: REST client, event stream, dispatcher, runtime."""

    name: str
    ari: AriClient
    runtime: CallRuntime
    dispatcher: OrderedDispatcher[AriEvent]
    stream: AriEventStream
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    def create(cls, name: str, ari: AriClient, runtime: CallRuntime, *, backoff: Backoff,
               heartbeat: float) -> NodeLink:
        dispatcher: OrderedDispatcher[AriEvent] = OrderedDispatcher(runtime.handle_event)
        stream = AriEventStream(
            ari,
            on_event=lambda event: dispatcher.submit(event.routing_key, event),
            on_connected=runtime.resync,
            backoff=backoff,
            heartbeat=heartbeat,
            # Every channel's events (filtered to the types callcore handles): no per-call subscribe request.
            subscribe_all=True,
        )
        return cls(name, ari, runtime, dispatcher, stream)

    def connected(self) -> bool:
        return self.stream.stats.connected

    async def close_stream(self, bounded: Callable[[str, object, float], Awaitable[None]]) -> None:
        """Stop taking events from this node (each step bounded: a shutdown that hangs is worse)."""
        await bounded(f"closing the ARI event stream of {self.name}", self.stream.close(), 5)
        if self.task is not None:
            self.task.cancel()
            await bounded(f"stopping the ARI stream task of {self.name}",
                          asyncio.gather(self.task, return_exceptions=True), 5)
        try:
            await self.dispatcher.join(timeout=2.0)
        except TimeoutError:
            pass
        await bounded(f"stopping event dispatch of {self.name}", self.dispatcher.close(), 5)
