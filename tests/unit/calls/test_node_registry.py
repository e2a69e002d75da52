"""Several Asterisk nodes: which node dials what, and which node a new call goes out on."""

import asyncio

import pytest

from callcore.calls.nodes import Nodes, NoNodeAvailable
from callcore.calls.runtime import CallRuntime
from callcore.config.models import AriSettings
from tests.fakes.sinks import RecordingSink


def runtime(node: str) -> CallRuntime:
    return CallRuntime(object(), RecordingSink(), lambda call: None, node=node)  # type: ignore[arg-type]


def test_a_phone_on_another_node_is_rung_through_the_trunk_to_that_node_and_a_local_one_directly():
    a, b = runtime("a"), runtime("b")
    nodes = Nodes([a, b])
    nodes.set_endpoint_homes({"PJSIP/agent07": "b", "PJSIP/agent01": "a"}, "PJSIP/{resource}@node-{node}")
    assert a.dial_string("PJSIP/agent07") == "PJSIP/agent07@node-b"
    assert b.dial_string("PJSIP/agent07") == "PJSIP/agent07"
    assert b.dial_string("PJSIP/agent01") == "PJSIP/agent01@node-a"
    # Endpoints with no home (numbers through the trunk, a supervisor's dial string) are dialled as they are.
    assert a.dial_string("PJSIP/0612345678@trunk") == "PJSIP/0612345678@trunk"


def test_new_calls_go_out_on_the_least_loaded_connected_node():
    a, b, c = runtime("a"), runtime("b"), runtime("c")
    up = {"a": True, "b": True, "c": False}
    nodes = Nodes([a, b, c], connected={n: (lambda n=n: up[n]) for n in up})
    a._tasks = {1: None, 2: None}  # type: ignore[dict-item]  # two live calls on a
    b._tasks = {3: None}  # type: ignore[dict-item]
    assert nodes.pick() is b  # c is the emptiest but its ARI is down
    up["b"] = False
    assert nodes.pick() is a
    up["a"] = False
    with pytest.raises(NoNodeAvailable):
        nodes.pick()
    assert nodes.pick("c") is c  # asked for by name: the caller knows best (e.g. the agent's node)
    with pytest.raises(NoNodeAvailable):
        nodes.pick("nowhere")


def test_a_draining_node_gets_no_new_calls_and_shared_settings_reach_every_node():
    a, b = runtime("a"), runtime("b")
    nodes = Nodes([a, b])
    a.stop_accepting()
    assert nodes.pick() is b and not nodes.accepting

    def router(call):
        return None

    nodes.router = router
    nodes.config_version = "v2"
    assert a.router is router and b.router is router and b.config_version == "v2"


async def test_draining_every_node_at_once_adds_up_the_calls_handed_back():
    nodes = Nodes([runtime("a"), runtime("b")])
    assert await asyncio.wait_for(nodes.drain(0.1), 5) == 0
    assert not nodes.accepting


def test_nodes_config_gives_every_node_credentials_and_refuses_duplicates():
    ari = AriSettings(password="s3cret", node="a", nodes=[{"name": "b", "url": "http://127.0.0.1:8089/"}])
    a, b = ari.all_nodes()
    assert (a.name, b.name, b.url, b.username) == ("a", "b", "http://127.0.0.1:8089", "callcore")
    assert b.password is not None and b.password.get_secret_value() == "s3cret"
    for bad in ({"name": "a", "url": "http://127.0.0.1:8089"}, {"name": "b", "url": "http://127.0.0.1:8088"},
                {"name": "b c", "url": "http://127.0.0.1:8089"}):
        with pytest.raises(ValueError):
            AriSettings(node="a", nodes=[bad])
    with pytest.raises(ValueError):
        AriSettings(peer_dial="PJSIP/{resource}@trunk")
