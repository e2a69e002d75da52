from callcore.acd.model import AcdConfig, AgentConfig
from callcore.acd.service import AcdService
from tests.fakes.sinks import RecordingSink


def config() -> AcdConfig:
    agents = {f"a{n}": AgentConfig(endpoint=f"PJSIP/a{n}", queues=["q"]) for n in range(1, 6)}
    return AcdConfig(skills=[], agents=agents, queues={})


async def test_given_last_states_after_a_restart_then_nobody_stays_ringing_or_talking():
    sink = RecordingSink()
    acd = AcdService(config(), sink)
    acd.restore({
        "a1": ("ready", "login"),
        "a2": ("paused", "lunch"),
        "a3": ("on_call", "answered"),     # its call is no longer ours to track
        "a4": ("logged_out", "logout"),
        "a5": ("reserved", "offered"),
        "gone": ("ready", None),           # no longer in the config: ignored
    })
    states = {a: (s.state, s.pause_reason) for a, s in acd.agents.items()}
    assert states == {
        "a1": ("ready", None), "a2": ("paused", "lunch"), "a3": ("ready", None),
        "a4": ("logged_out", None), "a5": ("ready", None),
    }
    recorded = [(e.agent_id, e.state) for e in sink.events]
    assert ("a2", "paused") in recorded and ("a3", "ready") in recorded and ("a4", "ready") not in recorded
