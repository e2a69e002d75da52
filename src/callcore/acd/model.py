"""ACD configuration as admins write it in YAML: ``skills``, ``agents``, ``queues`` (pydantic, ``extra="forbid"``).

```yaml
skills: [language:nl, language:en, sales, billing]
agents:
  agent01:
    name: "Anna de Vries"
    endpoint: PJSIP/agent01
    skills: {language:nl: 10, sales: 8}          # levels 1-10
    queues: [sales, general]
queues:
  support:
    required_skills: {language:nl: 5, internet: 3}
    relaxation:
      - {after: 30, lower_levels_by: 3}
      - {after: 60, drop_skills: [internet]}
      - {after: 90, add_agents_from: [general]}
    overflow: {action: queue, target: general}
```

What pydantic checks here is local to one value (types, ranges of timeouts, the shape of an overflow and of a
relaxation step). Everything that needs the whole config — declared skills, skill levels 1-10, queue names in
agents / overflow targets / ``add_agents_from``, empty endpoints, relaxation steps in increasing ``after`` — is
checked by ``callcore.acd.validate.validate_acd``, so one pass reports all of it with YAML paths and lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MIN_LEVEL = 1
MAX_LEVEL = 10
OVERFLOW_ACTIONS = ("queue", "callback", "voicemail", "message", "hangup")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ServiceLevel(_Model):
    """Target: ``percent`` of the callers answered within ``seconds``."""

    percent: float = Field(80.0, gt=0, le=100)
    seconds: float = Field(20.0, gt=0)


class Overflow(_Model):
    """Where a caller goes after ``max_wait`` or when the queue already holds ``max_length`` callers.

    - ``queue``: to the queue ``target`` (required); the caller keeps its original ``enqueued_at``.
    - ``callback``: a callback request for ``target`` (optional; default: this queue), then hang up.
    - ``voicemail``: record a message (``sounds`` optional: the prompt).
    - ``message``: play ``sounds`` (required), then hang up.
    - ``hangup``: hang up (``sounds`` optional: played first).
    """

    action: Literal["queue", "callback", "voicemail", "message", "hangup"]
    target: str | None = None
    sounds: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> Overflow:
        if self.action == "queue" and not self.target:
            raise ValueError("overflow action 'queue' needs a 'target' queue")
        if self.action not in ("queue", "callback") and self.target is not None:
            raise ValueError(f"overflow action {self.action!r} takes no 'target' (only 'queue' and 'callback' do)")
        if self.action == "message" and not self.sounds:
            raise ValueError("overflow action 'message' needs 'sounds'")
        if self.action in ("queue", "callback") and self.sounds:
            raise ValueError(f"overflow action {self.action!r} takes no 'sounds'")
        return self


class RelaxationStep(_Model):
    """Applied once the caller has waited ``after`` seconds; steps are cumulative (every step whose ``after`` has
    passed applies). A step may combine several of its three kinds, but needs at least one.

    - ``lower_levels_by``: every required level drops by this much (summed over applied steps), never below 1:
      the skill itself stays required;
    - ``drop_skills``: these skills are no longer required;
    - ``add_agents_from``: agents serving these queues become eligible for the caller too.
    """

    after: float = Field(gt=0, description="seconds of waiting (since the original enqueue)")
    lower_levels_by: int = Field(0, ge=0, le=MAX_LEVEL)
    drop_skills: list[str] = Field(default_factory=list)
    add_agents_from: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> RelaxationStep:
        if not (self.lower_levels_by or self.drop_skills or self.add_agents_from):
            raise ValueError("a relaxation step needs lower_levels_by, drop_skills or add_agents_from")
        return self


class Announcements(_Model):
    position: bool = False
    estimated_wait: bool = False
    every: float = Field(60.0, gt=0, description="seconds between announcements")
    periodic: list[str] = Field(default_factory=list, description="sounds played every 'every' seconds")


class VirtualHold(_Model):
    """"Press 1 to be called back, keeping your place in line": the caller hangs up and is called back
    when their turn comes (an agent is reserved for them), then connected to that agent."""

    offer_after: float = Field(30.0, ge=0, description="seconds of waiting before the offer (repeated with announcements)")
    digit: str = Field("1", pattern=r"^[0-9*#]$")
    offer: list[str] = Field(default_factory=lambda: ["callcore/callback-offer"])
    confirmation: list[str] = Field(default_factory=lambda: ["callcore/virtual-hold-confirmed"])
    greeting: list[str] = Field(default_factory=lambda: ["callcore/virtual-hold-greeting"],
                                description="played to the caller when called back, before the agent rings")
    endpoint: str | None = Field(None, description="dial string with {number}; default: transfers.external_endpoint")
    ring_timeout: float = Field(30.0, ge=15, le=120, description="seconds the caller's phone rings per attempt")
    attempts: int = Field(2, ge=1, le=5)
    retry_after: float = Field(120.0, gt=0, description="seconds before calling again, keeping the place")


class QueueConfig(_Model):
    required_skills: dict[str, int] = Field(default_factory=dict, description="skill → minimum level (1-10)")
    priority: int = Field(0, description="base priority added to the caller's")
    service_level: ServiceLevel = Field(default_factory=ServiceLevel)
    wrap_up_seconds: float = Field(0.0, ge=0, le=3600)
    ring_timeout: float = Field(15.0, gt=0, le=600, description="seconds an agent's phone rings per offer")
    max_wait: float | None = Field(None, gt=0, description="seconds; then overflow. None: no limit")
    max_length: int | None = Field(None, ge=0, description="callers waiting; more → overflow at once. None: no limit")
    weight: float = Field(1.0, gt=0, description="multiplies the wait when callers of several queues compete")
    no_answer_pause: bool = True
    overflow: Overflow | None = Field(None, description="None: callers past max_wait/max_length are hung up")
    relaxation: list[RelaxationStep] = Field(default_factory=list)
    announcements: Announcements = Field(default_factory=Announcements)
    music_on_hold: str = "default"
    whisper: list[str] = Field(default_factory=list, description="sounds played to the agent before bridging")
    recording: bool = False
    virtual_hold: VirtualHold | None = None
    survey: str | None = Field(
        None, min_length=1, description="an IVR flow: when the agent hangs up first, the caller goes there (a "
        "post-call survey, 'rate this call from 1 to 5') instead of being cut off. None: no survey")

    def wrap_up_for(self, agent: AgentConfig | None) -> float:
        """Wrap-up seconds after a call of this queue: the agent's override, else the queue's."""
        if agent is not None and agent.wrap_up_seconds is not None:
            return agent.wrap_up_seconds
        return self.wrap_up_seconds


class AgentConfig(_Model):
    name: str = ""
    endpoint: str = Field(description="an Asterisk dial string such as PJSIP/agent01")
    skills: dict[str, int] = Field(default_factory=dict, description="skill → level (1-10)")
    queues: list[str] = Field(default_factory=list)
    max_calls: int = Field(1, ge=1, le=100)
    wrap_up_seconds: float | None = Field(None, ge=0, le=3600, description="overrides the queue's wrap-up")
    login_at_start: bool = Field(False, description="logged in (ready) when callcore starts: demo and kiosk lines")
    node: str | None = Field(
        None, description="the Asterisk node the phone is registered on (several nodes); callers on other nodes "
        "reach it through ari.peer_dial. Empty: the endpoint is dialled as it is from every node")

    @model_validator(mode="after")
    def _node_endpoint(self) -> AgentConfig:
        if self.node is not None and not re.match(r"^PJSIP/[^/@&,\s]+$", self.endpoint):
            raise ValueError("an agent with a node needs a plain PJSIP/<endpoint> endpoint (no @host, no options)")
        return self


class TransferSettings(_Model):
    """How agents' calls reach numbers outside callcore (blind and attended transfers to a number)."""

    external_endpoint: str = Field("PJSIP/{number}@trunk", description="dial string; {number} is the number")
    ring_timeout: float = Field(20.0, gt=0, le=120, description="seconds a transfer or consult target rings")

    @model_validator(mode="after")
    def _template(self) -> TransferSettings:
        if "{number}" not in self.external_endpoint:
            raise ValueError("external_endpoint must contain {number}, e.g. PJSIP/{number}@trunk")
        return self


class AcdConfig(_Model):
    """Everything the ACD needs: the declared ``skills``, the ``agents`` and the ``queues``."""

    skills: list[str] = Field(default_factory=list)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    queues: dict[str, QueueConfig] = Field(default_factory=dict)
    transfers: TransferSettings = Field(default_factory=TransferSettings)


def media_uri(item: str) -> str:
    """A sound as admins write it (``callcore/welcome``) → an ARI media URI (``sound:callcore/welcome``);
    URIs with a scheme (``tone:ring``, ``number:3``) pass through."""
    return item if ":" in item.split("/")[0] else f"sound:{item}"


def caller_skills(items: Iterable[str]) -> dict[str, int]:
    """The IVR's ``skills: [...]`` (after ``${var}`` interpolation) → caller requirements.

    ``name`` means level 1; ``name=N`` asks for level N (1-10). Items that are empty, or end in ``:`` (a
    ``language:${lang}`` whose variable was empty), are skipped. A skill named twice keeps the highest level.
    Raises ValueError on a bad level."""
    out: dict[str, int] = {}
    for raw in items:
        item = str(raw).strip()
        if not item or item.endswith(":"):
            continue
        name, sep, level_text = item.rpartition("=")
        if not sep:
            name, level = item, MIN_LEVEL
        else:
            name = name.strip()
            try:
                level = int(level_text.strip())
            except ValueError:
                raise ValueError(f"skill {item!r}: the level after '=' must be a whole number 1-10") from None
            if not name or not MIN_LEVEL <= level <= MAX_LEVEL:
                raise ValueError(f"skill {item!r}: expected name=level with a level 1-10")
        out[name] = max(out.get(name, 0), level)
    return out


__all__ = [
    "MAX_LEVEL",
    "MIN_LEVEL",
    "OVERFLOW_ACTIONS",
    "AcdConfig",
    "AgentConfig",
    "Announcements",
    "Overflow",
    "QueueConfig",
    "RelaxationStep",
    "ServiceLevel",
    "TransferSettings",
    "VirtualHold",
    "caller_skills",
    "media_uri",
]
