"""A reloaded config reaches the running ACD and dialer: new queues and agents, changed queue options and skills,
the file's campaigns — unless something in use would disappear under a call (then the reload is refused)."""

from __future__ import annotations

from typing import Any

from callcore.acd.model import AcdConfig, AgentConfig, QueueConfig
from callcore.acd.service import AcdService, QueuedCaller
from callcore.campaigns.model import CampaignConfig
from callcore.dialer.service import DialerService
from tests.fakes.sinks import RecordingSink
from tests.unit.acd.test_virtual_hold import Caller


def config(**queues: QueueConfig) -> AcdConfig:
    return AcdConfig(agents={"a1": AgentConfig(endpoint="PJSIP/a1", queues=list(queues) or ["sales"])},
                     queues=queues or {"sales": QueueConfig()})


async def test_new_queues_agents_and_options_apply_at_once() -> None:
    acd = AcdService(config(sales=QueueConfig()), RecordingSink())
    acd.login("a1")
    new = AcdConfig(
        agents={"a1": AgentConfig(endpoint="PJSIP/a1", queues=["sales", "support"], skills={"tech": 5}),
                "a2": AgentConfig(endpoint="PJSIP/a2", queues=["support"], login_at_start=True)},
        queues={"sales": QueueConfig(max_wait=60), "support": QueueConfig()}, skills=["tech"])
    assert acd.config_change_problems(new) == []
    acd.apply_config(new)
    assert acd.config.queues["sales"].max_wait == 60 and "support" in acd.handle_seconds
    assert acd.agents["a1"].state == "ready"  # kept as it was
    assert acd.agents["a2"].state == "ready"  # new, login_at_start
    assert acd.config.agents["a1"].skills == {"tech": 5}
    acd.close()


async def test_a_queue_with_callers_or_a_logged_in_agent_cannot_be_removed() -> None:
    acd = AcdService(AcdConfig(agents={"a1": AgentConfig(endpoint="PJSIP/a1", queues=["sales", "old"])},
                               queues={"sales": QueueConfig(), "old": QueueConfig()}), RecordingSink())
    acd.login("a1")
    entry = QueuedCaller(Caller(acd.sink, "+31612345678"), "old", 0, acd.now(), {})  # type: ignore[arg-type]
    acd.waiting[entry.id] = entry
    without = AcdConfig(agents={}, queues={"sales": QueueConfig()})
    problems = acd.config_change_problems(without)
    assert any(p.startswith("queues.old: removed, but 1 call") for p in problems)
    assert any(p.startswith("agents.a1: removed, but the agent is ready") for p in problems)
    acd.close()


MINIMAL: dict[str, Any] = dict(caller_id="+31881234567", default_region="NL", queue="sales")


class _Acd:
    def on_agent_change(self, _fn: Any) -> None:
        pass


def test_the_files_campaigns_are_added_changed_and_removed_by_a_reload() -> None:
    old = {"keep": CampaignConfig(**MINIMAL), "gone": CampaignConfig(**MINIMAL)}
    dialer = DialerService(dict(old), _Acd(), None, None)  # type: ignore[arg-type]
    new = {"keep": CampaignConfig(**{**MINIMAL, "caller_id": "+31881230000"}), "fresh": CampaignConfig(**MINIMAL)}
    assert dialer.file_campaign_problems(old, new) == []
    dialer.apply_file_campaigns(old, new)
    assert set(dialer.runs) == {"keep", "fresh"} and dialer.runs["fresh"].state == "stopped"
    assert dialer.runs["keep"].config.caller_id == "+31881230000"


def test_a_running_campaign_cannot_lose_its_mode_or_its_definition() -> None:
    old = {"busy": CampaignConfig(**MINIMAL), "also": CampaignConfig(**MINIMAL)}
    dialer = DialerService(dict(old), _Acd(), None, None)  # type: ignore[arg-type]
    dialer.runs["busy"].state = "running"
    dialer.runs["also"].state = "running"
    new = {"busy": CampaignConfig(**{**MINIMAL, "mode": "predictive"})}
    problems = dialer.file_campaign_problems(old, new)
    assert any("campaigns.busy" in p and "mode" in p for p in problems)
    assert any(p.startswith("campaigns.also: removed from the file while it is running") for p in problems)


async def test_a_caller_takes_its_language_not_the_first_queues_call_type_to_another_queue() -> None:
    from callcore.acd.conversation import Requeue
    from callcore.acd.service import caller_attributes

    assert caller_attributes({"language:nl": 1, "internet": 5}) == {"language:nl": 1}
    acd = AcdService(AcdConfig(agents={"a1": AgentConfig(endpoint="PJSIP/a1", queues=["support", "general"])},
                               queues={"support": QueueConfig(), "general": QueueConfig()}), RecordingSink())
    first = QueuedCaller(Caller(acd.sink, "+31612345678"), "support", 10, acd.now(),  # type: ignore[arg-type]
                         {"language:nl": 1, "internet": 5})
    moved, _ = acd._requeue(first, Requeue("general"))  # a blind transfer to the general queue
    assert (moved.queue, moved.priority, moved.skills) == ("general", 10, {"language:nl": 1})
    acd.close()
