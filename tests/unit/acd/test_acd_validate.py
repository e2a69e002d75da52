"""Static checks of the ACD config and its models, with real line numbers from YAML loaded by the config loader."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from callcore.acd.model import AcdConfig, Overflow, QueueConfig, RelaxationStep, caller_skills
from callcore.acd.validate import check_acd, validate_acd
from callcore.config.loader import ConfigIssue, load_yaml
from callcore.ivr.validate import check_ivr

GOOD = """
skills: [language:nl, language:en, sales, billing, internet]
agents:
  agent01:
    name: "Anna de Vries"
    endpoint: PJSIP/agent01
    skills: {language:nl: 10, language:en: 6, sales: 8}
    queues: [sales, general]
  agent02:
    endpoint: PJSIP/agent02
    skills: {language:nl: 7, internet: 5}
    queues: [support]
    max_calls: 1
    wrap_up_seconds: 10
queues:
  sales:
    required_skills: {sales: 5}
    overflow: {action: queue, target: general}
    max_wait: 300
  general: {}
  support:
    required_skills: {language:nl: 5, internet: 3}
    priority: 0
    service_level: {percent: 80, seconds: 20}
    wrap_up_seconds: 30
    ring_timeout: 15
    max_wait: 600
    max_length: 50
    weight: 1.0
    no_answer_pause: true
    overflow: {action: message, sounds: [callcore/all-busy]}
    relaxation:
      - {after: 30, lower_levels_by: 3}
      - {after: 60, drop_skills: [internet]}
      - {after: 90, add_agents_from: [general]}
    announcements: {position: true, estimated_wait: true, every: 45, periodic: [callcore/please-hold]}
    music_on_hold: default
    whisper: [callcore/whisper-support]
    recording: false
"""


def load(tmp_path: Path, text: str, ivr: bool = False):
    path = tmp_path / "callcore.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    data, lines = load_yaml(path)
    flows = None
    if ivr:
        flows, errors, _ = check_ivr(data, lines=lines, file="callcore.yaml")
        assert errors == []
    return check_acd(data, lines=lines, file="callcore.yaml", ivr=flows)


def where(issues: list[ConfigIssue]) -> list[tuple[int | None, str]]:
    return [(i.line, i.path) for i in issues]


def test_a_good_config(tmp_path: Path) -> None:
    acd, errors, warnings = load(tmp_path, GOOD)
    assert acd is not None and errors == [] and warnings == []
    support = acd.queues["support"]
    assert support.relaxation[2].add_agents_from == ["general"]
    assert support.overflow == Overflow(action="message", sounds=["callcore/all-busy"])
    assert acd.agents["agent01"].max_calls == 1 and acd.agents["agent01"].wrap_up_seconds is None
    assert acd.queues["general"].weight == 1.0 and acd.queues["general"].max_wait is None


def test_cross_reference_errors_with_lines(tmp_path: Path) -> None:
    acd, errors, warnings = load(
        tmp_path,
        """
        skills: [language:nl, sales, sales, ""]
        agents:
          a1:
            endpoint: "  "
            skills: {language:nl: 11, saels: 5, sales: 0}
            queues: [sales, nope]
        queues:
          sales:
            required_skills: {language:nl: 0, tv: 2}
            overflow: {action: queue, target: gneral}
            relaxation:
              - {after: 60, drop_skills: [internet]}
              - {after: 30, add_agents_from: [ghost]}
              - {after: 30, lower_levels_by: 1}
          other:
            overflow: {action: queue, target: other}
        """,
    )
    assert acd is not None
    got = [(i.line, i.path, i.message) for i in errors]
    assert where(errors) == [
        (1, "skills[2]"),
        (1, "skills[3]"),
        (4, "agents.a1.endpoint"),
        (5, "agents.a1.skills.language:nl"),
        (5, "agents.a1.skills.saels"),
        (5, "agents.a1.skills.sales"),
        (6, "agents.a1.queues[1]"),
        (9, "queues.sales.required_skills.language:nl"),
        (9, "queues.sales.required_skills.tv"),
        (10, "queues.sales.overflow.target"),
        (12, "queues.sales.relaxation[0].drop_skills[0]"),
        (13, "queues.sales.relaxation[1].add_agents_from[0]"),
        (13, "queues.sales.relaxation[1].after"),
        (14, "queues.sales.relaxation[2].after"),
        (16, "queues.other.overflow.target"),
    ], got
    messages = {i.path: i.message for i in errors}
    assert "declared twice" in messages["skills[2]"]
    assert "empty skill name" in messages["skills[3]"]
    assert "empty endpoint" in messages["agents.a1.endpoint"]
    assert "level 11 is outside 1-10" in messages["agents.a1.skills.language:nl"]
    assert "did you mean 'sales'" in messages["agents.a1.skills.saels"]
    assert "level 0" in messages["agents.a1.skills.sales"]
    assert "unknown queue 'nope'" in messages["agents.a1.queues[1]"]
    assert "did you mean 'general'" not in messages["queues.sales.overflow.target"]  # general does not exist
    assert "unknown queue 'gneral'" in messages["queues.sales.overflow.target"]
    assert "after 30 must be larger than the step before (60)" in messages["queues.sales.relaxation[1].after"]
    assert "itself" in messages["queues.other.overflow.target"]
    assert str(errors[2]) == "callcore.yaml:4: agents.a1.endpoint: " + messages["agents.a1.endpoint"]
    assert [(i.line, i.path) for i in warnings] == [(9, "queues.sales.required_skills"), (15, "queues.other")]


def test_warnings(tmp_path: Path) -> None:
    _, errors, warnings = load(
        tmp_path,
        """
        skills: [sales]
        agents:
          a1: {endpoint: PJSIP/a1, skills: {sales: 3}, queues: [a]}
          idle: {endpoint: PJSIP/idle}
        queues:
          a:
            required_skills: {sales: 5}
            overflow: {action: queue, target: b}
            relaxation: [{after: 10, add_agents_from: [a]}]
          b:
            overflow: {action: queue, target: a}
            max_wait: 60
            relaxation: [{after: 10, add_agents_from: [a]}]
          c: {max_length: 5}
        """,
    )
    assert errors == []
    assert [(i.line, i.path) for i in warnings] == [
        (4, "agents.idle.queues"),
        (7, "queues.a.required_skills"),
        (8, "queues.a.overflow.target"),
        (9, "queues.a.relaxation[0].add_agents_from[0]"),
        (14, "queues.c"),
        (14, "queues.c"),
    ]  # b has no agents of its own but borrows a's after 10 s: no warning
    got = [i.message for i in warnings]
    assert "serves no queue" in got[0]
    assert "no agent of this queue meets" in got[1]
    assert got[2] == "overflow loop: a → b → a"
    assert "always eligible" in got[3]
    assert sorted(got[4:]) == [
        "max_wait/max_length without 'overflow': callers past them are hung up",
        "no agent serves this queue: its callers are never answered by an agent",
    ]


def test_pydantic_errors_come_with_lines(tmp_path: Path) -> None:
    acd, errors, warnings = load(
        tmp_path,
        """
        skills: [sales]
        agents:
          a1: {endpoint: PJSIP/a1, max_calls: 0, colour: red}
        queues:
          q:
            overflow: {action: queue}
            relaxation:
              - {after: 0, lower_levels_by: 1}
              - {after: 5}
            ring_timeout: -1
        """,
    )
    assert acd is None and warnings == []
    assert sorted(where(errors)) == [
        (3, "agents.a1.colour"),
        (3, "agents.a1.max_calls"),
        (6, "queues.q.overflow"),
        (8, "queues.q.relaxation[0].after"),
        (9, "queues.q.relaxation[1]"),
        (10, "queues.q.ring_timeout"),
    ]


def test_ivr_queue_nodes_are_checked(tmp_path: Path) -> None:
    _, errors, _ = load(
        tmp_path,
        """
        skills: [language:nl, sales]
        agents:
          a1: {endpoint: PJSIP/a1, skills: {sales: 3}, queues: [sales]}
        queues:
          sales: {}
        flows:
          main:
            start: q
            nodes:
              q: {type: queue, queue: sales, skills: ["language:${lang}", sales, "sales=4", "billing", "language:"]}
              q2: {type: queue, queue: salse}
              cb: {type: callback, queue: nowhere, next: q}
        """,
        ivr=True,
    )
    assert [(i.line, i.path) for i in errors] == [
        (10, "flows.main.nodes.q.skills[3]"),
        (11, "flows.main.nodes.q2.queue"),
        (12, "flows.main.nodes.cb.queue"),
    ]
    assert "did you mean 'sales'" in errors[1].message


def test_root_prefixes_paths(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("acd:\n  skills: [a]\n  agents:\n    x: {endpoint: '', queues: [q]}\n  queues: {q: {}}\n")
    data, lines = load_yaml(path)
    acd = AcdConfig.model_validate(data["acd"])
    errors, _ = validate_acd(acd, lines=lines, file="c.yaml", root=("acd",))
    assert where(errors) == [(4, "acd.agents.x.endpoint")]


# ---- model-level -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"action": "queue"}, "needs a 'target'"),
        ({"action": "message"}, "needs 'sounds'"),
        ({"action": "hangup", "target": "x"}, "takes no 'target'"),
        ({"action": "queue", "target": "x", "sounds": ["s"]}, "takes no 'sounds'"),
        ({"action": "transfer"}, "Input should be"),
    ],
)
def test_overflow_shapes(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Overflow.model_validate(spec)


def test_overflow_good_shapes() -> None:
    assert Overflow(action="callback").target is None
    assert Overflow(action="callback", target="general").target == "general"
    assert Overflow(action="voicemail", sounds=["callcore/leave-message"]).sounds == ["callcore/leave-message"]
    assert Overflow(action="hangup").sounds == []


def test_relaxation_step_needs_something() -> None:
    with pytest.raises(ValidationError, match="needs lower_levels_by"):
        RelaxationStep(after=5)
    with pytest.raises(ValidationError):
        QueueConfig.model_validate({"colour": "red"})


def test_caller_skills() -> None:
    assert caller_skills(["language:nl", "sales", "", " ", "language:", "billing=4", "billing=2", "sales=3"]) == {
        "language:nl": 1,
        "sales": 3,
        "billing": 4,
    }
    for bad in ("sales=11", "sales=0", "sales=x", "=3"):
        with pytest.raises(ValueError, match="sales|level"):
            caller_skills([bad])
