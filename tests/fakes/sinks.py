"""An EventSink that keeps events in memory, for unit tests."""

from __future__ import annotations

from callcore.events import CallEvent


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[CallEvent] = []

    def emit(self, event: CallEvent) -> None:
        self.events.append(event)

    def types(self, call_id: object | None = None) -> list[str]:
        return [e.type for e in self.events if call_id is None or e.call_id == call_id]
