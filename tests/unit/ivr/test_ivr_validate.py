"""Static checks of flows, with real line numbers from YAML loaded by callcore.config.loader."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from callcore.config.loader import ConfigError, ConfigIssue, load_yaml, validate
from callcore.ivr.model import IvrConfig
from callcore.ivr.validate import check_ivr, instant_cycles, validate_ivr


def load(tmp_path: Path, text: str, known_sounds: set[str] | None = None):
    path = tmp_path / "callcore.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    data, lines = load_yaml(path)
    return check_ivr(data, lines=lines, file="callcore.yaml", known_sounds=known_sounds)


def only(issues: list[ConfigIssue]) -> ConfigIssue:
    assert len(issues) == 1, issues
    return issues[0]


GOOD = """
schedules:
  office:
    timezone: Europe/Amsterdam
    weekly:
      mon: ["08:00-18:00"]
flows:
  main:
    start: hours
    nodes:
      hours: {type: hours, schedule: office, open: menu, closed: bye}
      menu:
        type: menu
        prompt: [callcore/main-menu]
        options: {1: bye, "#": bye}
        on_failure: bye
      bye: {type: hangup, sounds: [callcore/goodbye, "sound:${x}", "digits:12"]}
"""


def test_a_good_config_has_no_issues(tmp_path: Path) -> None:
    ivr, errors, warnings = load(tmp_path, GOOD, {"callcore/main-menu", "callcore/goodbye"})
    assert ivr is not None and errors == [] and warnings == []
    assert ivr.flows["main"].nodes["menu"].options == {"1": "bye", "#": "bye"}  # type: ignore[union-attr]
    assert ivr.flows["main"].name == "main"


def test_unknown_targets(tmp_path: Path) -> None:
    _, errors, _ = load(tmp_path, """
        flows:
          main:
            start: menu
            nodes:
              menu:
                type: menu
                options:
                  1: bye
                  2: byee
                on_failure: nowhere
              bye: {type: hangup}
              br:
                type: branch
                rules:
                  - {did: "^1", next: ghost}
                default: bye
    """)
    got = {(e.path, e.line) for e in errors}
    assert ("flows.main.nodes.menu.options.2", 9) in got
    assert ("flows.main.nodes.menu.on_failure", 10) in got
    assert ("flows.main.nodes.br.rules[0].next", 15) in got
    assert any("did you mean 'bye'" in e.message for e in errors)
    assert len(errors) == 3


def test_missing_start(tmp_path: Path) -> None:
    _, errors, _ = load(tmp_path, """
        flows:
          main:
            start: welcome
            nodes:
              bye: {type: hangup}
    """)
    issue = only(errors)
    assert (issue.path, issue.line) == ("flows.main.start", 3)
    assert "welcome" in issue.message


def test_unknown_schedule(tmp_path: Path) -> None:
    _, errors, _ = load(tmp_path, """
        flows:
          main:
            start: h
            nodes:
              h: {type: hours, schedule: ofice, open: bye, closed: bye}
              b:
                type: branch
                rules: [{time: "12:00-13:00", schedule: office, next: bye}]
                default: bye
              bye: {type: hangup}
        schedules:
          office: {timezone: UTC, weekly: {mon: ["08:00-17:00"]}}
    """)
    issue = only(errors)
    assert (issue.path, issue.line) == ("flows.main.nodes.h.schedule", 5)
    assert "did you mean 'office'" in issue.message


def test_unreachable_nodes_are_warnings(tmp_path: Path) -> None:
    _, errors, warnings = load(tmp_path, """
        flows:
          main:
            start: bye
            nodes:
              bye: {type: hangup}
              lonely: {type: play, sounds: [x], next: bye}
    """)
    assert errors == []
    issue = only(warnings)
    assert (issue.path, issue.line) == ("flows.main.nodes.lonely", 6)
    assert "unreachable" in issue.message


def test_missing_sounds(tmp_path: Path) -> None:
    _, errors, _ = load(tmp_path, """
        flows:
          main:
            start: p
            nodes:
              p:
                type: play
                sounds:
                  - hello-world
                  - callcore/welcom
                  - "sound:callcore/${lang}/x"
                  - "sound:nope"
                  - "digits:${account}"
                next: bye
              bye: {type: hangup, sounds: [callcore/welcome]}
    """, known_sounds={"hello-world", "callcore/welcome"})
    assert [(e.path, e.line) for e in errors] == [
        ("flows.main.nodes.p.sounds[1]", 9),
        ("flows.main.nodes.p.sounds[3]", 11),
    ]
    assert "callcore/welcom" in errors[0].message


def test_instant_cycle_is_an_error(tmp_path: Path) -> None:
    ivr, errors, _ = load(tmp_path, """
        flows:
          main:
            start: a
            nodes:
              a: {type: set, variables: {x: "1"}, next: b}
              b:
                type: branch
                rules: [{variable: x, equals: "1", next: c}]
                default: bye
              c: {type: set, variables: {z: "1"}, next: a}
              d: {type: set, variables: {y: "1"}, next: d}
              m: {type: menu, options: {1: a}, on_failure: m}
              bye: {type: hangup}
    """)
    assert [(e.path, e.line) for e in errors] == [("flows.main.nodes.a", 5), ("flows.main.nodes.d", 11)]
    assert errors[0].message.endswith("a → b → c → a")
    assert errors[1].message.endswith("d → d")
    assert ivr is not None and instant_cycles(ivr.flows["main"]) == [["a", "b", "c", "a"], ["d", "d"]]


def test_menu_option_keys(tmp_path: Path) -> None:
    _, errors, _ = load(tmp_path, """
        flows:
          main:
            start: m
            nodes:
              m:
                type: menu
                options:
                  "1": bye
                  "12": bye
                  7: bye
                  A: bye
                on_failure: bye
              bye: {type: hangup}
    """)
    assert [(e.path, e.line) for e in errors] == [
        ("flows.main.nodes.m.options.12", 9),
        ("flows.main.nodes.m.options.A", 11),
    ]


def test_builtin_variables_cannot_be_set(tmp_path: Path) -> None:
    _, errors, _ = load(tmp_path, """
        flows:
          main:
            start: s
            nodes:
              s: {type: set, variables: {did: "1"}, next: bye}
              bye: {type: hangup}
    """)
    assert only(errors).path == "flows.main.nodes.s.variables.did"


# ---- checks done by pydantic: message, path and line must still be good ---------------------------------------


def test_bad_time_zone(tmp_path: Path) -> None:
    ivr, errors, _ = load(tmp_path, """
        schedules:
          office:
            timezone: Europe/Amsterdan
        flows: {}
    """)
    assert ivr is None
    issue = only(errors)
    assert (issue.path, issue.line) == ("schedules.office.timezone", 3)
    assert "unknown time zone 'Europe/Amsterdan'" in issue.message


@pytest.mark.parametrize(
    ("text", "message"),
    [("08:00", "HH:MM-HH:MM"), ("18:00-08:00", "after the start"), ("08:00-25:00", "not a time of day"),
     ("08:61-09:00", "not a time of day")],
)
def test_bad_time_ranges(tmp_path: Path, text: str, message: str) -> None:
    _, errors, _ = load(tmp_path, f"""
        schedules:
          office:
            timezone: UTC
            weekly:
              tue: ["08:00-12:00", "{text}"]
    """)
    issue = only(errors)
    assert (issue.path, issue.line) == ("schedules.office.weekly.tue[1]", 5)
    assert message in issue.message


def test_bad_regexes_and_branch_time(tmp_path: Path) -> None:
    _, errors, _ = load(tmp_path, """
        flows:
          main:
            start: c
            nodes:
              c:
                type: collect
                variable: acc
                max_digits: 4
                pattern: "[0-9"
                next: b
                on_failure: b
              b:
                type: branch
                rules:
                  - {caller_number: "(+31", next: c}
                  - {time: "13:00-12:00", next: c}
                default: c
    """)
    got = {(e.path, e.line) for e in errors}
    assert got == {
        ("flows.main.nodes.c.pattern", 9),
        ("flows.main.nodes.b.rules[0].caller_number", 15),
        ("flows.main.nodes.b.rules[1].time", 16),
    }
    assert all("regular expression" in e.message or "after the start" in e.message for e in errors)


def test_unknown_node_type_and_unknown_field(tmp_path: Path) -> None:
    _, errors, _ = load(tmp_path, """
        flows:
          main:
            start: a
            nodes:
              a: {type: ply, sounds: [x], next: b}
              b:
                type: hangup
                sound: [x]
    """)
    got = {(e.path, e.line): e.message for e in errors}
    assert "unknown node 'type'" in got[("flows.main.nodes.a", 5)]
    assert ("flows.main.nodes.b.sound", 8) in got  # no "hangup"/"function-hangup" in the path


def test_lead_can_use_loader_validate_directly(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("flows:\n  main:\n    start: a\n    nodes:\n      a: {type: queue, queue: q, ring_timeout: -1}\n")
    data, lines = load_yaml(path)
    with pytest.raises(ConfigError) as exc:
        validate(IvrConfig, data, lines, "c.yaml")
    issue = only(exc.value.issues)
    assert (issue.path, issue.line) == ("flows.main.nodes.a.ring_timeout", 5)


def test_validate_ivr_with_root_prefix(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("ivr:\n  flows:\n    main:\n      start: nope\n      nodes:\n        a: {type: hangup}\n")
    data, lines = load_yaml(path)
    ivr = IvrConfig.model_validate(data["ivr"])
    errors, warnings = validate_ivr(ivr, lines=lines, file="c.yaml", known_sounds=None, root=("ivr",))
    assert [(e.path, e.line) for e in errors] == [("ivr.flows.main.start", 4)]
    assert [(w.path, w.line) for w in warnings] == []  # no start: reachability is not judged


def test_resume_at_must_name_a_node(tmp_path: Path) -> None:
    _, errors, _ = load(tmp_path, GOOD.replace("    start: hours\n", "    start: hours\n    resume_at: menuu\n"))
    error = only(errors)
    assert error.path == "flows.main.resume_at" and error.line == 9 and "did you mean 'menu'" in error.message
