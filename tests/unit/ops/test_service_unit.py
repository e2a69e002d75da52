"""deploy/: the systemd units, the production config template and install.sh."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
Unit = dict[str, list[tuple[str, str]]]


def parse_unit(path: Path) -> Unit:
    """systemd's unit syntax: [Section], Key=Value (keys may repeat), '#'/';' comments, '\\' continuations."""
    sections: Unit = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path.name}: {line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not Key=Value: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: Unit, section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def value(unit: Unit, section: str, key: str) -> str:
    found = values(unit, section, key)
    assert found, f"[{section}] {key}= is missing"
    return found[-1]


@pytest.fixture(scope="module")
def service() -> Unit:
    return parse_unit(DEPLOY / "callcore.service")


def seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+)(s|min)?", text)
    assert m, text
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def test_the_service_runs_callcore_as_its_own_user_and_restarts_on_failure(service):
    assert value(service, "Service", "User") == "callcore" and value(service, "Service", "Group") == "callcore"
    assert value(service, "Service", "ExecStart") == \
        "/opt/callcore/venv/bin/callcore run --config /etc/callcore/callcore.yaml"
    assert value(service, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert value(service, "Service", "Restart") == "on-failure"
    assert seconds(value(service, "Service", "RestartSec")) >= 1
    assert value(service, "Service", "RestartPreventExitStatus") == "2"  # an invalid config: no restart loop
    assert value(service, "Service", "KillMode") == "mixed" and value(service, "Service", "KillSignal") == "SIGTERM"
    assert value(service, "Service", "EnvironmentFile") == "-/etc/callcore/env"
    assert value(service, "Service", "StateDirectory") == "callcore"
    assert value(service, "Service", "LogsDirectory") == "callcore"
    assert value(service, "Install", "WantedBy") == "multi-user.target"
    env = " ".join(values(service, "Service", "Environment"))
    assert "CALLCORE_MIGRATIONS_DIR=/opt/callcore/src/sql" in env


def test_the_stop_timeout_covers_the_drain():
    import yaml

    config = yaml.safe_load((DEPLOY / "callcore.yaml").read_text())
    drain = config["calls"]["drain_seconds"]
    stop = seconds(value(parse_unit(DEPLOY / "callcore.service"), "Service", "TimeoutStopSec"))
    assert stop >= drain + 60, "TimeoutStopSec must cover drain + closing + flushing + the embedded PostgreSQL"


def test_the_service_is_hardened(service):
    expected = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes", "RestrictNamespaces": "yes", "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes", "SystemCallArchitectures": "native", "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
    }
    for key, want in expected.items():
        assert value(service, "Service", key) == want, key
    assert value(service, "Service", "RestrictAddressFamilies").split() == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert "@system-service" in values(service, "Service", "SystemCallFilter")
    assert not values(service, "Service", "MemoryDenyWriteExecute")  # the embedded PostgreSQL's JIT needs W+X


def test_type_notify_only_when_the_app_tells_systemd_it_is_ready(service):
    kind = value(service, "Service", "Type")
    app = (REPO / "src" / "callcore" / "app.py").read_text()
    wired = "StatusReporter" in app or "sdnotify" in app
    if kind == "notify":
        assert wired, "Type=notify needs the app to send READY=1 (callcore.ops.status.StatusReporter.start)"
        assert value(service, "Service", "NotifyAccess") == "main"
    else:
        assert kind == "simple"
        assert not wired, "the app sends READY=1 now: switch callcore.service to Type=notify (+ NotifyAccess=main)"


def test_the_retention_job_runs_daily_as_the_same_user_without_removeipc():
    unit = parse_unit(DEPLOY / "callcore-retention.service")
    assert value(unit, "Service", "Type") == "oneshot" and value(unit, "Service", "User") == "callcore"
    assert value(unit, "Service", "ExecStart").endswith("callcore retention run --config /etc/callcore/callcore.yaml")
    assert value(unit, "Service", "EnvironmentFile") == "-/etc/callcore/env"
    assert not values(unit, "Service", "RemoveIPC")  # would pull the embedded PostgreSQL's shared memory
    assert value(unit, "Service", "NoNewPrivileges") == "yes"
    timer = parse_unit(DEPLOY / "callcore-retention.timer")
    assert value(timer, "Timer", "OnCalendar") and value(timer, "Timer", "Persistent") == "true"
    assert value(timer, "Install", "WantedBy") == "timers.target"


def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    names = ["callcore.service", "callcore-retention.service", "callcore-retention.timer"]
    for name in names:  # the venv's binary does not exist here: any executable will do for the check
        text = (DEPLOY / name).read_text().replace("/opt/callcore/venv/bin/callcore", "/bin/true")
        (tmp_path / name).write_text(text)
    proc = subprocess.run([tool, "verify", "--man=no", *names], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    ours = [line for line in (proc.stdout + proc.stderr).splitlines() if any(n in line for n in names)]
    assert proc.returncode == 0 and ours == [], proc.stdout + proc.stderr


def test_the_production_config_template_is_valid(tmp_path, monkeypatch):
    from callcore.config import load_config

    digest = hashlib.sha256(b"cc_token").hexdigest()
    text = (DEPLOY / "callcore.yaml").read_text()
    assert "@ADMIN_TOKEN_SHA256@" in text and "password:" not in text  # no secret in the file
    path = tmp_path / "callcore.yaml"
    path.write_text(text.replace("@ADMIN_TOKEN_SHA256@", digest))
    monkeypatch.setenv("CALLCORE_ARI_PASSWORD", "x")
    for var in ("CALLCORE_DATABASE_URL", "CALLCORE_API_PORT", "CALLCORE_ARI_URL"):
        monkeypatch.delenv(var, raising=False)
    config = load_config(path)
    assert config.state_dir == Path("/var/lib/callcore") and config.logging.format == "json"
    assert config.api.host == "127.0.0.1" and config.api.tokens[0].sha256 == digest
    assert config.retention.enabled and config.ari.url == "http://127.0.0.1:8088"


def _install(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCORE_")}
    return subprocess.run(["bash", str(DEPLOY / "install.sh"), *args], capture_output=True, text=True, timeout=120,
                          env=env)


def test_install_sh_dry_run_lists_every_step_and_changes_nothing(tmp_path):
    assert subprocess.run(["bash", "-n", str(DEPLOY / "install.sh")]).returncode == 0
    proc = _install("--dry-run", "--prefix", str(tmp_path / "opt"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for needle in ("useradd --system", f"-m venv {tmp_path}/opt/venv", "pip install --quiet --upgrade",
                   "write /etc/callcore/env (mode 0600, root:root)", "write /etc/callcore/admin-token (mode 0600",
                   "write /etc/callcore/callcore.yaml (mode 0640, root:callcore)",
                   "write /etc/callcore/asterisk-ari.conf (mode 0600", "/etc/systemd/system/callcore.service",
                   "callcore-retention.timer", "write /usr/local/bin/callcore-admin"):
        if needle.startswith("useradd") and "exists" in out.split("==> code")[0]:
            continue  # a machine that already has the user
        assert needle in out, needle
    assert not (tmp_path / "opt").exists()
    assert not re.search(r"[A-Za-z0-9_-]{43}", out)  # no generated secret is ever printed


def test_install_sh_refuses_unknown_options():
    proc = _install("--bogus")
    assert proc.returncode == 2 and "unknown option --bogus" in proc.stderr
