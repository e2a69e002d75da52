"""Suite-wide fixtures: PostgreSQL (tests/pg.py) and, for integration tests, the real Asterisk sandbox."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pg import *  # noqa: F401,F403  (pg_server, pg_dsn, pg_pool)


def _integration_opted_out() -> bool:
    return os.environ.get("CALLCORE_SKIP_INTEGRATION") == "1"


@pytest.fixture(scope="session")
def asterisk() -> Iterator[object]:
    """The real Asterisk sandbox, up for the whole session; stopped at the end if this session started it.

    It never skips silently: if it cannot start, every test using it fails with the reason. Only
    CALLCORE_SKIP_INTEGRATION=1 (an explicit opt-out for a laptop without root) skips them.
    """
    if _integration_opted_out():
        pytest.skip("CALLCORE_SKIP_INTEGRATION=1: integration tests explicitly opted out")
    from callcore.sandbox.asterisk import AsteriskSandbox, SandboxError

    sandbox = AsteriskSandbox(log=lambda _msg: None)
    already_running = sandbox.status().running
    try:
        sandbox.up(timeout=180)
    except SandboxError as exc:
        pytest.fail(f"the Asterisk sandbox could not start, so integration tests cannot run:\n{exc}", pytrace=False)
    try:
        yield sandbox
    finally:
        if not already_running:
            sandbox.down()
