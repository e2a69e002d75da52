import asyncio
import time

import pytest

from callcore.ivr.commands import Lookup
from callcore.ivr.lookup import LookupClient
from tests.fakes.crm import FakeCrm


@pytest.fixture
async def crm():
    server = await FakeCrm(slow_seconds=3).start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def client():
    c = LookupClient()
    try:
        yield c
    finally:
        await c.close()


def lookup(url: str, **kw) -> Lookup:
    return Lookup(method=kw.pop("method", "GET"), url=url, params=kw.pop("params", {}), timeout=kw.pop("timeout", 2.0))


async def test_given_a_known_account_then_the_json_object_comes_back(crm, client):
    done = await client.run(lookup(f"{crm.url}/customers", params={"account": "123456", "caller": "+31201234567"}))
    assert done.ok and done.status == 200 and done.data["segment"] == "gold" and done.error is None
    assert crm.requests == [{"account": "123456", "caller": "+31201234567"}]
    post = await client.run(lookup(f"{crm.url}/customers", method="POST", params={"account": "654321"}))
    assert post.ok and post.data["segment"] == "silver"


async def test_given_a_slow_integrator_then_the_lookup_ends_at_its_timeout(crm, client):
    t = time.monotonic()
    done = await client.run(lookup(f"{crm.url}/slow", timeout=0.3))
    assert time.monotonic() - t < 1.0
    assert not done.ok and done.error == "timeout" and done.status is None and 250 <= done.latency_ms < 1000


async def test_given_a_slow_lookup_then_other_lookups_are_not_blocked(crm, client):
    slow = asyncio.create_task(client.run(lookup(f"{crm.url}/slow", timeout=2.0)))
    await asyncio.sleep(0.05)
    t = time.monotonic()
    fast = await client.run(lookup(f"{crm.url}/customers", params={"account": "123456"}))
    assert fast.ok and time.monotonic() - t < 0.5
    slow.cancel()


@pytest.mark.parametrize("path,error", [
    ("/broken", "bad json"), ("/list", "json is not an object"), ("/error", "http 500"),
    ("/customers?account=000", "http 404"),
])
async def test_given_a_bad_answer_then_the_lookup_fails_with_the_reason(crm, client, path, error):
    done = await client.run(lookup(crm.url + path))
    assert not done.ok and done.error == error and done.data is None


async def test_given_nobody_listening_then_the_lookup_fails_fast(client):
    done = await client.run(lookup("http://127.0.0.1:9/customers"))
    assert not done.ok and done.status is None and done.error.startswith("connection failed")
