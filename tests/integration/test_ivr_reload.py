"""Hot reload with live calls: a call keeps the flow version it started with; an invalid reload changes nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from callcore.config import load_config
from callcore.ivr.registry import CODE_FLOWS
from tests.integration.conftest import start_app
from tests.sip import run_caller
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
state_dir: state
ari: {{password: callcore-sandbox, reconnect_initial: 0.2, reconnect_max: 1}}
logging: {{format: json}}
inbound: {{dids: {{"6000": greet}}}}
flows:
  greet:
    start: hello
    nodes:
      hello: {{type: play, sounds: [{first}, {first}, {first}], next: bye}}
      bye: {{type: hangup, sounds: [{last}]}}
"""
V1 = CONFIG.format(first="hello-world", last="goodbye")
V2 = CONFIG.format(first="vm-goodbye", last="vm-goodbye")
BROKEN = V2.replace("next: bye", "next: nowhere")
MISSING_SOUND = V2.replace("[vm-goodbye]}", "[no-such-prompt]}")




async def media_of(app, call_id) -> list[str]:
    rows = await app.pool.fetch(
        "SELECT payload->>'media' AS media FROM call_events WHERE call_id = $1 AND type = 'playback_started' "
        "ORDER BY id", call_id)
    return [r["media"] for r in rows]


async def test_given_a_reload_during_a_call_then_that_call_keeps_its_version_and_new_calls_get_the_new_one(
    asterisk, pg_dsn, tmp_path, monkeypatch
):
    monkeypatch.setenv("CALLCORE_DATABASE_URL", pg_dsn)
    path = tmp_path / "callcore.yaml"
    path.write_text(V1)
    app = await start_app(load_config(path, known_flows=set(CODE_FLOWS)))
    try:
        v1 = app.config.version
        first = asyncio.create_task(asyncio.to_thread(run_caller, "6000", [], bye_timeout_ms=30_000))
        await wait_until(lambda: app.runtime.live_calls == 1, what="the first call")
        path.write_text(V2)
        result = await app.reload()
        assert result.ok and result.version != v1
        second = await asyncio.to_thread(run_caller, "6000", [], bye_timeout_ms=30_000)
        second.check()
        (await first).check()

        path.write_text(BROKEN)
        bad = await app.reload()
        assert not bad.ok and any("nowhere" in e for e in bad.errors)
        assert app.config.version == result.version  # the running config is unchanged
        path.write_text(MISSING_SOUND)  # Asterisk has no such sound: checked against ARI's own list
        missing = await app.reload()
        assert not missing.ok and any("no-such-prompt" in e for e in missing.errors)
        assert app.config.version == result.version
        third = await asyncio.to_thread(run_caller, "6000", [], bye_timeout_ms=30_000)
        third.check()

        await wait_until(lambda: app.runtime.live_calls == 0, what="calls to end")
        await app.writer.flush()
        rows = await app.pool.fetch("SELECT call_id, config_version FROM calls ORDER BY started_at")
        assert [r["config_version"] for r in rows] == [v1, result.version, result.version]
        assert await media_of(app, rows[0]["call_id"]) == ["sound:hello-world"] * 3 + ["sound:goodbye"]
        assert await media_of(app, rows[1]["call_id"]) == ["sound:vm-goodbye"] * 4
        assert await media_of(app, rows[2]["call_id"]) == ["sound:vm-goodbye"] * 4
    finally:
        await app.stop(drain_seconds=2)


async def test_given_callcore_run_when_the_reload_command_is_used_then_valid_applies_and_invalid_is_refused(
    asterisk, pg_dsn, tmp_path
):
    path = tmp_path / "callcore.yaml"
    path.write_text(V1)
    env = {**os.environ, "CALLCORE_DATABASE_URL": pg_dsn}
    log_path = tmp_path / "callcore.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "callcore.cli", "run", "-c", str(path)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:
        await wait_until(lambda: b"ARI connected" in log_path.read_bytes(), timeout=30, what="callcore run")

        def reload() -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "callcore.cli", "reload", "-c", str(path)],
                                  capture_output=True, text=True, timeout=30, env=env, cwd=REPO)

        path.write_text(V2)
        ok = await asyncio.to_thread(reload)
        assert ok.returncode == 0 and "reloaded: version" in ok.stdout, ok.stderr
        path.write_text(BROKEN)
        refused = await asyncio.to_thread(reload)
        assert refused.returncode == 2 and "nowhere" in refused.stderr  # validated before signalling
        (await asyncio.to_thread(run_caller, "6000", [], bye_timeout_ms=30_000)).check()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert '"event": "config reloaded"' in log_path.read_text()


async def test_a_reload_brings_a_new_queue_and_its_agent_to_real_callers(asterisk, pg_dsn, tmp_path, monkeypatch):
    import yaml

    from tests.integration.conftest import ACD_CONFIG, app_from_yaml
    from tests.sip import AgentPhone

    data = yaml.safe_load(ACD_CONFIG.read_text())
    async with app_from_yaml(yaml.safe_dump(data, sort_keys=False), pg_dsn, tmp_path, monkeypatch) as app:
        # The admin adds a VIP queue served by agent02 (its skills change too), a DID for it, and reloads.
        data["queues"]["vip"] = {"required_skills": {"billing": 1}, "ring_timeout": 5, "priority": 50}
        data["agents"]["agent02"]["queues"] = ["billing", "vip"]
        data["agents"]["agent02"]["skills"]["language:nl"] = 4
        data["flows"]["vip"] = {"start": "q", "nodes": {"q": {"type": "queue", "queue": "vip"}}}
        data["inbound"]["dids"]["7009"] = "vip"
        (tmp_path / "callcore.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        result = await app.reload()
        assert result.ok, result.errors
        assert "vip" in app.acd.config.queues and app.acd.config.agents["agent02"].skills["language:nl"] == 4
        app.acd.login("agent02")
        with AgentPhone(2, hangup_after_ms=1500) as bob:
            outcome = await asyncio.to_thread(run_caller, "7009", [], bye_timeout_ms=30_000)
            outcome.check()
            await wait_until(lambda: bob.stats().get("SuccessfulCall(C)") == 1, timeout=10, what="agent02's call")
        await app.writer.flush()
        connected = await app.pool.fetch(
            "SELECT e.payload FROM call_events e JOIN calls c USING (call_id) WHERE c.did = '7009' "
            "AND e.type = 'connected'")
        assert [(r["payload"]["queue"], r["payload"]["agent"]) for r in connected] == [("vip", "agent02")]
        # A queue still holding a caller cannot be taken away under it: the reload is refused, nothing changes.
        app.acd.pause("agent02", "lunch")
        waiting = asyncio.create_task(asyncio.to_thread(run_caller, "7009", [], hangup_after_ms=8000,
                                                        bye_timeout_ms=30_000))
        await wait_until(lambda: len(app.acd.waiting) == 1, timeout=10, what="a caller waiting in vip")
        del data["queues"]["vip"], data["flows"]["vip"], data["inbound"]["dids"]["7009"]
        data["agents"]["agent02"]["queues"] = ["billing"]
        (tmp_path / "callcore.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        refused = await app.reload()
        assert not refused.ok and any(e.startswith("queues.vip: removed") for e in refused.errors)
        assert "vip" in app.acd.config.queues
        (await waiting).check()
