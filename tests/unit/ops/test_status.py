"""`callcore status`: the status built from a running app, the status file, GET /status (roles), the CLI."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcore.acd import agent_state as st
from callcore.api.auth import Authenticator
from callcore.api.idempotency import MemoryIdempotencyStore
from callcore.api.server import api_routes, create_app
from callcore.api.status import STATUS_SOURCE
from callcore.cli import main
from callcore.ops import sdnotify
from callcore.ops.status import (
    StatusReporter,
    build_status,
    degraded,
    file_problem,
    format_status,
    summary_line,
    write_status_file,
)
from callcore.store.writer import WriterStats
from tests.unit.api.apifakes import TOKENS, static_tokens, world

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


@dataclass
class FakeRuntime:
    live_calls: int = 3
    accepting: bool = True


@dataclass
class FakeApp:
    """The attributes build_status reads, as CallcoreApp has them."""

    config: Any = field(default_factory=lambda: SimpleNamespace(
        version="3f2a9c1d0b7e", ari=SimpleNamespace(url="http://callcore:pw@127.0.0.1:8088")))
    stream: Any = field(default_factory=lambda: SimpleNamespace(
        stats=SimpleNamespace(connected=True, reconnects=2, events=1234)))
    runtime: Any = field(default_factory=FakeRuntime)
    acd: Any = field(default_factory=lambda: SimpleNamespace(agents={
        "a1": st.AgentStatus("a1", state="ready"), "a2": st.AgentStatus("a2", state="on_call"),
        "a3": st.AgentStatus("a3", state="on_call"), "a4": st.AgentStatus("a4")}))
    writer: Any = field(default_factory=lambda: SimpleNamespace(stats=WriterStats(
        buffered=7, written=100, duplicates=0, batches=5, retries=1, dropped=0, rejected=0,
        last_error="ConnectionError: postgresql://callcore:hunter2@db/callcore refused", last_flush_latency=0.01,
        last_commit_lag=0.05)))
    api: Any = field(default_factory=lambda: SimpleNamespace(url="http://127.0.0.1:8080"))


def test_build_status_reads_every_part_of_the_app_and_leaks_no_credentials():
    status = build_status(FakeApp(), started_at=NOW - timedelta(hours=2), now=NOW, pid=4242)
    assert status["pid"] == 4242 and status["state"] == "running"
    assert status["config_version"] == "3f2a9c1d0b7e"
    assert status["asterisk"] == [{"node": "127.0.0.1:8088", "url": "http://127.0.0.1:8088", "connected": True,
                                   "reconnects": 2, "events": 1234}]
    assert status["live_calls"] == 3
    assert status["agents"] == {"logged_out": 1, "ready": 1, "reserved": 0, "on_call": 2, "wrap_up": 0, "paused": 0}
    assert status["event_writer"]["backlog"] == 7 and status["event_writer"]["retries"] == 1
    assert status["api_url"] == "http://127.0.0.1:8080"
    assert status["started_at"] == "2026-11-24T10:00:00+00:00"
    text = json.dumps(status)
    assert "pw@" not in text and "hunter2" not in text
    json.loads(text)  # JSON-ready as is


def test_build_status_of_a_half_started_app_and_of_several_asterisk_nodes():
    bare = build_status(SimpleNamespace(), now=NOW)
    assert bare["asterisk"] == [] and bare["live_calls"] is None and bare["event_writer"] is None
    assert bare["agents"]["logged_out"] == 0 and bare["api_url"] is None
    app = FakeApp()
    app.runtime.accepting = False
    app.streams = {  # type: ignore[attr-defined]
        "pbx1": SimpleNamespace(stats=SimpleNamespace(connected=True, reconnects=0, events=1),
                                client=SimpleNamespace(base_url="http://10.0.0.1:8088")),
        "pbx2": SimpleNamespace(stats=SimpleNamespace(connected=False, reconnects=5, events=0),
                                client=SimpleNamespace(base_url="http://10.0.0.2:8088")),
    }
    status = build_status(app, now=NOW)
    assert [(n["node"], n["connected"]) for n in status["asterisk"]] == [("pbx1", True), ("pbx2", False)]
    assert status["state"] == "draining"
    assert degraded(status) == ["Asterisk node pbx2 is not connected", "callcore is draining"]


def test_format_status_is_a_readable_table():
    status = build_status(FakeApp(), started_at=NOW - timedelta(hours=2, minutes=3), now=NOW, pid=4242)
    text = format_status(status, source="API http://127.0.0.1:8080", now=NOW)
    lines = text.splitlines()
    assert lines[0].startswith("callcore ") and "pid 4242  running  up 2h03m" in lines[0]
    assert "config version  3f2a9c1d0b7e" in lines
    assert "Asterisk        127.0.0.1:8088  connected  (reconnects 2)" in lines
    assert "live calls      3" in lines
    assert "agents          logged_out 1  ready 1  reserved 0  on_call 2  wrap_up 0  paused 0" in lines
    assert any(line.startswith("event writer    backlog 7  written 100  dropped 0") for line in lines)
    assert lines[-1].endswith("(from API http://127.0.0.1:8080)")
    assert summary_line(status) == ("running; Asterisk 1/1 connected; 3 live calls; 3 agents logged in; "
                                    "event backlog 7; config 3f2a9c1d0b7e")


def test_file_problem_tells_a_live_process_from_a_dead_or_hung_one():
    fresh = {"pid": 1, "state": "running", "updated_at": NOW.isoformat()}
    assert file_problem(fresh, now=NOW + timedelta(seconds=5), alive=lambda pid: True) is None
    assert "process 1 is gone" in file_problem(fresh, now=NOW, alive=lambda pid: False)
    assert "60 s old" in file_problem(fresh, now=NOW + timedelta(seconds=60), alive=lambda pid: True)
    assert "stopped" in file_problem({**fresh, "state": "stopped"}, now=NOW, alive=lambda pid: True)


def test_write_status_file_replaces_atomically_with_mode_0640(tmp_path):
    path = tmp_path / "state" / "status.json"
    write_status_file(path, {"pid": 1})
    write_status_file(path, {"pid": 2})
    assert json.loads(path.read_text()) == {"pid": 2}
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in path.parent.iterdir()] == ["status.json"]


class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(2)

    def messages(self) -> list[str]:
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        return out


def test_sd_notify_speaks_the_protocol_and_is_a_no_op_outside_systemd(tmp_path, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False
    sock = NotifySocket(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    assert sdnotify.ready("12 live calls\nsecond line") is True
    assert sdnotify.reloading() and sdnotify.stopping() and sdnotify.watchdog()
    got = sock.messages()
    assert got[0] == "READY=1\nSTATUS=12 live calls second line"
    assert got[1].startswith("RELOADING=1\nMONOTONIC_USEC=") and got[2] == "STOPPING=1" and got[3] == "WATCHDOG=1"
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert sdnotify.status("x") is False  # nobody listening: never raises
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval({}) is None


async def test_the_reporter_writes_the_file_and_tells_systemd(tmp_path, monkeypatch):
    sock = NotifySocket(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    app = FakeApp()
    path = tmp_path / "status.json"
    reporter = StatusReporter(app, path, interval=0.05)
    await reporter.start()
    first = json.loads(path.read_text())
    assert first["state"] == "running" and first["pid"] == os.getpid() and first["live_calls"] == 3
    app.runtime.live_calls = 9
    import asyncio

    for _ in range(100):
        await asyncio.sleep(0.02)
        if json.loads(path.read_text())["live_calls"] == 9:
            break
    assert json.loads(path.read_text())["live_calls"] == 9
    reporter.stopping()
    assert json.loads(path.read_text())["state"] == "stopping"
    await reporter.close()
    assert json.loads(path.read_text())["state"] == "stopped"
    messages = sock.messages()
    assert messages[0].startswith("READY=1\nSTATUS=running; Asterisk 1/1 connected; 3 live calls")
    assert any(m.startswith("STATUS=running; Asterisk 1/1 connected; 9 live calls") for m in messages)
    assert any(m.startswith("STOPPING=1") for m in messages)


def test_the_reporter_survives_an_unwritable_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    reporter = StatusReporter(FakeApp(), blocker / "status.json")
    assert reporter.write() is None  # logged, never raised


# ---- GET /status ----------------------------------------------------------------------------------------------

async def _client(source: Any = None) -> TestClient:
    app = create_app(world().services(), authenticator=Authenticator([static_tokens()]),
                     idempotency=MemoryIdempotencyStore())
    if source is not None:
        app[STATUS_SOURCE] = source
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


def test_the_route_is_registered_for_supervisors_and_admins_only():
    (route,) = [r for r in api_routes() if r.path == "/status"]
    assert route.method == "GET" and {r.value for r in route.allowed_roles} == {"admin", "supervisor"}


@pytest.mark.parametrize("who,expected", [("admin", 200), ("supervisor", 200), ("agent", 403),
                                          ("integrator", 403), (None, 401)])
async def test_get_status_enforces_roles(who, expected):
    client = await _client(lambda: build_status(FakeApp(), now=NOW, pid=77))
    try:
        headers = {"Authorization": f"Bearer {TOKENS[who][0]}"} if who else {}
        resp = await client.get("/status", headers=headers)
        body = await resp.json()
    finally:
        await client.close()
    assert resp.status == expected, body
    if expected == 200:
        assert body["pid"] == 77 and body["live_calls"] == 3 and body["asterisk"][0]["connected"] is True
        assert body["agents"]["on_call"] == 2 and body["config_version"] == "3f2a9c1d0b7e"


async def test_get_status_without_a_source_falls_back_to_the_services():
    client = await _client()
    try:
        resp = await client.get("/status", headers={"Authorization": f"Bearer {TOKENS['admin'][0]}"})
        body = await resp.json()
    finally:
        await client.close()
    assert resp.status == 200 and body["asterisk"] == [] and body["live_calls"] == 0
    assert sum(body["agents"].values()) == 3


# ---- the CLI ----------------------------------------------------------------------------------------------------

def _config(tmp_path: Path, port: int = 1) -> Path:
    path = tmp_path / "callcore.yaml"
    path.write_text(f"state_dir: state\napi:\n  host: 127.0.0.1\n  port: {port}\n")  # no ari.password: still works
    return path


def test_cli_reads_the_status_file_when_there_is_no_token(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CALLCORE_API_TOKEN", raising=False)
    monkeypatch.delenv("CALLCORE_API_TOKEN_FILE", raising=False)
    config = _config(tmp_path)
    status = build_status(FakeApp(), pid=os.getpid())
    write_status_file(tmp_path / "state" / "status.json", status)
    assert main(["status", "-c", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "live calls      3" in out and "no API token" in err
    assert main(["status", "-c", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pid"] == os.getpid()


def test_cli_exit_codes_for_not_running_stale_and_degraded(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CALLCORE_API_TOKEN", raising=False)
    config = _config(tmp_path)
    assert main(["status", "-c", str(config)]) == 3
    assert "not running (no status file" in capsys.readouterr().err
    path = tmp_path / "state" / "status.json"
    write_status_file(path, {**build_status(FakeApp()), "pid": 2**22 + 12345})
    assert main(["status", "-c", str(config)]) == 3
    assert "is gone" in capsys.readouterr().err
    app = FakeApp()
    app.stream.stats.connected = False
    write_status_file(path, build_status(app))
    assert main(["status", "-c", str(config)]) == 1
    out, err = capsys.readouterr()
    assert "DISCONNECTED" in out and "warning: Asterisk node 127.0.0.1:8088 is not connected" in err


async def test_cli_prefers_the_api_and_falls_back_to_the_file_when_it_is_away(tmp_path, monkeypatch, capsys):
    import asyncio

    client = await _client(lambda: build_status(FakeApp(), pid=os.getpid()))
    try:
        config = _config(tmp_path, client.server.port)
        write_status_file(tmp_path / "state" / "status.json", {**build_status(FakeApp()), "live_calls": 99})
        monkeypatch.setenv("CALLCORE_API_TOKEN", TOKENS["supervisor"][0])
        rc = await asyncio.to_thread(main, ["status", "-c", str(config), "--json"])
        assert rc == 0 and json.loads(capsys.readouterr().out)["live_calls"] == 3
        monkeypatch.setenv("CALLCORE_API_TOKEN", TOKENS["agent"][0])  # refused: the file answers instead
        rc = await asyncio.to_thread(main, ["status", "-c", str(config), "--json"])
        out, err = capsys.readouterr()
        assert rc == 0 and json.loads(out)["live_calls"] == 99 and "answered 403" in err
    finally:
        await client.close()
    rc = await asyncio.to_thread(main, ["status", "-c", str(config)])
    out, err = capsys.readouterr()
    assert rc == 0 and "not reachable" in err and "live calls      99" in out


def test_cli_reads_the_token_from_a_private_file_only(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CALLCORE_API_TOKEN", raising=False)
    token = tmp_path / "token"
    token.write_text("cc_x\n")
    os.chmod(token, 0o644)
    monkeypatch.setenv("CALLCORE_API_TOKEN_FILE", str(token))
    assert main(["status", "-c", str(_config(tmp_path))]) == 2
    assert "chmod 600" in capsys.readouterr().err
