"""Health: ``/healthz`` (the process answers) and ``/readyz`` (it can do its job).

``/readyz`` runs the checks the app registers, by name; the app passes ``ari`` (the event stream is connected),
``database`` (a ``SELECT 1`` answers: :func:`database_check`) and ``config`` (a config is loaded). A check is a
callable returning a bool or an awaitable of one; it gets ``CHECK_TIMEOUT`` seconds, an exception or a timeout
counts as not ready. Both endpoints need no token (load balancers and orchestrators call them).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from pydantic import Field

from callcore.api.common import Out
from callcore.api.errors import ApiError
from callcore.api.routing import ApiRequest, RouteTable

Check = Callable[[], "bool | Awaitable[bool]"]
READY_CHECKS = web.AppKey("ready_checks", dict)
CHECK_TIMEOUT = 2.0

routes = RouteTable()
TAGS = ("health",)


class Healthy(Out):
    status: str = "ok"


class CheckResult(Out):
    ok: bool
    error: str | None = None


class Ready(Out):
    status: str = Field(description="'ready'")
    checks: dict[str, CheckResult]


async def run_check(check: Check, timeout: float = CHECK_TIMEOUT) -> CheckResult:
    try:
        result = check()
        if inspect.isawaitable(result):
            result = await asyncio.wait_for(result, timeout)
        return CheckResult(ok=bool(result), error=None if result else "not ready")
    except TimeoutError:
        return CheckResult(ok=False, error=f"no answer within {timeout:g} s")
    except Exception as exc:  # noqa: BLE001 - a failing check means "not ready", never a 500
        return CheckResult(ok=False, error=f"{type(exc).__name__}: {exc}")


def database_check(db: Any) -> Check:
    """A check that the database answers ``SELECT 1``."""

    async def check() -> bool:
        return await db.fetchval("SELECT 1") == 1

    return check


@routes.get("/healthz", summary="The process is up", tags=TAGS, response=Healthy)
async def healthz(req: ApiRequest) -> Healthy:
    return Healthy()


@routes.get("/readyz", summary="ARI connected, database reachable, config loaded", tags=TAGS, response=Ready,
            errors=(503,), description="503 (with every check's result in `error.details.checks`) when a check "
                                       "fails.")
async def readyz(req: ApiRequest) -> Ready:
    checks: Mapping[str, Check] = req.request.app.get(READY_CHECKS, {})
    names = list(checks)
    results = await asyncio.gather(*(run_check(checks[n]) for n in names))
    by_name = dict(zip(names, results))
    failing = [n for n, r in by_name.items() if not r.ok]
    if not checks:
        raise ApiError(503, "not_ready", "no readiness checks are registered", {"checks": {}})
    if failing:
        raise ApiError(503, "not_ready", f"not ready: {', '.join(failing)}",
                       {"checks": {n: r.model_dump() for n, r in by_name.items()}})
    return Ready(status="ready", checks=by_name)


__all__ = ["CHECK_TIMEOUT", "READY_CHECKS", "Check", "database_check", "routes", "run_check"]
