"""One live call and the primitives flows use on it (answer, play, collect digits, originate, bridge, hang up).

A ``Call`` is owned by exactly one task (see runtime.py). ARI events for its channels are delivered to it in
order by the runtime (``deliver``, synchronous); primitives await futures those events resolve. When the
caller hangs up every pending wait raises ``CallHungUp``, so flows unwind through their ``finally`` blocks.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from callcore.ari import events as ev
from callcore.ari.errors import AriConflict, AriError, AriNotFound
from callcore.ari.models import Channel
from callcore.events import CallEvent, EventType, utcnow
from callcore.ids import uuid7

if TYPE_CHECKING:
    from callcore.calls.runtime import CallRuntime

ALL_DIGITS = "0123456789*#ABCD"


class CallHungUp(Exception):
    """The call's channel is gone (hung up, left Stasis, or vanished with Asterisk)."""


class OriginateFailed(Exception):
    """``refused``: Asterisk refused the originate itself (no such endpoint, trunk down): nothing rang."""

    def __init__(self, endpoint: str, cause: int, cause_text: str, *, refused: bool = False) -> None:
        super().__init__(f"originate to {endpoint} failed: {cause} {cause_text}")
        self.cause = cause
        self.cause_text = cause_text
        self.refused = refused


@dataclass
class Leg:
    """An extra channel a call originated (agent phone, callee). Owned by its call."""

    channel_id: str
    endpoint: str
    answered: asyncio.Future[Channel] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    gone: bool = False
    cause: int | None = None
    # Resolved when the leg hangs up or leaves our app: what a conversation waits on besides the caller.
    ended: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def mark_gone(self) -> None:
        self.gone = True
        if not self.ended.done():
            self.ended.set_result(None)


class Call:
    def __init__(
        self,
        runtime: CallRuntime,
        channel: Channel,
        *,
        call_id: uuid.UUID | None = None,
        direction: str = "inbound",
        did: str = "",
        args: list[str] | None = None,
        adopted: bool = False,
    ) -> None:
        self.runtime = runtime
        self.ari = runtime.ari
        self.channel = channel
        self.channel_id = channel.id
        self.call_id = call_id or uuid7()
        self.direction = direction
        self.did = did
        self.args = args or []
        self.adopted = adopted
        self.variables: dict[str, str] = {}
        self.language = channel.language or "en"
        self.log = structlog.get_logger("callcore.calls").bind(
            call_id=str(self.call_id), channel=channel.id
        )
        self.answered = channel.state == "Up"
        self.hangup_recorded = False
        self.released = False  # handed back to the dialplan
        self.subscribed = False  # to its channel's ChannelDestroyed (which carries the hangup cause)
        self.ended = False  # call_ended emitted
        self.destroyed = False  # ChannelDestroyed seen for the main channel
        self.claim: asyncio.Task[None] | None = None  # the runtime's subscription + call-id tag, in flight
        self.legs: dict[str, Leg] = {}
        self.bridges: set[str] = set()
        loop = asyncio.get_running_loop()
        self._gone: asyncio.Future[None] = loop.create_future()
        self._digits: deque[str] = deque()
        self._digit_waiter: asyncio.Future[None] | None = None
        self._playbacks: dict[str, asyncio.Future[str]] = {}
        self._recordings: dict[str, asyncio.Future[ev.LiveRecording]] = {}
        self.recording_count = 0  # recordings made of this call (names <call id>-<n>)
        self.handler: Any = None  # set for calls callcore placed itself: what runs once answered
        self.hangup_cause: int | None = None
        self.hangup_cause_text = ""
        self._answered_out: asyncio.Future[None] = loop.create_future()  # a placed call's StasisStart

    # -- state -----------------------------------------------------------------------------------------
    @property
    def gone(self) -> bool:
        return self._gone.done()

    @property
    def caller_number(self) -> str:
        return self.channel.caller.number

    def emit(self, type_: str, data: dict[str, Any] | None = None, channel_id: str | None = None) -> None:
        self.runtime.sink.emit(
            CallEvent(
                call_id=self.call_id,
                type=type_,
                at=utcnow(),
                channel_id=channel_id or self.channel_id,
                data=data or {},
            )
        )

    def when_gone(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` (soon) once the call is gone: at once if it is already."""
        self._gone.add_done_callback(lambda _f: fn())

    def mark_gone(self) -> None:
        if not self._gone.done():
            self._gone.set_result(None)
        for fut in [self._digit_waiter, *self._playbacks.values()]:
            if fut is not None and not fut.done():
                fut.set_exception(CallHungUp())
                fut.exception()  # mark retrieved: a waiter may already have given up
        for leg in self.legs.values():
            if not leg.answered.done():
                leg.answered.set_exception(CallHungUp())
                leg.answered.exception()  # retrieved: nobody may be waiting any more

    def _check(self) -> None:
        if self.gone:
            raise CallHungUp()

    async def _wait(self, fut: asyncio.Future[Any], timeout: float | None = None) -> Any:
        """Wait for ``fut`` unless the call goes away first (CallHungUp) or ``timeout`` passes."""
        self._check()
        done, _ = await asyncio.wait({fut, self._gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if fut in done and not fut.cancelled():
            return fut.result()
        if self.gone:
            raise CallHungUp()
        raise TimeoutError()

    # -- ARI events (called by the runtime in channel order) ------------------------------------------
    def deliver(self, event: ev.AriEvent) -> None:
        if isinstance(event, ev.ChannelDtmfReceived):
            if event.channel.id != self.channel_id:
                return
            self._digits.append(event.digit)
            self.emit(EventType.DTMF, {"digit": event.digit, "duration_ms": event.duration_ms})
            if self._digit_waiter is not None and not self._digit_waiter.done():
                self._digit_waiter.set_result(None)
        elif isinstance(event, ev.PlaybackStarted):
            self.emit(
                EventType.PLAYBACK_STARTED,
                {"playback_id": event.playback.id, "media": event.playback.media_uri},
            )
        elif isinstance(event, ev.PlaybackFinished):
            self.emit(
                EventType.PLAYBACK_FINISHED,
                {
                    "playback_id": event.playback.id,
                    "media": event.playback.media_uri,
                    "state": event.playback.state,
                },
            )
            fut = self._playbacks.pop(event.playback.id, None)
            if fut is not None and not fut.done():
                fut.set_result(event.playback.state)
        elif isinstance(event, (ev.RecordingFinished, ev.RecordingFailed)):
            rec_fut = self._recordings.pop(event.recording.name, None)
            if rec_fut is not None and not rec_fut.done():
                rec_fut.set_result(event.recording)
        elif isinstance(event, ev.ChannelStateChange):
            if event.channel.id == self.channel_id and event.channel.state == "Up" and not self.answered:
                self.answered = True
                self.emit(EventType.ANSWERED)
        elif isinstance(event, (ev.ChannelHangupRequest, ev.ChannelDestroyed)):
            leg = self.legs.get(event.channel.id)
            if leg is not None:
                self._leg_gone(leg, event)
                return
            # After we handed the channel back to the dialplan, the dialplan is who hangs up.
            by = "dialplan" if self.released else "remote"
            if isinstance(event, ev.ChannelDestroyed):
                self.destroyed = True
                self.record_hangup(event.cause, event.cause_txt, by=by)
            elif event.cause is not None:
                self.record_hangup(event.cause, "", by=by)
            # A remote BYE comes as a HangupRequest without cause: the cause follows in ChannelDestroyed.
            self.mark_gone()
        elif isinstance(event, ev.StasisStart):
            if event.channel.id == self.channel_id:
                # A call we placed was answered and entered the app (its arguments: e.g. the AMD verdict).
                self.channel = event.channel
                self.args = list(event.args)
                if not self.answered:
                    self.answered = True
                    self.emit(EventType.ANSWERED)
                if not self._answered_out.done():
                    self._answered_out.set_result(None)
                return
            leg = self.legs.get(event.channel.id)
            if leg is not None and not leg.answered.done():
                leg.answered.set_result(event.channel)
                self.emit(EventType.ANSWERED, {"endpoint": leg.endpoint}, channel_id=leg.channel_id)
        elif isinstance(event, ev.StasisEnd):
            leg = self.legs.get(event.channel.id)
            if leg is not None:
                leg.mark_gone()
                return
            self.mark_gone()

    def _leg_gone(self, leg: Leg, event: ev.ChannelHangupRequest | ev.ChannelDestroyed) -> None:
        if leg.gone and leg.cause is not None:
            return  # HangupRequest then Destroyed: record the hangup once
        leg.mark_gone()
        leg.cause = event.cause
        if not leg.answered.done():
            text = event.cause_txt if isinstance(event, ev.ChannelDestroyed) else ""
            leg.answered.set_exception(OriginateFailed(leg.endpoint, event.cause or 0, text))
            leg.answered.exception()
        if self.ended:
            return  # its StasisEnd already counted it gone and the call's record is closed: call_ended stays last
        self.emit(
            EventType.HANGUP,
            {"cause": event.cause, "by": "remote", "endpoint": leg.endpoint},
            channel_id=leg.channel_id,
        )

    def record_hangup(self, cause: int | None, cause_text: str, by: str) -> None:
        if not self.hangup_recorded:
            self.hangup_recorded = True
            self.hangup_cause, self.hangup_cause_text = cause, cause_text
            self.emit(EventType.HANGUP, {"cause": cause, "cause_text": cause_text, "by": by})

    # -- primitives ------------------------------------------------------------------------------------
    async def answer(self) -> None:
        self._check()
        try:
            await self.ari.channels.answer(self.channel_id)
        except (AriNotFound, AriConflict) as exc:
            raise CallHungUp() from exc
        if not self.answered:
            # Recorded when Asterisk confirms our request, not when its ChannelStateChange event happens to
            # arrive: so "answered" always comes before what the flow does next.
            self.answered = True
            self.emit(EventType.ANSWERED)

    async def wait_for(self, fut: asyncio.Future[Any], timeout: float | None = None) -> Any:
        """Await ``fut`` unless the caller hangs up first (CallHungUp) or ``timeout`` passes (TimeoutError)."""
        return await self._wait(fut, timeout)

    async def ensure_answered(self) -> None:
        """Answer if not yet answered. Media needs an answered channel; a caller who goes straight to an
        agent is answered only when the agent answers (as app_queue does), which keeps the answer off the
        routing path."""
        if not self.answered:
            await self.answer()

    async def play(
        self,
        media: str | Iterable[str],
        *,
        interrupt: str | None = None,
        lang: str | None = None,
        channel_id: str | None = None,
    ) -> str | None:
        """Play one or more media URIs and wait until they finish.

        ``interrupt``: digits that stop the playback (barge-in); the digit stays queued as input for the
        next ``collect``. Returns the interrupting digit or None. A digit typed ahead skips the prompt.
        ``channel_id``: play to one of the call's legs instead (e.g. a whisper to the agent).
        """
        self._check()
        if channel_id is None:
            await self.ensure_answered()
        items = [media] if isinstance(media, str) else list(media)
        if interrupt and self._pending_interrupt(interrupt):
            return self._pending_interrupt(interrupt)
        playback_id = str(uuid.uuid4())
        finished: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._playbacks[playback_id] = finished
        try:
            await self.ari.channels.play(
                channel_id or self.channel_id, items, playback_id=playback_id, lang=lang or self.language
            )
        except (AriNotFound, AriConflict) as exc:
            self._playbacks.pop(playback_id, None)
            raise CallHungUp() from exc
        if not interrupt:
            await self._wait(finished)
            return None
        while True:
            digit = self._pending_interrupt(interrupt)
            if digit:
                await self._stop_playback(playback_id)
                return digit
            waiter = self._new_digit_waiter()
            self._check()
            done, _ = await asyncio.wait(
                {finished, waiter, self._gone}, return_when=asyncio.FIRST_COMPLETED
            )
            if self.gone:
                raise CallHungUp()
            if finished in done:
                return None

    def _pending_interrupt(self, interrupt: str) -> str | None:
        for d in self._digits:
            if d in interrupt:
                return d
        return None

    async def _stop_playback(self, playback_id: str) -> None:
        self._playbacks.pop(playback_id, None)
        try:
            await self.ari.playbacks.stop(playback_id)
        except AriNotFound:
            pass  # it had just finished

    def _new_digit_waiter(self) -> asyncio.Future[None]:
        if self._digit_waiter is None or self._digit_waiter.done():
            self._digit_waiter = asyncio.get_running_loop().create_future()
        return self._digit_waiter

    def digit_waiter(self) -> asyncio.Future[None]:
        """Resolved when the caller presses a digit (to wait on it together with other things)."""
        return self._new_digit_waiter()

    def take_digits(self) -> str:
        """The digits pressed and not yet read, which are then forgotten."""
        digits = "".join(self._digits)
        self._digits.clear()
        return digits

    async def say_digits(self, digits: str) -> None:
        await self.play(f"digits:{digits}")

    async def next_digit(self, timeout: float) -> str | None:
        """The next digit the caller presses (type-ahead first), or None after ``timeout`` seconds."""
        self._check()
        if not self._digits:
            try:
                await self._wait(self._new_digit_waiter(), timeout)
            except TimeoutError:
                return None
        return self._digits.popleft() if self._digits else None

    async def gather(
        self,
        max_digits: int = 1,
        *,
        terminator: str = "#",
        first_timeout: float = 5.0,
        inter_timeout: float = 3.0,
    ) -> tuple[str, str]:
        """Collect up to ``max_digits`` digits. Returns (digits, how it ended): "max", "terminator" (not
        included in the digits) or "timeout" (``first_timeout`` before the first digit, ``inter_timeout``
        between digits)."""
        await self.ensure_answered()
        got = ""
        ended = "max"
        while len(got) < max_digits:
            digit = await self.next_digit(first_timeout if not got else inter_timeout)
            if digit is None:
                ended = "timeout"
                break
            if terminator and digit in terminator:
                ended = "terminator"
                break
            got += digit
        self.emit(EventType.DIGITS_COLLECTED, {"digits": got, "max_digits": max_digits, "ended": ended})
        return got, ended

    async def collect(
        self,
        max_digits: int = 1,
        *,
        terminator: str = "#",
        first_timeout: float = 5.0,
        inter_timeout: float = 3.0,
    ) -> str:
        """Like ``gather`` but only the digits."""
        digits, _ = await self.gather(
            max_digits, terminator=terminator, first_timeout=first_timeout, inter_timeout=inter_timeout
        )
        return digits

    def flush_digits(self) -> None:
        self._digits.clear()

    async def set_variable(self, name: str, value: str, *, on_channel: bool = False) -> None:
        self.variables[name] = value
        self.emit(EventType.VARIABLES_SET, {name: value})
        if on_channel:
            self._check()
            await self.ari.channels.set_variable(self.channel_id, name, value)

    async def record(
        self,
        name: str,
        *,
        max_seconds: int,
        beep: bool = True,
        max_silence_seconds: int = 5,
        terminate_on: str = "#",
        format: str = "wav",
    ) -> tuple[bool, float | None]:
        """Record the caller into stored recording ``name`` until ``terminate_on``, silence or ``max_seconds``.

        Returns (ok, duration in seconds). A caller hanging up ends the recording normally (it is kept)."""
        self._check()
        await self.ensure_answered()
        finished: asyncio.Future[ev.LiveRecording] = asyncio.get_running_loop().create_future()
        self._recordings[name] = finished
        try:
            await self.ari.channels.record(
                self.channel_id, name, format=format, max_duration_seconds=max_seconds,
                max_silence_seconds=max_silence_seconds, if_exists="overwrite", beep=beep,
                terminate_on=terminate_on,
            )
        except (AriNotFound, AriConflict) as exc:
            self._recordings.pop(name, None)
            raise CallHungUp() from exc
        try:
            rec = await self._wait(finished, max_seconds + 10)
        except CallHungUp:
            # Hanging up is how most callers end a message. Asterisk keeps what was recorded and ends the recording
            # with the channel: report it (its RecordingFinished may still come, else the stored file tells).
            kept = await self._kept_after_hangup(name, finished)
            if kept is None:
                raise
            return kept
        return rec.state == "done", float(rec.duration) if rec.duration is not None else None

    async def _kept_after_hangup(self, name: str, finished: asyncio.Future[ev.LiveRecording]
                                 ) -> tuple[bool, float | None] | None:
        try:
            if not finished.done():
                await asyncio.wait([finished], timeout=1.0)
        finally:
            self._recordings.pop(name, None)
        if finished.done() and not finished.cancelled() and finished.exception() is None:
            rec = finished.result()
            return rec.state == "done", float(rec.duration) if rec.duration is not None else None
        for _ in range(10):  # the file is closed as the channel goes
            try:
                await self.ari.recordings.get_stored(name)
                return True, None
            except AriNotFound:
                await asyncio.sleep(0.2)
            except AriError:
                return None
        return None

    async def hangup(self, reason: str = "normal") -> None:
        if self.gone:
            return
        cause, text = _REASON_CAUSE.get(reason, (None, reason))
        self.record_hangup(cause, text, by="callcore")
        try:
            await self.ari.channels.hangup(self.channel_id, reason)
        except AriNotFound:
            pass
        for leg in list(self.legs.values()):
            if not leg.gone:
                await self._hangup_leg(leg)

    async def _hangup_leg(self, leg: Leg) -> None:
        try:
            await self.ari.channels.hangup(leg.channel_id)
        except AriNotFound:
            pass

    async def continue_in_dialplan(
        self, context: str | None = None, extension: str | None = None, priority: int | None = None
    ) -> None:
        """Hand the channel back to the dialplan (after Stasis(), or to a given context)."""
        self._check()
        if self.claim is not None and not self.claim.done():
            # Subscribed before it leaves Stasis, or its ChannelDestroyed (the final cause) never reaches us.
            await asyncio.wait({self.claim})
        self.released = True
        try:
            await self.ari.channels.continue_in_dialplan(self.channel_id, context, extension, priority)
        except AriNotFound as exc:
            raise CallHungUp() from exc

    async def originate(
        self, endpoint: str, *, timeout: float = 30.0, caller_id: str | None = None,
        variables: dict[str, str] | None = None,
    ) -> Leg:
        """Ring ``endpoint`` into our app; returns once it answered. Raises OriginateFailed, CallHungUp."""
        self._check()
        leg = Leg(channel_id=str(uuid.uuid4()), endpoint=endpoint)
        self.legs[leg.channel_id] = leg
        self.runtime.adopt_leg(self, leg.channel_id)
        self.emit(EventType.ORIGINATED, {"endpoint": endpoint}, channel_id=leg.channel_id)
        try:
            await self.ari.channels.originate(
                self.runtime.dial_string(endpoint),
                app=self.ari.app,
                app_args=f"leg,{self.call_id}",
                channel_id=leg.channel_id,
                caller_id=caller_id or self.caller_number or None,
                timeout=int(timeout),
                originator=self.channel_id,
                variables=variables,
            )
            await self._wait(leg.answered, timeout + 5)
        except BaseException:
            if not leg.gone:
                await self._hangup_leg(leg)
            raise
        return leg

    async def bridge_with(self, leg: Leg) -> str:
        """Put the caller and ``leg`` in one mixing bridge (callcore owns it and destroys it at the end)."""
        self._check()
        pool = self.runtime.bridge_pool
        bridge_id = await pool.take()
        self.bridges.add(bridge_id)
        try:
            await self.ari.bridges.add_channel(bridge_id, [self.channel_id, leg.channel_id])
        except AriNotFound:
            # The pooled bridge was destroyed behind our back (someone cleaned up Asterisk): use a fresh one.
            self.bridges.discard(bridge_id)
            pool.forget(bridge_id)
            bridge_id = await pool.take(fresh=True)
            self.bridges.add(bridge_id)
            await self.ari.bridges.add_channel(bridge_id, [self.channel_id, leg.channel_id])
        self.emit(EventType.BRIDGED, {"bridge_id": bridge_id, "endpoint": leg.endpoint})
        return bridge_id

    async def wait_answered(self, timeout: float) -> None:
        """For a call callcore placed: until it is answered (CallHungUp if it ends first, TimeoutError)."""
        await self._wait(self._answered_out, timeout)

    def watch_recording(self, name: str, finished: asyncio.Future[ev.LiveRecording]) -> None:
        """Resolve ``finished`` with the recording when Asterisk reports ``name`` finished or failed."""
        self._recordings[name] = finished

    @property
    def gone_future(self) -> asyncio.Future[None]:
        """Resolved when the caller's channel is gone (to wait on it together with other things)."""
        return self._gone

    async def wait_until_gone(self, timeout: float | None = None) -> None:
        await asyncio.wait({self._gone}, timeout=timeout)


# ARI hangup reasons and the Q.850 cause Asterisk sends for them (recorded like a remote hangup's cause).
_REASON_CAUSE = {
    "normal": (16, "Normal Clearing"),
    "busy": (17, "User busy"),
    "no_answer": (19, "No user response"),
    "answered_elsewhere": (26, "Answered elsewhere"),
    "congestion": (34, "Circuit/channel congestion"),
}
