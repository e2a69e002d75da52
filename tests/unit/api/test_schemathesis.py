"""The API against its own document: schemathesis generates requests for every operation of ``/openapi.json``
(valid and invalid ones, bounded) and checks that no answer is a 5xx and that every answer is documented: its
status code is listed for the operation and its body matches that status's schema.

The real aiohttp app (``callcore.api.server.create_app``) is served on a real port in a thread of its own (the
requests library that schemathesis uses is synchronous), with:

* PostgreSQL for everything the API reads or writes there itself: call records, KPIs, leads, do-not-call lists,
  the callback quota, idempotency keys and API tokens (``tests/pg.py``'s embedded server, a fresh database);
* the fakes of ``apifakes`` / ``outboundfakes`` for the telephony services (ACD, dialer, conversations, callbacks)
  — they follow the services' Protocols, so the API's handling of their answers is what is tested.

Run it alone: ``.venv/bin/pytest -q tests/unit/api/test_schemathesis.py`` (``SCHEMATHESIS_EXAMPLES=300
SCHEMATHESIS_RANDOM=1`` for a longer run with other inputs). See docs/api.md.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from callcore.api.auth import Authenticator, PgTokens
from callcore.api.config_routes import CONFIG_CONTROL
from callcore.api.idempotency import PgIdempotencyStore
from callcore.api.live_events import EVENT_HUB, EventHub
from callcore.api.health import database_check
from callcore.api.metrics import Metrics
from callcore.api.openapi import build_openapi
from callcore.api.outbound_services import OUTBOUND, PgCallbackQuota, PgDncStore, PgLeadStore
from callcore.api.server import MAX_REQUEST_LINE, ApiServer, api_routes, create_app
from callcore.api.services import PgCallStore
from callcore.api.status import STATUS_SOURCE
from callcore.kpi.definitions import KpiSettings
from callcore.kpi.store import PgKpis
from callcore.ops.status import build_status
from callcore.store.migrations import migrate
from callcore.store.pool import create_pool
from tests.pg import replace_database
from tests.unit.api.apifakes import CALL1, TOKENS, static_tokens, world
from tests.unit.api.test_api_config import BASE as CONFIG_BASE
from tests.unit.api.test_api_config import Control as ConfigControl  # the config routes over the real loader
from tests.unit.api.outboundfakes import outbound

# Examples per operation (62 operations): the default keeps the whole test near half a minute on
# two cores; raise it for a deeper run.
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
ADMIN = TOKENS["admin"][0]

class LiveApi:
    """The API app with its PostgreSQL pool on an event loop in a background thread."""

    def __init__(self, dsn: str, tmp: Path) -> None:
        self.dsn = dsn
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="schemathesis-api", daemon=True)
        self.url = ""
        self.spec: dict[str, Any] = {}

    def run(self, coro: Any, timeout: float = 60) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        await migrate(self.dsn)
        self.pool = await create_pool(self.dsn, min_size=1, max_size=5)
        await self.pool.execute(
            "INSERT INTO calls (call_id, direction, did, caller_number, started_at) VALUES ($1, 'inbound', '1000', "
            "'0612345678', now())", CALL1)
        w = world()
        services = replace(w.services(), store=PgCallStore(self.pool),
                           kpis=PgKpis(self.pool, KpiSettings(queues=("sales", "billing"), agents=("a1", "a2")),
                                       cache_seconds=0))
        app = create_app(services, authenticator=Authenticator([static_tokens(), PgTokens(self.pool)]),
                         idempotency=PgIdempotencyStore(self.pool, ttl=3600), metrics=Metrics(),
                         max_body_bytes=65536, ready_checks={"ari": lambda: True,
                                                             "database": database_check(self.pool),
                                                             "config": lambda: True})
        app[OUTBOUND] = outbound(leads=PgLeadStore(self.pool), dnc=PgDncStore(self.pool),
                                 quota=PgCallbackQuota(self.pool))
        (self.tmp / "callcore.yaml").write_text(CONFIG_BASE)
        app[CONFIG_CONTROL] = ConfigControl(self.tmp / "callcore.yaml")
        app[STATUS_SOURCE] = lambda: build_status(SimpleNamespace(acd=w.acd, runtime=w.registry))
        app[EVENT_HUB] = EventHub()
        self.server = ApiServer(app, host="127.0.0.1", port=0, shutdown_timeout=1)  # the server callcore runs
        await self.server.start()
        self.url = self.server.url

    async def _stop(self) -> None:
        await self.server.stop()
        await asyncio.wait_for(self.pool.close(), 10)

    def stop(self) -> None:
        try:
            self.run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture(scope="module")
def live_api(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    import asyncpg

    name = f"t_{uuid.uuid4().hex}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_server.dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    api = LiveApi(replace_database(pg_server.dsn, name), tmp_path_factory.mktemp("schemathesis"))
    try:
        api.start()
        yield api
    finally:
        try:
            api.stop()
        finally:
            if pg_server.is_running():
                asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# The document is made from the route table at collection time (one pytest item per operation); a test below
# checks that the running app serves exactly this document.
schema = schemathesis.openapi.from_dict(build_openapi(list(api_routes())))
schema.config.update(headers={"Authorization": f"Bearer {ADMIN}"}, request_timeout=30)
# Deterministic by default (a CI failure reproduces); SCHEMATHESIS_RANDOM=1 explores other inputs.
schema.config.generation.update(max_examples=EXAMPLES, deterministic=os.environ.get("SCHEMATHESIS_RANDOM") != "1",
                                database="none")


def _listed(case: Any) -> set[str]:
    return set(case.operation.definition.raw.get("responses", {})) - {"default"}


@schemathesis.check
def status_code_is_listed(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every status the API answers must be one the operation lists: ``default`` (the error body of a bug's 500)
    does not count, so a 500 always fails here."""
    if case.method.upper() != case.operation.method.upper():
        return None  # a probe with another method (TRACE, ...): aiohttp's 405, not this operation's answer
    if str(response.status_code) not in _listed(case):
        raise AssertionError(f"undocumented status code {response.status_code}: the operation lists "
                             f"{sorted(_listed(case))}")
    return None


@schemathesis.check
def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx, except the ones an operation documents on purpose: 501 (POST/PUT /campaigns: campaigns are
    YAML, docs/api.md) and 503 (/readyz not ready, a service not running, callbacks busy)."""
    status = response.status_code
    if status >= 500 and not (status in (501, 503) and str(status) in _listed(case)):
        raise AssertionError(f"server error {status}: {response.text[:500]}")
    return None


CHECKS = [no_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          status_code_is_listed]


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: Any, live_api: LiveApi) -> None:
    case.call_and_validate(base_url=live_api.url, checks=CHECKS)


def test_the_served_document_is_the_one_the_routes_make(live_api: LiveApi) -> None:
    import requests

    served = requests.get(f"{live_api.url}/openapi.json", timeout=10).json()
    assert served == build_openapi(list(api_routes()))


def test_every_documented_request_line_fits_the_servers_limit() -> None:
    """The longest request line the document allows — every path and query parameter at its maxLength, each
    character percent-encoded as 4 UTF-8 bytes (12 characters) — fits ``MAX_REQUEST_LINE``."""
    spec = build_openapi(list(api_routes()))
    worst: list[tuple[int, str]] = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            size = len(f"{method.upper()}  HTTP/1.1") + len(path)
            for p in op.get("parameters", []):
                if p["in"] == "header":
                    continue
                s = p["schema"]
                if "enum" in s:
                    chars = max(len(str(v)) for v in s["enum"])
                elif s.get("type") in ("integer", "number", "boolean") or s.get("format") in ("date-time", "uuid"):
                    chars = 40
                else:
                    assert "maxLength" in s, f"{method.upper()} {path}: {p['name']} has no maxLength"
                    chars = s["maxLength"]
                size += len(p["name"]) + 2 + 12 * chars
            worst.append((size, f"{method.upper()} {path}"))
    assert max(worst)[0] <= MAX_REQUEST_LINE, max(worst)
