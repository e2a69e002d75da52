"""A small integrator (CRM) HTTP service on 127.0.0.1 for lookup tests: known accounts, a slow endpoint,
broken answers. Requests are recorded."""

from __future__ import annotations

import asyncio

from aiohttp import web

CUSTOMERS = {
    "123456": {"id": "C-1001", "segment": "gold", "account": {"open_balance": 42, "status": "active"}},
    "654321": {"id": "C-2002", "segment": "silver", "account": {"open_balance": 0, "status": "active"}},
}

# Known callers (by caller number, as the IVR's identify step asks).
CALLERS = {"+31612345678": "123456"}


class FakeCrm:
    def __init__(self, slow_seconds: float = 5.0) -> None:
        self.slow_seconds = slow_seconds
        self.requests: list[dict[str, str]] = []
        self.app = web.Application()
        self.app.router.add_get("/customers", self._customers)
        self.app.router.add_post("/customers", self._customers_post)
        self.app.router.add_get("/slow", self._slow)
        self.app.router.add_get("/broken", self._broken)
        self.app.router.add_get("/list", self._list)
        self.app.router.add_get("/error", self._error)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> FakeCrm:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _found(self, params: dict[str, str]) -> web.Response:
        self.requests.append(params)
        account = params.get("account") or CALLERS.get(params.get("caller", ""), "")
        customer = CUSTOMERS.get(account)
        if customer is None:
            return web.json_response({"message": "unknown account"}, status=404)
        return web.json_response(customer)

    async def _customers(self, request: web.Request) -> web.Response:
        return self._found(dict(request.query))

    async def _customers_post(self, request: web.Request) -> web.Response:
        return self._found({k: str(v) for k, v in (await request.json()).items()})

    async def _slow(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.query))
        await asyncio.sleep(self.slow_seconds)
        return web.json_response({"segment": "too-late"})

    async def _broken(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>not json</html>", content_type="text/html")

    async def _list(self, request: web.Request) -> web.Response:
        return web.json_response([1, 2, 3])

    async def _error(self, request: web.Request) -> web.Response:
        return web.json_response({"message": "boom"}, status=500)
