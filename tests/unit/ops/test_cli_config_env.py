"""`callcore-admin` runs any `callcore ...` command from the service's home with $CALLCORE_CONFIG set to the
installed file: every command reads that file when no --config is given (not only the ops commands)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def run(tmp_path: Path, *args: str, env_config: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CALLCORE_CONFIG"}
    env["PYTHONPATH"] = str(REPO / "src")
    if env_config is not None:
        env["CALLCORE_CONFIG"] = env_config
    return subprocess.run([sys.executable, "-m", "callcore.cli", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_commands_read_the_config_named_by_callcore_config_from_any_directory(tmp_path: Path) -> None:
    installed = str(REPO / "config" / "callcore.yaml")
    assert run(tmp_path, "check-config", env_config=installed).returncode == 0
    without = run(tmp_path, "check-config", env_config=None)  # no ./config/callcore.yaml here
    assert without.returncode != 0 and "config/callcore.yaml" in without.stderr
    missing = run(tmp_path, "report", "dialer", "retention_2026", env_config=str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr  # report, leads, dnc, kpis, token alike
