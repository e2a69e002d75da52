from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from callcore.ari.client import AriClient
from tests.fakes.fake_ari import APP, PASSWORD, USER, FakeAri
from tests.fakes.sinks import RecordingSink


@pytest.fixture
async def fake_ari() -> AsyncIterator[FakeAri]:
    fake = FakeAri()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    fake.base_url = f"http://127.0.0.1:{server.port}"  # type: ignore[attr-defined]
    try:
        yield fake
    finally:
        await fake.drop_connections()
        await server.close()


@pytest.fixture
async def ari(fake_ari: FakeAri) -> AsyncIterator[AriClient]:
    client = AriClient(fake_ari.base_url, USER, PASSWORD, APP, request_timeout=5)  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()
