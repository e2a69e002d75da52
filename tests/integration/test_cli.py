"""The command line as ops staff use it: real processes, real PostgreSQL, real sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def callcore(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callcore.cli", *args], capture_output=True, text=True, timeout=60,
        cwd=REPO, env={**os.environ, **(env or {})},
    )


def test_version_and_help():
    assert callcore("--version").stdout.startswith("callcore ")
    out = callcore("--help").stdout
    for command in ("run", "check-config", "migrate", "asterisk"):
        assert command in out


def test_given_a_database_url_when_migrating_twice_then_the_second_run_has_nothing_to_do(pg_server, tmp_path):
    import uuid

    from tests.pg import _admin, _run_sync, replace_database

    name = f"t_cli_{uuid.uuid4().hex[:8]}"
    _run_sync(_admin(pg_server.dsn_for("postgres"), f'CREATE DATABASE "{name}"'))
    dsn = replace_database(pg_server.dsn_for("postgres"), name)
    config = tmp_path / "c.yaml"
    config.write_text("ari: {password: x}\n")
    first = callcore("migrate", "-c", str(config), env={"CALLCORE_DATABASE_URL": dsn})
    assert first.returncode == 0, first.stderr
    from callcore.store.migrations import load_migrations

    shipped = [m.version for m in load_migrations()]
    assert f"applied migrations: {shipped}" in first.stdout
    second = callcore("migrate", "-c", str(config), env={"CALLCORE_DATABASE_URL": dsn})
    assert second.returncode == 0 and "up to date" in second.stdout
    _run_sync(_admin(pg_server.dsn_for("postgres"), f'DROP DATABASE "{name}" WITH (FORCE)'))


def test_given_a_bad_config_when_running_then_nothing_starts_and_errors_have_lines(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("ari:\n  password: x\n  url: not-a-url\ninbound:\n  dids: {'1000': no_such_flow}\n")
    res = callcore("run", "-c", str(config))
    assert res.returncode == 2
    assert f"{config}:3: ari.url" in res.stderr
    assert "no_such_flow" in res.stderr and "ARI connected" not in res.stderr


def test_asterisk_status_and_cli_talk_to_the_sandbox(asterisk):
    status = callcore("asterisk", "status")
    assert status.returncode == 0 and "ARI answers" in status.stdout
    cli = callcore("asterisk", "cli", "pjsip show endpoints")
    assert cli.returncode == 0 and "agent01" in cli.stdout and "trunk" in cli.stdout


def test_check_config_draws_a_flow_as_a_tree_and_as_graphviz():
    example = str(REPO / "config" / "callcore.yaml")
    tree = callcore("check-config", example, "--graph", "telco")
    assert tree.returncode == 0, tree.stderr
    assert "check_hours [hours]" in tree.stdout and "9 → retention [play]" in tree.stdout
    dot = callcore("check-config", example, "--graph", "telco", "--dot")
    assert dot.returncode == 0 and dot.stdout.lstrip().startswith("digraph")
    assert '"main_menu" -> "retention"' in dot.stdout
    missing = callcore("check-config", example, "--graph", "nope")
    assert missing.returncode == 1 and "no flow named 'nope'" in missing.stderr
