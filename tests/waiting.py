"""Waiting in tests: poll a condition with a deadline, fail with what was awaited (never hang)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def wait_until(pred: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)
