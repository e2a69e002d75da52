"""Model-level validation (pydantic) of nodes and rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from callcore.ivr.model import BranchNode, CollectNode, IvrConfig, parse_range


def node(spec: dict) -> object:
    cfg = IvrConfig.model_validate({"flows": {"f": {"start": "n", "nodes": {"n": spec}}}})
    return cfg.flows["f"].nodes["n"]


def test_rule_in_alias_and_scalar_coercion() -> None:
    n = node({"type": "branch", "rules": [{"variable": "x", "in": [1, "a", True], "next": "n"}], "default": "n"})
    assert isinstance(n, BranchNode) and n.rules[0].in_ == ["1", "a", "true"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"variable": "x", "next": "n"}, "exactly one"),
        ({"variable": "x", "equals": "a", "matches": "b", "next": "n"}, "exactly one"),
        ({"equals": "a", "next": "n"}, "need a 'variable'"),
        ({"next": "n"}, "needs a condition"),
        ({"did": "1", "schedule": "s", "next": "n"}, "only goes with 'time'"),
    ],
)
def test_bad_rules(rule: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        node({"type": "branch", "rules": [rule], "default": "n"})


def test_collect_bounds() -> None:
    with pytest.raises(ValidationError, match="larger than max_digits"):
        node({"type": "collect", "variable": "v", "min_digits": 5, "max_digits": 4, "next": "n", "on_failure": "n"})
    with pytest.raises(ValidationError, match="variable name"):
        node({"type": "collect", "variable": "1v", "max_digits": 4, "next": "n", "on_failure": "n"})
    c = node({"type": "collect", "variable": "v", "max_digits": 4, "terminator": "", "next": "n", "on_failure": "n"})
    assert isinstance(c, CollectNode) and c.terminator == "" and c.min_digits == 1


def test_lookup_limits() -> None:
    base = {"type": "lookup", "url": "http://x/y", "next": "n", "on_error": "n"}
    with pytest.raises(ValidationError):
        node({**base, "timeout": 11})
    with pytest.raises(ValidationError, match="http"):
        node({**base, "url": "ftp://x"})
    with pytest.raises(ValidationError, match="dotted path"):
        node({**base, "map": {"a": "b..c"}})


def test_parse_range() -> None:
    assert parse_range("08:00-18:00") == (480, 1080)
    assert parse_range("0:00-24:00") == (0, 1440)
