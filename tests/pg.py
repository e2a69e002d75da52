"""PostgreSQL fixtures for the test suite (``from tests.pg import *`` in tests/conftest.py).

* ``pg_server`` (session): one real PostgreSQL for the whole session: an :class:`EmbeddedPostgres` in a temporary
  directory (fsync off: the cluster is thrown away), stopped at teardown even when tests fail. With
  ``CALLCORE_TEST_DATABASE_URL`` set, an external server is used instead (an :class:`ExternalPostgres`, which
  cannot be stopped: tests that stop the server skip themselves).
* ``pg_dsn`` (function): a fresh, empty database ``t_<hex>`` on that server, dropped after the test.
* ``pg_pool`` (function): an asyncpg pool (callcore's JSON codecs) on ``pg_dsn`` with the migrations applied.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest
import pytest_asyncio

from callcore.store.embedded import SYSTEM_USER, EmbeddedPostgres, ensure_system_user, traversal_problem
from callcore.store.migrations import migrate
from callcore.store.pool import create_pool

__all__ = ["ExternalPostgres", "pg_dsn", "pg_pool", "pg_server", "replace_database"]

T = TypeVar("T")


class ExternalPostgres:
    """A server we did not start (``CALLCORE_TEST_DATABASE_URL``): same ``dsn``/``dsn_for`` as EmbeddedPostgres."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def dsn_for(self, database: str) -> str:
        return replace_database(self.dsn, database)

    def is_running(self) -> bool:
        return True


def replace_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous fixture code, on its own loop in a worker thread (so it
    never interferes with pytest-asyncio's loop)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
        return ex.submit(asyncio.run, coro).result()


def _data_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bool]:
    """A directory for the session's cluster; (path, whether we must remove it ourselves).

    As root, PostgreSQL runs as the ``callcore-pg`` user, which cannot traverse pytest's private
    ``/tmp/pytest-of-root`` (mode 0700): then the cluster goes into a fresh directory under the system temp dir."""
    base = tmp_path_factory.mktemp("pg")
    if os.geteuid() != 0:
        return base / "data", False
    ensure_system_user(SYSTEM_USER)
    if traversal_problem(base, SYSTEM_USER) is None:
        return base / "data", False
    return Path(tempfile.mkdtemp(prefix="callcore-test-pg-")), True  # empty: becomes the data dir itself


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres | ExternalPostgres]:
    external = os.environ.get("CALLCORE_TEST_DATABASE_URL")
    if external:
        yield ExternalPostgres(external)
        return
    data_dir, remove = _data_root(tmp_path_factory)
    server = EmbeddedPostgres(data_dir, settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
    try:
        server.start(timeout=60)
        yield server
    finally:
        try:
            server.stop()
        finally:
            if remove:
                shutil.rmtree(data_dir, ignore_errors=True)
            shutil.rmtree(server.socket_dir, ignore_errors=True)


async def _admin(dsn: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_dsn(pg_server: EmbeddedPostgres | ExternalPostgres) -> Iterator[str]:
    """DSN of a fresh empty database, dropped after the test."""
    name = f"t_{uuid.uuid4().hex}"
    admin = pg_server.dsn
    _run_sync(_admin(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield pg_server.dsn_for(name)
    finally:
        if pg_server.is_running():
            _run_sync(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest_asyncio.fixture
async def pg_pool(pg_dsn: str) -> AsyncIterator[Any]:
    """asyncpg pool on a fresh database with callcore's migrations applied."""
    await migrate(pg_dsn)
    pool = await create_pool(pg_dsn, min_size=1, max_size=5)
    try:
        yield pool
    finally:
        try:
            await asyncio.wait_for(pool.close(), 10)
        except (asyncio.TimeoutError, OSError):
            pool.terminate()
