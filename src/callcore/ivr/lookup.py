"""CRM lookups for IVR flows: one HTTP request per lookup node, bounded by a strict timeout.

A slow or dead integrator must never hold a caller longer than the node's timeout, nor slow other calls:
every lookup is its own awaited request on a shared connection pool, cancelled at the deadline.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from callcore.ivr.commands import Lookup, LookupDone

MAX_BODY_BYTES = 256 * 1024  # a CRM answer for one caller is small; anything bigger is a mistake


class LookupClient:
    def __init__(self, *, user_agent: str = "callcore-ivr") -> None:
        self._session: aiohttp.ClientSession | None = None
        self._user_agent = user_agent

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": self._user_agent, "Accept": "application/json"},
                connector=aiohttp.TCPConnector(limit=100, ttl_dns_cache=60),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def run(self, cmd: Lookup) -> LookupDone:
        started = time.monotonic()

        def done(ok: bool, status: int | None, data: dict | None, error: str | None) -> LookupDone:
            return LookupDone(ok, status, data, round((time.monotonic() - started) * 1000, 1), error)

        try:
            async with asyncio.timeout(cmd.timeout):
                kwargs: dict = {"headers": cmd.headers}
                if cmd.method == "GET":
                    kwargs["params"] = cmd.params
                else:
                    kwargs["json"] = cmd.params
                async with self._get_session().request(cmd.method, cmd.url, **kwargs) as resp:
                    raw = await resp.content.read(MAX_BODY_BYTES + 1)
                    if not 200 <= resp.status < 300:
                        return done(False, resp.status, None, f"http {resp.status}")
                    if len(raw) > MAX_BODY_BYTES:
                        return done(False, resp.status, None, "response too large")
                    try:
                        data = json.loads(raw)
                    except ValueError:
                        return done(False, resp.status, None, "bad json")
                    if not isinstance(data, dict):
                        return done(False, resp.status, None, "json is not an object")
                    return done(True, resp.status, data, None)
        except TimeoutError:
            return done(False, None, None, "timeout")
        except aiohttp.ClientConnectorError as exc:
            return done(False, None, None, f"connection failed: {exc.os_error or exc}")
        except (aiohttp.ClientError, OSError) as exc:
            return done(False, None, None, f"{type(exc).__name__}: {exc}")
