"""The aiohttp application of the API and :class:`ApiServer`, which serves it (loopback by default).

Wiring in the composition root (``callcore.app``), after the services exist::

    api = ApiServer.from_settings(cfg.api, services, pool, metrics=metrics, ready_checks={
        "ari": lambda: app.stream.stats.connected, "database": database_check(pool), "config": lambda: True})
    await api.start()     # ... and await api.stop() before the pool closes
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog
from aiohttp import web

from callcore.api import agents, calls, docs_page, health, metrics, openapi, queues
from callcore.api.auth import Authenticator, PgTokens, StaticTokens, TokenStore
from callcore.api.config import ApiSettings
from callcore.api.errors import MAX_BODY_BYTES, Handler, error_middleware
from callcore.api.health import READY_CHECKS, Check
from callcore.api.idempotency import IdempotencyStore, PgIdempotencyStore
from callcore.api.metrics import METRICS, Metrics
from callcore.api.openapi import OPENAPI_CACHE
from callcore.api.routing import AUTHENTICATOR, IDEMPOTENCY, SERVICES, RouteTable
from callcore.api.services import ApiServices

log = structlog.get_logger("callcore.api")

DEFAULT_MAX_BODY = 65_536
# The longest request line aiohttp accepts (its default is 8190 bytes). Query parameters are documented with a
# maxLength in characters; percent-encoded, one character may take 12 bytes, so a 1024-character cursor alone
# needs more than the default. A unit test checks every operation's longest documented request line fits.
MAX_REQUEST_LINE = 16_384


def api_routes() -> RouteTable:
    """Every route of the API, in the order the document lists them."""
    from callcore.api import kpis  # GET /kpis/..., see kpis.py and docs/kpis.md
    from callcore.api import live_events  # GET /events (WebSocket), see live_events.py
    from callcore.api import status  # GET /status (`callcore status`), see status.py
    from callcore.api import config_routes  # /config: validate, dry-run, reload

    from callcore.api import callbacks, campaigns  # campaigns, leads, DNC, preview; "call me now" callbacks

    return (agents.routes + queues.routes + calls.routes + campaigns.routes + callbacks.routes + kpis.routes
            + live_events.routes + health.routes
            + status.routes + config_routes.routes + metrics.routes + openapi.routes + docs_page.routes + wallboard_routes())


def wallboard_routes() -> RouteTable:
    """``GET /wallboard``: the supervisors' live page (callcore.wallboard, docs/wallboard.md)."""
    from callcore.wallboard import page

    return page.routes


def _metrics_middleware(m: Metrics) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            m.observe_request(request.method, route, status, time.perf_counter() - start)

    return observe


def create_app(
    services: ApiServices,
    *,
    authenticator: Authenticator,
    idempotency: IdempotencyStore,
    metrics: Metrics | None = None,
    ready_checks: Mapping[str, Check] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    routes: RouteTable | None = None,
) -> web.Application:
    m = metrics if metrics is not None else Metrics()
    # Metrics outermost: it sees the status the error middleware produced.
    app = web.Application(middlewares=[_metrics_middleware(m), error_middleware], client_max_size=max_body_bytes)
    app[SERVICES] = services
    app[AUTHENTICATOR] = authenticator
    app[IDEMPOTENCY] = idempotency
    app[METRICS] = m
    app[READY_CHECKS] = dict(ready_checks or {})
    app[MAX_BODY_BYTES] = max_body_bytes
    app[OPENAPI_CACHE] = {}
    (routes if routes is not None else api_routes()).register(app)
    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiServer:
    """Serves an API app on ``host:port`` (``port=0``: any free port, see :attr:`port` after start)."""

    def __init__(self, app: web.Application, *, host: str = "127.0.0.1", port: int = 8080,
                 shutdown_timeout: float = 5.0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None

    @classmethod
    def from_settings(
        cls,
        settings: ApiSettings,
        services: ApiServices,
        db: object,
        *,
        metrics: Metrics | None = None,
        ready_checks: Mapping[str, Check] | None = None,
    ) -> ApiServer:
        """Tokens from the config and the database; Idempotency-Keys in the database."""
        stores: list[TokenStore] = [StaticTokens.from_settings(settings.tokens),
                                    PgTokens(db, cache_seconds=settings.token_cache_seconds)]
        app = create_app(
            services,
            authenticator=Authenticator(stores),
            idempotency=PgIdempotencyStore(db, ttl=settings.idempotency_hours * 3600),
            metrics=metrics,
            ready_checks=ready_checks,
            max_body_bytes=settings.max_body_bytes,
        )
        return cls(app, host=settings.host, port=settings.port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        if not is_loopback(self.host):
            log.warning("the API listens beyond loopback without TLS; put a TLS reverse proxy in front "
                        "(docs/api.md)", host=self.host)
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=self.shutdown_timeout,
                               max_line_size=MAX_REQUEST_LINE)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        addresses = runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        log.info("API listening", url=self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
            log.info("API stopped")


__all__ = ["MAX_REQUEST_LINE", "ApiServer", "api_routes", "create_app", "is_loopback"]
