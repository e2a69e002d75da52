"""Test doubles shared by the retention and GDPR tests."""

from __future__ import annotations


class FakeDeleter:
    """A RecordingDeleter: remembers what it deleted; ``fail`` names raise, ``gone`` names were not there."""

    def __init__(self, fail: set[str] | None = None, gone: set[str] | None = None) -> None:
        self.deleted: list[str] = []
        self.fail = fail or set()
        self.gone = gone or set()

    async def delete(self, name: str) -> bool:
        if name in self.fail:
            raise ConnectionError("Asterisk unreachable")
        self.deleted.append(name)
        return name not in self.gone
