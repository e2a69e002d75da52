"""A local webhook receiver for the tests: verifies every signature, follows a script of failures, de-duplicates."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from callcore.webhooks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

SECRET = "s3cret-for-tests-only-0123456789"
SECRET_ENV = "CALLCORE_WEBHOOK_TEST_SECRET"


class Receiver:
    """``script``: what to do with the first requests, in arrival order: ``"500"`` (answer 500 without processing),
    ``"timeout"`` (process, then answer too late: callcore retries, the receiver sees a duplicate), ``"hang"``
    (never answer in time, nothing processed), ``"302"``; later requests (or ``always``) are accepted with 200."""

    def __init__(self, script: Sequence[str] = (), *, always: str | None = None, secret: str = SECRET,
                 late_seconds: float = 0.6) -> None:
        self.script = list(script)
        self.always = always
        self.secret = secret.encode()
        self.late_seconds = late_seconds
        self.requests: list[dict[str, Any]] = []  # every request, in arrival order
        self.bad_signatures = 0
        self.unique: dict[str, dict[str, Any]] = {}  # event_id -> body, first processing only
        self.order: list[str] = []  # event ids in first-processing order
        self.duplicates: list[str] = []  # event ids processed again (de-duplicated)
        self.timed_out: list[str] = []  # event ids whose request was answered too late
        self.other_path_hits = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        app.router.add_post("/elsewhere", self._elsewhere)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _elsewhere(self, request: web.Request) -> web.Response:
        self.other_path_hits += 1
        return web.Response(status=200)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        signed = verify(self.secret, request.headers.get(TIMESTAMP_HEADER), body, request.headers.get(SIGNATURE_HEADER))
        payload = json.loads(body)
        self.requests.append({"headers": dict(request.headers), "body": payload, "signed": signed})
        if not signed:
            self.bad_signatures += 1
            return web.Response(status=401)
        assert request.headers[EVENT_ID_HEADER] == payload["event_id"]
        n = len(self.requests) - 1
        action = self.always or (self.script[n] if n < len(self.script) else "ok")
        if action == "500":
            return web.Response(status=500, text="receiver down")
        if action == "302":
            raise web.HTTPFound("/elsewhere")
        if action == "hang":
            await asyncio.sleep(30)
        event_id = payload["event_id"]
        if event_id in self.unique:
            self.duplicates.append(event_id)  # de-duplicated: processed once only
        else:
            self.unique[event_id] = payload
            self.order.append(event_id)
        if action == "timeout":
            self.timed_out.append(event_id)
            await asyncio.sleep(self.late_seconds)
        return web.Response(status=204)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
