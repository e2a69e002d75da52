"""Typed ARI resources (the JSON objects Asterisk returns and embeds in events).

Only the fields callcore reads are declared; unknown fields are ignored so a newer Asterisk that adds
fields never breaks parsing.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AriModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class CallerId(AriModel):
    name: str = ""
    number: str = ""


class DialplanCEP(AriModel):
    context: str = ""
    exten: str = ""
    priority: int = 0
    app_name: str = ""
    app_data: str = ""


class Channel(AriModel):
    id: str
    name: str = ""
    state: str = ""  # Down, Rsrvd, OffHook, Dialing, Ring, Ringing, Up, Busy, ...
    caller: CallerId = Field(default_factory=CallerId)
    connected: CallerId = Field(default_factory=CallerId)
    accountcode: str = ""
    dialplan: DialplanCEP = Field(default_factory=DialplanCEP)
    creationtime: str = ""
    language: str = "en"
    channelvars: dict[str, str] | None = None


class Bridge(AriModel):
    id: str
    technology: str = ""
    bridge_type: str = ""
    bridge_class: str = ""
    name: str = ""
    channels: list[str] = Field(default_factory=list)


class Playback(AriModel):
    id: str
    media_uri: str = ""
    target_uri: str = ""  # "channel:<id>" or "bridge:<id>"
    language: str = ""
    state: str = ""  # queued, playing, continuing, done, failed


class LiveRecording(AriModel):
    name: str
    format: str = ""
    target_uri: str = ""
    state: str = ""  # queued, recording, paused, done, failed, canceled
    duration: int | None = None
    cause: str | None = None


class StoredRecording(AriModel):
    name: str
    format: str = ""


class FormatLangPair(AriModel):
    language: str
    format: str


class Sound(AriModel):
    id: str
    text: str = ""
    formats: list[FormatLangPair] = Field(default_factory=list)


class Variable(AriModel):
    value: str = ""


class DeviceState(AriModel):
    name: str
    state: str


class Application(AriModel):
    name: str
    channel_ids: list[str] = Field(default_factory=list)
    bridge_ids: list[str] = Field(default_factory=list)
    endpoint_ids: list[str] = Field(default_factory=list)
    device_names: list[str] = Field(default_factory=list)


class AsteriskSystemInfo(AriModel):
    version: str = ""
    entity_id: str = ""


class AsteriskInfo(AriModel):
    system: AsteriskSystemInfo | None = None


class AsteriskPing(AriModel):
    asterisk_id: str = ""
    ping: str = ""
    timestamp: str = ""


def target_id(target_uri: str) -> tuple[str, str]:
    """Split a playback/recording target such as ``channel:123.4`` into ("channel", "123.4")."""
    kind, _, ident = target_uri.partition(":")
    return kind, ident
