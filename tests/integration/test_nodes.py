"""Scale-out: one callcore drives two real Asterisk nodes (the sandbox's main node and node b, a second chroot
on other ports). Callers on either node reach agents whose phones are registered on either node: the call is
bridged on the caller's node, and the agent's phone is rung by its own node through the SIP trunk between them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from callcore.app import CallcoreApp
from callcore.ops.status import build_status
from tests.integration.conftest import ACD_CONFIG, app_from_yaml, assert_no_bridge_in_use
from tests.sip import AgentPhone, PstnPhone, run_caller, run_callers
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

NODE_B_SIP = ("127.0.0.1", 5070)


@pytest.fixture(scope="module")
def asterisk_b(asterisk) -> Iterator[object]:
    from callcore.sandbox.asterisk import AsteriskSandbox, SandboxError

    sandbox = AsteriskSandbox.for_node("b", log=lambda _msg: None)
    already_running = sandbox.status().running
    try:
        sandbox.up(timeout=120)
    except SandboxError as exc:
        pytest.fail(f"the second Asterisk node could not start:\n{exc}", pytrace=False)
    try:
        yield sandbox
    finally:
        if not already_running:
            sandbox.down()


@pytest.fixture
async def two_node_app(asterisk_b, pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data = yaml.safe_load(ACD_CONFIG.read_text())
    data["ari"].update(nodes=[{"name": "b", "url": "http://127.0.0.1:8089"}], peer_dial="PJSIP/{resource}@node-{node}")
    data["agents"]["agent02"]["node"] = "b"  # Bob's phone is registered on node b; Anna's on the main node
    data["agents"]["agent01"]["node"] = "main"
    async with app_from_yaml(yaml.safe_dump(data), pg_dsn, tmp_path, monkeypatch) as app:
        yield app


def invites_came_from(phone: AgentPhone) -> set[int]:
    """The SIP ports of the Asterisk nodes that sent this phone an INVITE (from its Via headers)."""
    assert phone.workdir is not None
    log = (phone.workdir / f"{phone.name}.messages.log").read_text(errors="replace")
    ports = set()
    for block in log.split("INVITE sip:")[1:]:
        via = next(line for line in block.splitlines() if line.lower().startswith("via:"))
        ports.add(int(via.split("127.0.0.1:")[1].split(";")[0]))
    return ports


async def test_callers_on_either_node_reach_agents_registered_on_the_other(two_node_app: CallcoreApp):
    app = two_node_app
    acd = app.acd
    assert [n["node"] for n in build_status(app)["asterisk"]] == ["main", "b"]
    assert all(n["connected"] for n in build_status(app)["asterisk"])
    acd.login("agent01")
    acd.login("agent02")
    with AgentPhone(1, hangup_after_ms=2500, trace_msg=True) as anna, \
            AgentPhone(2, hangup_after_ms=2500, trace_msg=True) as bob:
        # An English caller on the main node → Bob, whose phone is on node b; a Dutch caller on node b → Anna.
        english = asyncio.create_task(asyncio.to_thread(run_caller, "7002", [], bye_timeout_ms=30_000, timeout=60))
        dutch = asyncio.create_task(asyncio.to_thread(run_caller, "7001", [], bye_timeout_ms=30_000, timeout=60,
                                                      target=NODE_B_SIP))
        # While they talk, each agent's phone channel is on its own node, the caller's leg on the caller's node.
        await wait_until(lambda: acd.agents["agent01"].state == "on_call" and acd.agents["agent02"].state == "on_call",
                         timeout=20, what="both agents on a call")
        on_main = [c.name for c in await app.links[0].ari.channels.list()]
        on_b = [c.name for c in await app.links[1].ari.channels.list()]
        assert any(n.startswith("PJSIP/node-b-") for n in on_main), on_main  # main → b trunk leg (to Bob)
        assert any(n.startswith("PJSIP/agent02-") for n in on_b), on_b  # Bob's phone rung by node b
        assert any(n.startswith("PJSIP/node-main-") for n in on_b), on_b  # b → main trunk leg (to Anna)
        assert any(n.startswith("PJSIP/agent01-") for n in on_main), on_main
        (await english).check()
        (await dutch).check()
        assert invites_came_from(bob) == {5070} and invites_came_from(anna) == {5060}
    await app.writer.flush()
    rows = await app.pool.fetch(
        "SELECT c.did, s.payload->>'node' AS node, x.payload->>'agent' AS agent FROM calls c "
        "JOIN call_events s ON s.call_id = c.call_id AND s.type = 'call_started' "
        "JOIN call_events x ON x.call_id = c.call_id AND x.type = 'connected' ORDER BY c.did")
    assert [(r["did"], r["node"], r["agent"]) for r in rows] == [("7001", "b", "agent01"), ("7002", "main", "agent02")]
    ended = await app.pool.fetch("SELECT call_id FROM calls WHERE ended_at IS NULL")
    assert ended == []
    await wait_until(lambda: app.runtime.live_calls == 0, timeout=10, what="both calls to end")
    for link in app.links:
        assert await link.ari.channels.list() == []
    await assert_no_bridge_in_use(app)


async def test_the_trunk_between_nodes_rings_only_agent_phones(two_node_app: CallcoreApp):
    """Through the inter-node trunk, node b rings agent phones only: asking it for the carrier trunk (a way out
    to the phone network, i.e. toll fraud) is refused, and the phone network never sees an INVITE."""
    ari_main = two_node_app.links[0].ari
    with PstnPhone(trace_msg=True) as pstn:
        probe = await ari_main.channels.originate("PJSIP/trunk@node-b", app=ari_main.app, app_args="leg,probe",
                                                  timeout=5)
        for _ in range(100):
            if probe.id not in {c.id for c in await ari_main.channels.list()}:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the probe through the trunk is still up")
        await asyncio.sleep(1.5)  # sipp writes its counters every second
        assert not pstn.stats().get("IncomingCall(C)"), "node b dialled out through the carrier trunk"


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The shipped load balancer config (deploy/kamailio), in front of the two sandbox nodes on loopback."""
    import shutil
    import subprocess

    from tests.sip.runner import _udp_bound

    deploy = Path(__file__).resolve().parents[2] / "deploy" / "kamailio"
    if shutil.which("kamailio") is None:
        pytest.fail("kamailio is not installed (scripts/install-system-deps.sh installs it)", pytrace=False)
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text((deploy / "kamailio.cfg").read_text().replace(
        "/etc/kamailio/dispatcher.list", str(deploy / "dispatcher.list")))
    log = (tmp_path / "kamailio.log").open("wb")
    proc = subprocess.Popen(["kamailio", "-f", str(cfg), "-DD", "-E", "-w", str(tmp_path), "-P",
                             str(tmp_path / "kamailio.pid")], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if _udp_bound(5090):
                break
            if proc.poll() is not None:
                pytest.fail(f"kamailio exited: {(tmp_path / 'kamailio.log').read_text()[-2000:]}", pytrace=False)
            time.sleep(0.05)
        yield ("127.0.0.1", 5090)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


async def test_kamailio_spreads_callers_over_both_nodes_and_every_caller_reaches_its_agent(
        two_node_app: CallcoreApp, kamailio: tuple[str, int]):
    app = two_node_app
    app.acd.login("agent01")  # on the main node
    app.acd.login("agent02")  # on node b
    with AgentPhone(1, hangup_after_ms=1000), AgentPhone(2, hangup_after_ms=1000):
        dutch = asyncio.create_task(asyncio.to_thread(
            run_callers, "7001", 3, 2.0, bye_timeout_ms=40_000, timeout=90, target=kamailio))
        english = asyncio.create_task(asyncio.to_thread(
            run_callers, "7002", 3, 2.0, bye_timeout_ms=40_000, timeout=90, target=kamailio))
        (await dutch).check()
        (await english).check()
    await wait_until(lambda: app.runtime.live_calls == 0, timeout=10, what="every call to end")
    await app.writer.flush()
    rows = await app.pool.fetch(
        "SELECT c.did, c.ended_at, s.payload->>'node' AS node, x.payload->>'agent' AS agent FROM calls c "
        "JOIN call_events s ON s.call_id = c.call_id AND s.type = 'call_started' "
        "LEFT JOIN call_events x ON x.call_id = c.call_id AND x.type = 'connected'")
    assert len(rows) == 6 and all(r["ended_at"] is not None for r in rows)
    assert {r["node"] for r in rows} == {"main", "b"}  # the balancer used both nodes
    assert all(r["agent"] == ("agent01" if r["did"] == "7001" else "agent02") for r in rows)
    crossed = sum(1 for r in rows if (r["agent"] == "agent02") != (r["node"] == "b"))
    print(f"calls per node: main {sum(r['node'] == 'main' for r in rows)}, b {sum(r['node'] == 'b' for r in rows)};"
          f" {crossed} reached their agent across nodes")
    for link in app.links:
        assert await link.ari.channels.list() == []
