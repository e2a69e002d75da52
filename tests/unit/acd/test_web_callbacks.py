"""Web callbacks keep finished requests a day, then forget them (memory stays bounded on a long-running server)."""

from __future__ import annotations

from datetime import timedelta

from callcore.acd.web_callbacks import WebCallbacks, _Request
from callcore.events import utcnow


class _Acd:
    callback_listener = None


def test_finished_requests_older_than_a_day_are_forgotten_and_live_ones_kept() -> None:
    callbacks = WebCallbacks(_Acd())  # type: ignore[arg-type]
    long_ago = utcnow() - timedelta(days=2)
    callbacks.requests = {
        "done": _Request("done", "+31201234567", "sales", {}, "", long_ago, entry=None, status="done"),  # type: ignore[arg-type]
        "waiting": _Request("waiting", "+31201234568", "sales", {}, "", long_ago, entry=None),  # type: ignore[arg-type]
        "fresh": _Request("fresh", "+31201234569", "sales", {}, "", utcnow(), entry=None, status="failed"),  # type: ignore[arg-type]
    }
    callbacks._forget_old(utcnow())
    assert sorted(callbacks.requests) == ["fresh", "waiting"]
