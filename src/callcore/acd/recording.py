"""Call recording: Asterisk records the conversation's bridge (both sides mixed) into its recording spool.

Names are ``<call id>-<n>`` so every file maps back to its call; the events ``recording_started``,
``recording_paused``, ``recording_resumed`` and ``recording_stopped`` carry the name, format and Asterisk's
stored-recording path, and the stop event the duration Asterisk reports. A pause leaves the paused stretch
out of the file (card numbers read out), which is why pausing is not the same as muting.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from callcore.ari import events as ev
from callcore.calls.call import Call

log = structlog.get_logger("callcore.acd")

RECORDING_FORMAT = "wav"
# Where Asterisk keeps stored recordings (relative to its spool); ARI's /recordings/stored/{name} serves them.
SPOOL_DIR = "/var/spool/asterisk/recording"


class RecordingEvent:
    STARTED = "recording_started"  # data: name, format, path, queue
    PAUSED = "recording_paused"  # data: name
    RESUMED = "recording_resumed"  # data: name
    STOPPED = "recording_stopped"  # data: name, format, path, duration_seconds, state


class Recorder:
    def __init__(self, call: Call, bridge_id: str, queue: str) -> None:
        self.call = call
        self.bridge_id = bridge_id
        self.queue = queue
        call.recording_count += 1
        self.name = f"{call.call_id}-{call.recording_count}"
        self.active = False
        self.paused = False
        self._finished: asyncio.Future[ev.LiveRecording] = asyncio.get_running_loop().create_future()

    @property
    def path(self) -> str:
        return f"{SPOOL_DIR}/{self.name}.{RECORDING_FORMAT}"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "format": RECORDING_FORMAT, "path": self.path, "active": self.active,
                "paused": self.paused}

    async def start(self) -> None:
        # RecordingFinished for a bridge recording is keyed on the bridge: route it to this call.
        self.call.runtime.adopt_leg(self.call, f"bridge:{self.bridge_id}")
        self.call.watch_recording(self.name, self._finished)
        await self.call.ari.bridges.record(self.bridge_id, self.name, format=RECORDING_FORMAT, if_exists="fail")
        self.active = True
        self.call.emit(RecordingEvent.STARTED, {"name": self.name, "format": RECORDING_FORMAT, "path": self.path,
                                                "queue": self.queue})

    async def control(self, operation: str) -> None:
        ari = self.call.ari
        if operation == "pause":
            if self.paused:
                return
            await ari.recordings.pause(self.name)
            self.paused = True
            self.call.emit(RecordingEvent.PAUSED, {"name": self.name})
        elif operation in ("resume", "unpause"):
            if not self.paused:
                return
            await ari.recordings.unpause(self.name)
            self.paused = False
            self.call.emit(RecordingEvent.RESUMED, {"name": self.name})
        elif operation == "stop":
            await self.finish()
        else:
            raise ValueError(f"unknown recording operation {operation!r} (start, pause, resume, stop)")

    async def finish(self) -> None:
        """Stop (if still running) and record the outcome once Asterisk reports the file closed."""
        if not self.active:
            return
        self.active = False
        try:
            await self.call.ari.recordings.stop(self.name)
        except Exception as exc:  # noqa: BLE001 - it ended with its bridge already
            log.info("recording already stopped", name=self.name, error=str(exc))
        duration: float | None = None
        state = "done"
        try:
            rec = await asyncio.wait_for(asyncio.shield(self._finished), 3.0)
            duration, state = rec.duration, rec.state
        except (TimeoutError, asyncio.CancelledError):
            state = "unknown"  # the event did not come (bridge destroyed first): the file is still there
        self.call.emit(RecordingEvent.STOPPED, {"name": self.name, "format": RECORDING_FORMAT, "path": self.path,
                                                "duration_seconds": duration, "state": state})
