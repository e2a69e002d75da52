"""The call runtime: the registry of live calls and the one task that owns each of them.

Every channel that enters our Stasis app becomes a ``Call`` driven by one task running the flow the router
picks. The runtime guarantees the cleanup that flows may forget: a call whose flow returns, fails or is
cancelled is hung up (or handed back to the dialplan), its extra legs are hung up and its bridges destroyed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

import structlog

from callcore.ari import events as ev
from callcore.ari.client import AriClient
from callcore.ari.errors import AriError, AriNotFound
from callcore.ari.models import Channel
from callcore.calls.bridges import BridgePool
from callcore.calls.call import Call, CallHungUp, Leg, OriginateFailed
from callcore.events import EventSink, EventType
from callcore.ids import call_id_for_channel

log = structlog.get_logger("callcore.calls")

Handler = Callable[[Call], Awaitable[None]]
Router = Callable[[Call], Handler | None]

CALL_ID_VARIABLE = "CALLCORE_CALL_ID"

# The only ARI events Asterisk sends us. Every event costs CPU on both sides, and a bridged call alone
# produces dozens of ChannelVarset events callcore never reads (measured: 27 of 55 frames in one call).
# Channel{Entered,Left}Bridge are not read either (callcore puts channels in bridges itself): 4 frames a call.
SUBSCRIBED_EVENTS = [
    "StasisStart", "StasisEnd", "ChannelStateChange", "ChannelDtmfReceived", "ChannelHangupRequest",
    "ChannelDestroyed", "PlaybackStarted", "PlaybackFinished", "RecordingStarted", "RecordingFinished",
    "RecordingFailed", "BridgeDestroyed", "ChannelUserevent", "ApplicationReplaced",
]


def stasis_args(channel: Channel) -> list[str]:
    """Recover Stasis() arguments of a channel found by resync (from its current dialplan app data)."""
    if channel.dialplan.app_name.lower() != "stasis":
        return []
    return [a for a in channel.dialplan.app_data.split(",")[1:]]


class CallRuntime:
    def __init__(
        self,
        ari: AriClient,
        sink: EventSink,
        router: Router,
        *,
        on_handler_error: Literal["dialplan", "hangup"] = "dialplan",
        fallback_context: str = "callcore-fallback",
        config_version: str = "",
        subscribe_all: bool = False,
        node: str = "main",
    ) -> None:
        self.ari = ari
        # Which Asterisk node this runtime drives (one runtime per node: calls.nodes.Nodes), and how it rings
        # phones registered on the others: endpoint → home node, and the peer dial string template.
        self.node = node
        self.endpoint_homes: dict[str, str] = {}
        self.peer_dial = "PJSIP/{resource}@{node}"
        # Channel ids are unique per Asterisk only: inbound call ids of nodes after the first derive from
        # "<node>/<channel id>" (the first node's keep the single-node derivation).
        self.id_scope = ""
        self.sink = sink
        self.router = router
        self.on_handler_error = on_handler_error
        self.fallback_context = fallback_context
        self.config_version = config_version
        # The ARI WebSocket is subscribed to all channels: every ChannelDestroyed (the hangup cause) arrives without
        # a per-channel subscription request.
        self.subscribe_all = subscribe_all
        self.bridge_pool = BridgePool(ari)
        self.accepting = True
        self._by_channel: dict[str, Call] = {}
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._calls: dict[uuid.UUID, Call] = {}
        self.counters = {"started": 0, "adopted": 0, "vanished": 0, "handler_errors": 0, "refused": 0}
        # After a restart: how to continue a call found bridged with its legs (the ACD's conversation).
        self.resume: Callable[[Call, str], Handler | None] | None = None

    # -- introspection ---------------------------------------------------------------------------------
    @property
    def live_calls(self) -> int:
        return len(self._tasks)

    def calls(self) -> list[Call]:
        return list(self._calls.values())

    def call_for_channel(self, channel_id: str) -> Call | None:
        return self._by_channel.get(channel_id)

    def dial_string(self, endpoint: str) -> str:
        """What this node dials to ring ``endpoint``: itself, or, for a phone registered on another node, the
        SIP trunk to that node (which rings the phone there; callcore still controls the leg on this node)."""
        home = self.endpoint_homes.get(endpoint)
        if home is None or home == self.node:
            return endpoint
        return self.peer_dial.format(node=home, resource=endpoint.partition("/")[2])

    # -- events ----------------------------------------------------------------------------------------
    async def handle_event(self, event: ev.AriEvent) -> None:
        """Entry point for the ordered dispatcher (events of one channel arrive here in order)."""
        if isinstance(event, ev.StasisStart):
            await self._on_stasis_start(event)
            return
        call = self._by_channel.get(event.routing_key)
        if call is None:
            if isinstance(event, ev.BridgeDestroyed):
                self.bridge_pool.forget(event.bridge.id)
            return
        call.deliver(event)
        if isinstance(event, ev.ChannelDestroyed):
            if event.channel.id != call.channel_id:
                self._by_channel.pop(event.channel.id, None)
            if call.gone:
                self._end_when_legs_gone(call)
        elif isinstance(event, ev.StasisEnd) and event.channel.id == call.channel_id and not call.subscribed:
            # Without our own subscription no ChannelDestroyed will follow: the channel ends here.
            call.destroyed = True
            self._end_when_legs_gone(call)

    async def _on_stasis_start(self, event: ev.StasisStart) -> None:
        channel = event.channel
        known = self._by_channel.get(channel.id)
        if known is not None:
            known.deliver(event)  # an originated leg answered, or a channel resync already adopted
            return
        args = event.args
        if args and args[0] == "leg":
            # A leg whose call no longer exists (e.g. the caller hung up during the originate).
            await self._safe(self.ari.channels.hangup(channel.id))
            return
        if not self.accepting:
            self.counters["refused"] += 1
            # Draining: give the call back to the dialplan, which may route it elsewhere.
            await self._safe(self.ari.channels.continue_in_dialplan(channel.id))
            return
        call = Call(self, channel, call_id=call_id_for_channel(self.id_scope + channel.id, channel.creationtime),
                    **_direction_and_did(args, channel))
        self.counters["started"] += 1
        call.emit(
            EventType.CALL_STARTED,
            {
                "direction": call.direction,
                "did": call.did,
                "caller_number": channel.caller.number,
                "caller_name": channel.caller.name,
                "channel_name": channel.name,
                "node": self.node,
                "config_version": self.config_version,
            },
        )
        if call.answered:
            call.emit(EventType.ANSWERED)
        self._start(call)

    async def place_call(
        self,
        endpoint: str,
        handler: Handler,
        *,
        caller_id: str | None = None,
        timeout: float = 30.0,
        data: dict[str, object] | None = None,
        call_id: uuid.UUID | None = None,
        context: str | None = None,
        variables: dict[str, str] | None = None,
        caller_name: str | None = None,
    ) -> Call:
        """Dial out as a call of its own (a callback, a dialer attempt): ``handler`` runs in the call's own
        task once it is answered. Returns the answered call; raises OriginateFailed when nobody answers (the
        attempt is still a call in the store, with its hangup cause), CallHungUp when it vanished.

        ``context``: answered calls run that dialplan context first (answering-machine detection: ARI has no
        AMD), which then enters our app with its verdict as Stasis arguments (``call.args``)."""
        channel_id = str(uuid.uuid4())
        placeholder = Channel(id=channel_id, name=endpoint, state="Down")
        call = Call(self, placeholder, call_id=call_id, direction="outbound", did=endpoint, args=["outbound"])
        call.handler = handler
        self._by_channel[channel_id] = call
        self._calls[call.call_id] = call
        self.counters["started"] += 1
        call.emit(EventType.CALL_STARTED, {"direction": "outbound", "endpoint": endpoint, "caller_number": caller_id,
                                           "node": self.node, "config_version": self.config_version,
                                           **(data or {})})
        channel_vars = {CALL_ID_VARIABLE: str(call.call_id), **(variables or {})}
        endpoint = self.dial_string(endpoint)
        if caller_id and caller_name:  # the callee's display shows the name too
            caller_id = '"{}" <{}>'.format(caller_name.replace('"', "").replace("\\", ""), caller_id)
        originated = False  # Asterisk accepted the originate (a later ARI error is not a refusal)
        try:
            if context is None:
                channel = await self.ari.channels.originate(
                    endpoint, app=self.ari.app, app_args=f"outbound,{call.call_id}", channel_id=channel_id,
                    caller_id=caller_id, timeout=int(timeout), variables=channel_vars)
            else:
                channel = await self.ari.channels.originate(
                    endpoint, context=context, extension="s", priority=1, channel_id=channel_id,
                    caller_id=caller_id, timeout=int(timeout), variables=channel_vars)
                originated = True
                # Not in our app until the dialplan sends it: subscribe, or a busy or unanswered call's
                # ChannelDestroyed (with its cause) would never reach us.
                await self.ari.applications.subscribe(self.ari.app, [f"channel:{channel_id}"])
                call.subscribed = True
            call.channel = channel
            await call.wait_answered(timeout + 5)
        except BaseException as exc:
            self._calls.pop(call.call_id, None)
            if isinstance(exc, AriError):
                call.record_hangup(None, f"originate refused: {exc}", by="asterisk")
                self._end(call, "failed")
                raise OriginateFailed(endpoint, 0, str(exc), refused=not originated) from exc
            if not isinstance(exc, (CallHungUp, TimeoutError)):
                await asyncio.shield(self._safe(self.ari.channels.hangup(channel_id)))
                raise
            if not call.gone:
                await self._safe(self.ari.channels.hangup(channel_id))  # no answer in time: stop ringing
            for _ in range(100):  # the cause comes with ChannelDestroyed, maybe just after the HangupRequest
                if call.hangup_recorded:
                    break
                await asyncio.sleep(0.02)
            raise OriginateFailed(endpoint, call.hangup_cause or 0, call.hangup_cause_text) from exc
        self._tasks[call.call_id] = asyncio.get_running_loop().create_task(
            self._run(call, claim=False), name=f"call:{call.call_id}")
        return call

    def adopt_leg(self, call: Call, channel_id: str) -> None:
        """Route events of a channel ``call`` originates to that call."""
        self._by_channel[channel_id] = call

    def _end_when_legs_gone(self, call: Call) -> None:
        """The call's record ends with its last channel (an agent leg may outlive the caller briefly)."""
        if call.destroyed and all(leg.gone for leg in call.legs.values()):
            self._end(call)

    def _end(self, call: Call, reason: str | None = None) -> None:
        """Close the call's record once: ``call_ended`` and no more event routing for its channel."""
        call.mark_gone()
        if self._by_channel.get(call.channel_id) is call:
            del self._by_channel[call.channel_id]
        if not call.hangup_recorded:
            # No cause reached us (e.g. the channel went before our subscription): the story still says who.
            call.record_hangup(None, "", by="dialplan" if call.released else "remote")
        if not call.ended:
            call.ended = True
            reason = reason or ("released_to_dialplan" if call.released else "hangup")
            call.emit(EventType.CALL_ENDED, {"reason": reason})
        # Its bridges go back to the pool when every channel in them is known to be gone.
        clean = call.destroyed and all(leg.gone for leg in call.legs.values())
        for bridge_id in list(call.bridges):
            call.bridges.discard(bridge_id)
            self.bridge_pool.give_back(bridge_id, clean=clean)

    # -- call tasks ------------------------------------------------------------------------------------
    def _start(self, call: Call) -> None:
        self._by_channel[call.channel_id] = call
        self._calls[call.call_id] = call
        self._tasks[call.call_id] = asyncio.get_running_loop().create_task(
            self._run(call, claim=not self.subscribe_all), name=f"call:{call.call_id}"
        )

    async def _run(self, call: Call, claim: bool) -> None:
        # Every log line written while this task runs carries the call id (the task has its own context).
        structlog.contextvars.bind_contextvars(call_id=str(call.call_id), channel=call.channel_id)
        claimed: asyncio.Task[None] | None = None
        if claim:
            # Subscribe to the channel before the flow acts (without subscribe_all). Running it alongside the flow
            # let a caller who hung up within the first second leave before the subscription, losing the hangup
            # cause: correctness first. With subscribe_all (the app's default) there is nothing to claim.
            claimed = asyncio.get_running_loop().create_task(self._claim_channel(call))
            call.claim = claimed
            await asyncio.wait({claimed})
        else:
            call.subscribed = True
        try:
            handler = call.handler or self.router(call)
            if handler is None:
                call.log.warning("no flow for this DID; sending the call to the fallback", did=call.did)
                call.emit(EventType.HANDLER_ERROR, {"error": f"no flow for DID {call.did!r}"})
                await self._recover(call)
                return
            await handler(call)
        except (CallHungUp, AriNotFound):
            pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.counters["handler_errors"] += 1
            call.log.exception("call handler failed")
            call.emit(EventType.HANDLER_ERROR, {"error": f"{type(exc).__name__}: {exc}"[:500]})
            await self._recover(call)
        finally:
            if claimed is not None:
                await asyncio.shield(self._finish_claim(claimed))
            await asyncio.shield(self._cleanup(call))

    async def _finish_claim(self, claim: asyncio.Task[None]) -> None:
        try:
            await claim
        except (AriError, CallHungUp) as exc:
            log.info("could not claim the channel", error=str(exc))
        except Exception:
            log.exception("claiming the channel failed")

    async def _claim_channel(self, call: Call) -> None:
        """Subscribe to the channel, so its ChannelDestroyed, which carries the hangup cause, reaches us even
        after it leaves Stasis (only needed when the app is not subscribed to all channels)."""
        try:
            await self.ari.applications.subscribe(self.ari.app, [f"channel:{call.channel_id}"])
            call.subscribed = True
        except (AriError, CallHungUp):
            call.subscribed = False
        if call.gone and not call.subscribed:
            call.destroyed = True  # hung up before we could subscribe: StasisEnd was the last word
            self._end_when_legs_gone(call)

    async def _recover(self, call: Call) -> None:
        """Never strand a caller after a bug: send them to the fallback dialplan, or hang up."""
        if call.gone:
            return
        if self.on_handler_error == "dialplan":
            ok = await self._safe(call.continue_in_dialplan(self.fallback_context, "s", 1))
            if ok:
                return
        await self._safe(call.hangup("normal"))

    async def _cleanup(self, call: Call) -> None:
        try:
            if not call.gone and not call.released:
                await self._safe(call.hangup("normal"))
            for leg in list(call.legs.values()):
                if not leg.gone:
                    await self._safe(self.ari.channels.hangup(leg.channel_id))
            # Bridges stay until the call's record ends (``_end``): then they are reused or destroyed.
        finally:
            self._tasks.pop(call.call_id, None)
            self._calls.pop(call.call_id, None)

    async def _safe(self, aw: Awaitable[object]) -> bool:
        try:
            await aw
            return True
        except (AriError, CallHungUp) as exc:
            log.info("cleanup step skipped", error=str(exc))
            return False

    # -- resync after (re)connect ----------------------------------------------------------------------
    async def resync(self) -> None:
        """Reconcile the registry with what Asterisk has now (events missed while disconnected are lost)."""
        app = await self.ari.applications.set_event_filter(self.ari.app, allowed=SUBSCRIBED_EVENTS)
        channels: list[Channel] | None = None
        if self.subscribe_all:
            # Subscribed to everything, the app lists no channel ids: ask for the channels themselves.
            channels = await self.ari.channels.list()
            live = {c.id for c in channels}
            in_app = {c.id for c in channels if self._in_our_app(c)}
        else:
            live = in_app = set(app.channel_ids)
        for channel_id, call in list(self._by_channel.items()):
            if channel_id in live or channel_id.startswith("bridge:"):
                continue
            if channel_id == call.channel_id:
                self.counters["vanished"] += 1
                call.record_hangup(None, "channel vanished while ARI was disconnected", by="asterisk")
                self._end(call, "vanished")
            else:
                leg = call.legs.get(channel_id)
                if leg is not None:
                    leg.mark_gone()
                self._by_channel.pop(channel_id, None)
        unknown = in_app - set(self._by_channel)
        if unknown:
            channels = channels if channels is not None else await self.ari.channels.list()
            await self._adopt_all([c for c in channels if c.id in unknown])
        # A call whose task died while Asterisk was unreachable, but whose channel lives on: run it again.
        for call in list(self._calls.values()):
            task = self._tasks.get(call.call_id)
            if (task is None or task.done()) and not call.gone and call.channel_id in live:
                self._start(call)
        await self._drop_orphan_bridges()
        log.info("ARI resync done", live_channels=len(live), calls=self.live_calls)

    def _in_our_app(self, channel: Channel) -> bool:
        plan = channel.dialplan
        return plan.app_name.lower() == "stasis" and plan.app_data.split(",")[0] == self.ari.app

    async def _drop_orphan_bridges(self) -> None:
        """Empty bridges nobody tracks (left by a process that died): destroyed, so nothing piles up."""
        try:
            bridges = await self.ari.bridges.list()
        except AriError as exc:
            log.info("could not list bridges", error=str(exc))
            return
        self.bridge_pool.keep_only({b.id for b in bridges})  # after an Asterisk restart its bridges are gone
        tracked = self.bridge_pool.known() | {b for c in self._calls.values() for b in c.bridges}
        for bridge in bridges:
            if not bridge.channels and bridge.id not in tracked:
                await self._safe(self.ari.bridges.destroy(bridge.id))

    async def _adopt_all(self, channels: list[Channel]) -> None:
        """Take over channels another callcore process left in our app (a restart): callers first, then the
        legs they had (agent phones, transferred-to numbers), then each call resumes. A caller still bridged
        with its legs is a conversation in progress: the ``resume`` hook continues it instead of restarting
        its flow from the top; anything else starts its flow again."""
        legs = [c for c in channels if stasis_args(c)[:1] == ["leg"]]
        adopted: list[Call] = []
        for channel in channels:
            if stasis_args(channel)[:1] != ["leg"]:
                adopted.append(await self._adopt(channel))
        for channel in legs:
            args = stasis_args(channel)
            parent = _uuid(args[1]) if len(args) > 1 else None
            call = self._calls.get(parent) if parent else None
            if call is None:
                await self._safe(self.ari.channels.hangup(channel.id))  # its caller is gone: nobody to talk to
                continue
            leg = Leg(channel_id=channel.id, endpoint=channel.name)
            leg.answered.set_result(channel)
            call.legs[channel.id] = leg
            self._by_channel[channel.id] = call
        bridges = await self.ari.bridges.list() if legs and self.resume is not None else []
        # (adopted calls without legs are never in a conversation)
        bridge_of = {ch: b.id for b in bridges for ch in b.channels}
        for call in adopted:
            bridge_id = bridge_of.get(call.channel_id)
            if self.resume is not None:
                # Bridged with its legs: a conversation to continue; otherwise the hook decides (a caller who was
                # waiting in a queue gets its place back; anyone else starts the flow again).
                call.handler = self.resume(call, bridge_id if call.legs else None)
            self._start(call)

    async def _adopt(self, channel: Channel) -> Call:
        args = stasis_args(channel)
        try:
            # Calls callcore placed carry their id on the channel; an inbound call's id derives from its channel.
            call_id = _uuid(await self.ari.channels.get_variable(channel.id, CALL_ID_VARIABLE))
        except AriError:
            call_id = None
        call_id = call_id or call_id_for_channel(self.id_scope + channel.id, channel.creationtime)
        call = Call(self, channel, call_id=call_id, adopted=True, **_direction_and_did(args, channel))
        self.counters["adopted"] += 1
        call.emit(EventType.CALL_ADOPTED, {"direction": call.direction, "did": call.did})
        self._calls[call.call_id] = call
        self._by_channel[call.channel_id] = call
        return call

    # -- shutdown --------------------------------------------------------------------------------------
    def stop_accepting(self) -> None:
        self.accepting = False

    async def drain(self, timeout: float) -> int:
        """Let live calls finish for up to ``timeout`` s; then hand the rest back to the dialplan.

        Returns how many calls had to be handed back.
        """
        self.stop_accepting()
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        remaining = [c for c in self._calls.values() if not c.gone]
        for call in remaining:
            call.released = True
            await self._safe(self.ari.channels.continue_in_dialplan(call.channel_id))
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)
        # Calls that just ended wait for their ChannelDestroyed (the cause): give it a moment before the
        # event stream closes, then close what is left ourselves, so no call record stays open.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while any(c.gone and not c.ended and not c.released for c in self._by_channel.values()):
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.02)
        for call in {id(c): c for c in self._by_channel.values()}.values():
            if call.released:
                self._end(call, "released_to_dialplan")  # it ends in the dialplan, which we will not see
            elif call.gone:
                self._end(call)
        return len(remaining)


def _direction_and_did(args: list[str], channel: Channel) -> dict[str, str | list[str]]:
    direction = args[0] if args and args[0] in ("inbound", "outbound") else "inbound"
    did = args[1] if len(args) > 1 and direction == "inbound" else channel.dialplan.exten
    return {"direction": direction, "did": did, "args": args}


def _uuid(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None
