"""Typed ARI events.

Each known event is a pydantic model with a literal ``type``; anything else becomes ``UnknownEvent`` (so a
newer Asterisk never crashes the stream), and a known type with a broken body raises ``MalformedEvent``
for the stream to log and skip. No raw dicts leave this layer.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import Field, TypeAdapter, ValidationError

from callcore.ari.models import (
    AriModel,
    Bridge,
    CallerId,
    Channel,
    DeviceState,
    LiveRecording,
    Playback,
    target_id,
)


class AriEvent(AriModel):
    type: str
    application: str = ""
    timestamp: str = ""
    asterisk_id: str = ""

    @property
    def routing_key(self) -> str:
        """What orders this event: events with the same key are handled strictly in arrival order.

        Channel events key on the channel; playbacks and recordings on their target (so a
        PlaybackFinished is ordered with the DTMF of the same channel); bridge-only events on the bridge.
        """
        channel = getattr(self, "channel", None)
        if isinstance(channel, Channel):
            return channel.id
        return ""


class StasisStart(AriEvent):
    type: Literal["StasisStart"]
    args: list[str] = Field(default_factory=list)
    channel: Channel
    replace_channel: Channel | None = None


class StasisEnd(AriEvent):
    type: Literal["StasisEnd"]
    channel: Channel


class ChannelCreated(AriEvent):
    type: Literal["ChannelCreated"]
    channel: Channel


class ChannelStateChange(AriEvent):
    type: Literal["ChannelStateChange"]
    channel: Channel


class ChannelDtmfReceived(AriEvent):
    type: Literal["ChannelDtmfReceived"]
    digit: str
    duration_ms: int = 0
    channel: Channel


class ChannelHangupRequest(AriEvent):
    type: Literal["ChannelHangupRequest"]
    cause: int | None = None
    soft: bool | None = None
    channel: Channel


class ChannelDestroyed(AriEvent):
    type: Literal["ChannelDestroyed"]
    cause: int = 0
    cause_txt: str = ""
    channel: Channel


class ChannelVarset(AriEvent):
    type: Literal["ChannelVarset"]
    variable: str
    value: str = ""
    channel: Channel | None = None


class ChannelCallerId(AriEvent):
    type: Literal["ChannelCallerId"]
    caller_presentation: int = 0
    caller_presentation_txt: str = ""
    channel: Channel


class ChannelDialplan(AriEvent):
    type: Literal["ChannelDialplan"]
    dialplan_app: str = ""
    dialplan_app_data: str = ""
    channel: Channel


class ChannelConnectedLine(AriEvent):
    type: Literal["ChannelConnectedLine"]
    channel: Channel


class ChannelEnteredBridge(AriEvent):
    type: Literal["ChannelEnteredBridge"]
    bridge: Bridge
    channel: Channel | None = None


class ChannelLeftBridge(AriEvent):
    type: Literal["ChannelLeftBridge"]
    bridge: Bridge
    channel: Channel


class ChannelHold(AriEvent):
    type: Literal["ChannelHold"]
    channel: Channel
    musicclass: str = ""


class ChannelUnhold(AriEvent):
    type: Literal["ChannelUnhold"]
    channel: Channel


class ChannelTalkingStarted(AriEvent):
    type: Literal["ChannelTalkingStarted"]
    channel: Channel


class ChannelTalkingFinished(AriEvent):
    type: Literal["ChannelTalkingFinished"]
    channel: Channel
    duration: int = 0


class ChannelUserevent(AriEvent):
    type: Literal["ChannelUserevent"]
    eventname: str
    channel: Channel | None = None
    userevent: dict[str, Any] = Field(default_factory=dict)


class _BridgeKeyed(AriEvent):
    bridge: Bridge

    @property
    def routing_key(self) -> str:
        return f"bridge:{self.bridge.id}"


class BridgeCreated(_BridgeKeyed):
    type: Literal["BridgeCreated"]


class BridgeDestroyed(_BridgeKeyed):
    type: Literal["BridgeDestroyed"]


class _PlaybackKeyed(AriEvent):
    playback: Playback

    @property
    def routing_key(self) -> str:
        kind, ident = target_id(self.playback.target_uri)
        return ident if kind == "channel" else f"{kind}:{ident}"


class PlaybackStarted(_PlaybackKeyed):
    type: Literal["PlaybackStarted"]


class PlaybackContinuing(_PlaybackKeyed):
    type: Literal["PlaybackContinuing"]


class PlaybackFinished(_PlaybackKeyed):
    type: Literal["PlaybackFinished"]


class _RecordingKeyed(AriEvent):
    recording: LiveRecording

    @property
    def routing_key(self) -> str:
        kind, ident = target_id(self.recording.target_uri)
        return ident if kind == "channel" else f"{kind}:{ident}"


class RecordingStarted(_RecordingKeyed):
    type: Literal["RecordingStarted"]


class RecordingFinished(_RecordingKeyed):
    type: Literal["RecordingFinished"]


class RecordingFailed(_RecordingKeyed):
    type: Literal["RecordingFailed"]


class Dial(AriEvent):
    """Progress of a dial: ``peer`` is the channel being dialed; ``dialstatus`` e.g. RINGING, ANSWER, BUSY."""

    type: Literal["Dial"]
    peer: Channel
    caller: Channel | None = None
    dialstatus: str = ""
    dialstring: str = ""
    forward: str = ""

    @property
    def routing_key(self) -> str:
        return self.peer.id


class DeviceStateChanged(AriEvent):
    type: Literal["DeviceStateChanged"]
    device_state: DeviceState


class ApplicationReplacedEvent(AriEvent):
    type: Literal["ApplicationReplaced"]


class UnknownEvent(AriEvent):
    """An event type callcore does not model; kept (with its body) so it can be logged, never acted on."""

    body: dict[str, Any] = Field(default_factory=dict)


class MalformedEvent(ValueError):
    """A known event type whose body does not match the model (or a frame that is not an event)."""


EVENT_TYPES: dict[str, type[AriEvent]] = {
    cls.model_fields["type"].annotation.__args__[0]: cls  # type: ignore[union-attr]
    for cls in (
        StasisStart, StasisEnd, ChannelCreated, ChannelStateChange, ChannelDtmfReceived,
        ChannelHangupRequest, ChannelDestroyed, ChannelVarset, ChannelCallerId, ChannelDialplan,
        ChannelConnectedLine, ChannelEnteredBridge, ChannelLeftBridge, ChannelHold, ChannelUnhold,
        ChannelTalkingStarted, ChannelTalkingFinished, ChannelUserevent, BridgeCreated, BridgeDestroyed,
        PlaybackStarted, PlaybackContinuing, PlaybackFinished, RecordingStarted, RecordingFinished,
        RecordingFailed, Dial, DeviceStateChanged, ApplicationReplacedEvent,
    )
}


# Every known event, chosen by its ``type`` before validation (pydantic's tagged union: no trying of each model).
_KNOWN_EVENT = TypeAdapter(Annotated[Union[tuple(EVENT_TYPES.values())], Field(discriminator="type")])


def parse_event_json(text: str | bytes) -> AriEvent:
    """Turn one WebSocket text frame into a typed event.

    A known, well-formed event is decoded and validated in one pass by pydantic's JSON parser, which builds no
    intermediate dict and never turns the fields callcore ignores into Python objects (half the CPU of
    ``json.loads`` + ``parse_event``, measured with bench/call_cpu.py). Anything else — an unknown type, a broken
    body, text that is not JSON — goes the ``parse_event`` way, so it ends exactly as it always did.
    """
    try:
        return _KNOWN_EVENT.validate_json(text)
    except ValidationError:
        return parse_event(json.loads(text))


def parse_event(data: Any) -> AriEvent:
    """Turn one decoded WebSocket frame into a typed event."""
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise MalformedEvent(f"not an ARI event: {str(data)[:200]}")
    model = EVENT_TYPES.get(data["type"])
    if model is None:
        return UnknownEvent(
            type=data["type"],
            application=str(data.get("application", "")),
            timestamp=str(data.get("timestamp", "")),
            body=data,
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise MalformedEvent(f"{data['type']}: {exc.errors(include_url=False)}") from exc


__all__ = [name for name in dir() if name[0].isupper()] + ["parse_event", "parse_event_json", "CallerId"]
