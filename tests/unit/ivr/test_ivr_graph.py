"""Text renderings of a flow."""

from __future__ import annotations

from callcore.ivr.graph import render_dot, render_tree
from callcore.ivr.model import IvrConfig

CFG = IvrConfig.model_validate({"flows": {"main": {"start": "welcome", "nodes": {
    "welcome": {"type": "play", "sounds": ["callcore/welcome"], "next": "main_menu"},
    "main_menu": {"type": "menu", "options": {"1": "sales", "2": "main_menu", "3": "ghost"}, "on_failure": "bye"},
    "sales": {"type": "queue", "queue": "sales"},
    "bye": {"type": "hangup"},
    "lonely": {"type": "hangup"},
}}}})


def test_tree() -> None:
    assert render_tree(CFG.flows["main"]) == (
        "flow main\n"
        "\n"
        "welcome [play]\n"
        "    next → main_menu [menu]\n"
        "        1 → sales [queue] ■\n"
        "        2 → main_menu (see above)\n"
        "        3 → ghost (missing!)\n"
        "        on_failure → bye [hangup] ■\n"
        "\n"
        "unreachable:\n"
        "    lonely [hangup]\n"
    )


def test_dot() -> None:
    dot = render_dot(CFG.flows["main"])
    assert dot.startswith('digraph "main" {')
    assert '"__start__" -> "welcome";' in dot
    assert '"main_menu" -> "sales" [label="1"];' in dot
    assert '"main_menu" -> "bye" [label="on_failure"];' in dot
    assert '"main_menu" [label="main_menu\\nmenu", shape=box, style=rounded];' in dot
    assert '"ghost" [label="ghost\\nmissing!", color=red' in dot
    assert dot.rstrip().endswith("}")
