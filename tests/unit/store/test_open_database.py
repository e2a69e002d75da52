"""A CLI command run next to a live callcore (report, migrate, token, leads) uses the service's embedded
PostgreSQL and leaves it running: only the process that started the server stops it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from callcore.app import close_database, open_database
from callcore.store.embedded import SYSTEM_USER, EmbeddedPostgres, ensure_system_user, traversal_problem


@pytest.fixture
def state_dir(tmp_path: Path):
    if os.geteuid() == 0:  # the server runs as its own user, which cannot enter pytest's private temp dir
        ensure_system_user(SYSTEM_USER)
        if traversal_problem(tmp_path, SYSTEM_USER) is not None:
            path = Path(tempfile.mkdtemp(prefix="callcore-test-state-"))
            os.chmod(path, 0o755)
            yield path
            shutil.rmtree(path, ignore_errors=True)
            return
    yield tmp_path


async def test_only_the_process_that_started_the_embedded_server_stops_it(state_dir: Path) -> None:
    config = SimpleNamespace(database=SimpleNamespace(url=None), state_dir=state_dir)
    service = await open_database(config)  # type: ignore[arg-type]  # the running callcore's
    assert service.started_here and service.embedded is not None
    try:
        command = await open_database(config)  # type: ignore[arg-type]  # e.g. `callcore report ivr`
        assert not command.started_here and command.dsn == service.dsn
        await close_database(command)
        assert EmbeddedPostgres(state_dir / "pgdata").is_running()  # the service's database is still up
    finally:
        await close_database(service)
    assert not EmbeddedPostgres(state_dir / "pgdata").is_running()
