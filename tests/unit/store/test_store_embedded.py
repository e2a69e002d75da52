"""EmbeddedPostgres checks that need no running server."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from callcore.store.embedded import EmbeddedPostgres, EmbeddedPostgresError, free_port, traversal_problem, wheel_bin_dir


def test_wheel_binaries_present() -> None:
    for name in ("initdb", "pg_ctl", "postgres", "psql"):
        assert os.access(wheel_bin_dir() / name, os.X_OK)


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_refuses_non_empty_non_pg_dir(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    with pytest.raises(EmbeddedPostgresError, match="neither empty nor a PostgreSQL data directory"):
        EmbeddedPostgres(tmp_path).start()


def test_port_remembered_and_dsn(tmp_path: Path) -> None:
    (tmp_path / "callcore-port").write_text("54999\n")
    pg = EmbeddedPostgres(tmp_path)
    assert pg.port == 54999
    assert pg.dsn == "postgresql://postgres@127.0.0.1:54999/callcore"
    assert not pg.is_running()
    pg.stop()  # idempotent on a server that never ran
    assert len(str(pg.socket_dir)) < 60


@pytest.mark.skipif(os.geteuid() != 0, reason="the system user exists only when running as root")
def test_traversal_problem_names_the_private_dir() -> None:
    import shutil
    import tempfile

    from callcore.store.embedded import SYSTEM_USER, ensure_system_user

    ensure_system_user(SYSTEM_USER)
    base = Path(tempfile.mkdtemp(prefix="callcore-unit-"))  # not under pytest's private /tmp/pytest-of-root
    try:
        base.chmod(0o755)
        private = base / "private"
        (private / "inner").mkdir(parents=True)
        private.chmod(0o700)
        problem = traversal_problem(private / "inner", SYSTEM_USER)
        assert problem is not None and f"cannot traverse {private} " in problem
        private.chmod(0o711)
        assert traversal_problem(private / "inner", SYSTEM_USER) is None
    finally:
        shutil.rmtree(base)
