"""Typed REST client for the parts of ARI callcore uses.

Why our own client: the PyPI ``ari`` package (ari-py) is Python-2 era, synchronous and unmaintained since
2014; other wrappers are either untyped or do not reconnect. This is a thin layer over aiohttp: one method per
ARI operation, typed results, typed errors (see docs/decisions.md).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

from callcore.ari.errors import AriUnavailable, error_for_status
from callcore.ari.models import (
    Application,
    AsteriskInfo,
    AsteriskPing,
    Bridge,
    Channel,
    DeviceState,
    LiveRecording,
    Playback,
    Sound,
    StoredRecording,
)

Params = Mapping[str, Any]


def _query(params: Params | None) -> dict[str, str]:
    """ARI wants booleans as true/false, lists comma-joined, and no empty parameters."""
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            out[key] = ",".join(str(v) for v in value)
        else:
            out[key] = str(value)
    return out


class AriClient:
    """REST side of ARI. One instance per Asterisk node; share it, it pools connections."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        app: str,
        *,
        request_timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session = session
        self._owns_session = session is None
        self.channels = Channels(self)
        self.bridges = Bridges(self)
        self.playbacks = Playbacks(self)
        self.recordings = Recordings(self)
        self.applications = Applications(self)
        self.device_states = DeviceStates(self)
        self.asterisk = AsteriskResource(self)
        self.sounds = Sounds(self)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._owns_session = True
        return self._session

    @property
    def auth_headers(self) -> dict[str, str]:
        return dict(self._headers)

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()

    async def request(
        self, method: str, path: str, params: Params | None = None, body: Any = None
    ) -> Any:
        url = f"{self.base_url}/ari{path}"
        try:
            async with self.session.request(
                method, url, params=_query(params), json=body, headers=self._headers
            ) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise error_for_status(method, path, resp.status, _message(text))
                if not text:
                    return None
                return json.loads(text)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise AriUnavailable(method, path, 0, f"{type(exc).__name__}: {exc}") from exc


def _message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:200]
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])
    return text.strip()[:200]


class _Resource:
    def __init__(self, client: AriClient) -> None:
        self._c = client


class Channels(_Resource):
    async def list(self) -> list[Channel]:
        return [Channel.model_validate(c) for c in await self._c.request("GET", "/channels")]

    async def get(self, channel_id: str) -> Channel:
        return Channel.model_validate(await self._c.request("GET", f"/channels/{channel_id}"))

    async def answer(self, channel_id: str) -> None:
        await self._c.request("POST", f"/channels/{channel_id}/answer")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        """Hang up. ``reason`` is an ARI reason (normal, busy, congestion, no_answer, ...)."""
        await self._c.request("DELETE", f"/channels/{channel_id}", {"reason": reason})

    async def ring(self, channel_id: str) -> None:
        await self._c.request("POST", f"/channels/{channel_id}/ring")

    async def ring_stop(self, channel_id: str) -> None:
        await self._c.request("DELETE", f"/channels/{channel_id}/ring")

    async def play(
        self,
        channel_id: str,
        media: Iterable[str],
        *,
        playback_id: str,
        lang: str | None = None,
    ) -> Playback:
        """Queue media (``sound:x``, ``digits:123``, ``number:42``, ``recording:name``, ``tone:ring``).

        The caller chooses ``playback_id`` so it can wait for PlaybackFinished even if the event arrives
        before this HTTP response does.
        """
        data = await self._c.request(
            "POST",
            f"/channels/{channel_id}/play/{playback_id}",
            {"media": list(media), "lang": lang},
        )
        return Playback.model_validate(data)

    async def originate(
        self,
        endpoint: str,
        *,
        app: str | None = None,
        app_args: str | None = None,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        caller_id: str | None = None,
        timeout: int = 30,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        formats: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel:
        """Dial ``endpoint`` (e.g. ``PJSIP/agent01``) into our app, or into a dialplan context (AMD)."""
        params = {
            "endpoint": endpoint,
            "app": app,
            "appArgs": app_args,
            "context": context,
            "extension": extension,
            "priority": priority,
            "callerId": caller_id,
            "timeout": timeout,
            "channelId": channel_id,
            "otherChannelId": other_channel_id,
            "originator": originator,
            "formats": formats,
        }
        body = {"variables": dict(variables)} if variables else None
        return Channel.model_validate(await self._c.request("POST", "/channels", params, body))

    async def create(
        self,
        endpoint: str,
        app: str,
        *,
        app_args: str | None = None,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        formats: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel:
        """Create a channel without dialing it yet (then ``dial``): lets callers set up before ringing."""
        params = {
            "endpoint": endpoint,
            "app": app,
            "appArgs": app_args,
            "channelId": channel_id,
            "otherChannelId": other_channel_id,
            "originator": originator,
            "formats": formats,
        }
        body = {"variables": dict(variables)} if variables else None
        return Channel.model_validate(
            await self._c.request("POST", "/channels/create", params, body)
        )

    async def dial(self, channel_id: str, caller: str | None = None, timeout: int = 30) -> None:
        await self._c.request(
            "POST", f"/channels/{channel_id}/dial", {"caller": caller, "timeout": timeout}
        )

    async def continue_in_dialplan(
        self,
        channel_id: str,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> None:
        params = {"context": context, "extension": extension, "priority": priority, "label": label}
        await self._c.request("POST", f"/channels/{channel_id}/continue", params)

    async def get_variable(self, channel_id: str, variable: str) -> str:
        data = await self._c.request(
            "GET", f"/channels/{channel_id}/variable", {"variable": variable}
        )
        return str((data or {}).get("value", ""))

    async def set_variable(self, channel_id: str, variable: str, value: str) -> None:
        await self._c.request(
            "POST", f"/channels/{channel_id}/variable", {"variable": variable, "value": value}
        )

    async def snoop(
        self,
        channel_id: str,
        app: str,
        *,
        spy: str = "none",
        whisper: str = "none",
        app_args: str | None = None,
        snoop_id: str | None = None,
    ) -> Channel:
        """A channel that hears (spy) and/or speaks into (whisper) a call: supervisor listen/whisper."""
        params = {"app": app, "spy": spy, "whisper": whisper, "appArgs": app_args, "snoopId": snoop_id}
        return Channel.model_validate(
            await self._c.request("POST", f"/channels/{channel_id}/snoop", params)
        )

    async def record(
        self,
        channel_id: str,
        name: str,
        *,
        format: str = "wav",
        max_duration_seconds: int = 0,
        max_silence_seconds: int = 0,
        if_exists: str = "fail",
        beep: bool = False,
        terminate_on: str = "none",
    ) -> LiveRecording:
        params = {
            "name": name,
            "format": format,
            "maxDurationSeconds": max_duration_seconds,
            "maxSilenceSeconds": max_silence_seconds,
            "ifExists": if_exists,
            "beep": beep,
            "terminateOn": terminate_on,
        }
        return LiveRecording.model_validate(
            await self._c.request("POST", f"/channels/{channel_id}/record", params)
        )

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        await self._c.request("POST", f"/channels/{channel_id}/moh", {"mohClass": moh_class})

    async def stop_moh(self, channel_id: str) -> None:
        await self._c.request("DELETE", f"/channels/{channel_id}/moh")


class Bridges(_Resource):
    async def list(self) -> list[Bridge]:
        return [Bridge.model_validate(b) for b in await self._c.request("GET", "/bridges")]

    async def get(self, bridge_id: str) -> Bridge:
        return Bridge.model_validate(await self._c.request("GET", f"/bridges/{bridge_id}"))

    async def create(
        self, bridge_id: str | None = None, *, type: str = "mixing", name: str | None = None
    ) -> Bridge:
        params = {"type": type, "bridgeId": bridge_id, "name": name}
        return Bridge.model_validate(await self._c.request("POST", "/bridges", params))

    async def add_channel(
        self, bridge_id: str, channel_ids: list[str], *, role: str | None = None
    ) -> None:
        params = {"channel": channel_ids, "role": role}
        await self._c.request("POST", f"/bridges/{bridge_id}/addChannel", params)

    async def remove_channel(self, bridge_id: str, channel_ids: list[str]) -> None:
        await self._c.request(
            "POST", f"/bridges/{bridge_id}/removeChannel", {"channel": channel_ids}
        )

    async def play(
        self, bridge_id: str, media: Iterable[str], *, playback_id: str, lang: str | None = None
    ) -> Playback:
        data = await self._c.request(
            "POST", f"/bridges/{bridge_id}/play/{playback_id}", {"media": list(media), "lang": lang}
        )
        return Playback.model_validate(data)

    async def record(
        self, bridge_id: str, name: str, *, format: str = "wav", max_duration_seconds: int = 0,
        if_exists: str = "fail", beep: bool = False,
    ) -> LiveRecording:
        params = {
            "name": name,
            "format": format,
            "maxDurationSeconds": max_duration_seconds,
            "ifExists": if_exists,
            "beep": beep,
        }
        return LiveRecording.model_validate(
            await self._c.request("POST", f"/bridges/{bridge_id}/record", params)
        )

    async def start_moh(self, bridge_id: str, moh_class: str | None = None) -> None:
        await self._c.request("POST", f"/bridges/{bridge_id}/moh", {"mohClass": moh_class})

    async def stop_moh(self, bridge_id: str) -> None:
        await self._c.request("DELETE", f"/bridges/{bridge_id}/moh")

    async def destroy(self, bridge_id: str) -> None:
        await self._c.request("DELETE", f"/bridges/{bridge_id}")


class Playbacks(_Resource):
    async def get(self, playback_id: str) -> Playback:
        return Playback.model_validate(await self._c.request("GET", f"/playbacks/{playback_id}"))

    async def stop(self, playback_id: str) -> None:
        await self._c.request("DELETE", f"/playbacks/{playback_id}")

    async def control(self, playback_id: str, operation: str) -> None:
        """operation: restart, pause, unpause, reverse, forward."""
        await self._c.request(
            "POST", f"/playbacks/{playback_id}/control", {"operation": operation}
        )


class Recordings(_Resource):
    async def get_live(self, name: str) -> LiveRecording:
        return LiveRecording.model_validate(
            await self._c.request("GET", f"/recordings/live/{name}")
        )

    async def stop(self, name: str) -> None:
        await self._c.request("POST", f"/recordings/live/{name}/stop")

    async def cancel(self, name: str) -> None:
        await self._c.request("DELETE", f"/recordings/live/{name}")

    async def pause(self, name: str) -> None:
        """Pause a live recording: the paused time is left out of the file (e.g. card details said)."""
        await self._c.request("POST", f"/recordings/live/{name}/pause")

    async def unpause(self, name: str) -> None:
        await self._c.request("DELETE", f"/recordings/live/{name}/pause")

    async def list_stored(self) -> list[StoredRecording]:
        data = await self._c.request("GET", "/recordings/stored")
        return [StoredRecording.model_validate(r) for r in data]

    async def get_stored(self, name: str) -> StoredRecording:
        return StoredRecording.model_validate(
            await self._c.request("GET", f"/recordings/stored/{name}")
        )

    async def delete_stored(self, name: str) -> None:
        await self._c.request("DELETE", f"/recordings/stored/{name}")


class Applications(_Resource):
    async def list(self) -> list[Application]:
        return [Application.model_validate(a) for a in await self._c.request("GET", "/applications")]

    async def get(self, app: str) -> Application:
        return Application.model_validate(await self._c.request("GET", f"/applications/{app}"))

    async def subscribe(self, app: str, event_sources: list[str]) -> Application:
        data = await self._c.request(
            "POST", f"/applications/{app}/subscription", {"eventSource": event_sources}
        )
        return Application.model_validate(data)

    async def set_event_filter(
        self, app: str, allowed: list[str] | None = None, disallowed: list[str] | None = None
    ) -> Application:
        """Ask Asterisk to send only these event types: every event costs CPU on both sides."""
        body: dict[str, Any] = {}
        if allowed is not None:
            body["allowed"] = [{"type": t} for t in allowed]
        if disallowed is not None:
            body["disallowed"] = [{"type": t} for t in disallowed]
        data = await self._c.request("PUT", f"/applications/{app}/eventFilter", None, body)
        return Application.model_validate(data)


class DeviceStates(_Resource):
    async def list(self) -> list[DeviceState]:
        return [DeviceState.model_validate(d) for d in await self._c.request("GET", "/deviceStates")]

    async def get(self, name: str) -> DeviceState:
        return DeviceState.model_validate(await self._c.request("GET", f"/deviceStates/{name}"))

    async def update(self, name: str, state: str) -> None:
        await self._c.request("PUT", f"/deviceStates/{name}", {"deviceState": state})

    async def delete(self, name: str) -> None:
        await self._c.request("DELETE", f"/deviceStates/{name}")


class Sounds(_Resource):
    async def list(self, lang: str | None = None) -> list[Sound]:
        """Every sound Asterisk can play (with its languages): used to check flows for missing prompts."""
        data = await self._c.request("GET", "/sounds", {"lang": lang})
        return [Sound.model_validate(s) for s in data]


class AsteriskResource(_Resource):
    async def info(self) -> AsteriskInfo:
        return AsteriskInfo.model_validate(await self._c.request("GET", "/asterisk/info"))

    async def ping(self) -> AsteriskPing:
        return AsteriskPing.model_validate(await self._c.request("GET", "/asterisk/ping"))
