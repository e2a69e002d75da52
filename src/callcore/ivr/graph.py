"""A flow as text: an indented tree (``render_tree``) or Graphviz dot (``render_dot``).

Used by ``callcore check-config --graph FLOW [--dot]``. Pure: returns strings.
"""

from __future__ import annotations

from callcore.ivr.model import Edge, Flow


def _edge_label(edge: Edge) -> str:
    """``option:1`` → ``1``; other labels as they are (next, on_failure, ok, error, rule:0, default, open...)."""
    return edge.label.split(":", 1)[1] if edge.label.startswith("option:") else edge.label


def render_tree(flow: Flow, *, name: str | None = None) -> str:
    """An indented tree from ``start``. Each node is expanded once; later references read
    ``→ node (see above)``; targets that do not exist read ``→ node (missing!)``. Unreachable nodes are
    listed at the end."""
    title = name if name is not None else flow.name
    lines: list[str] = [f"flow {title}" if title else "flow", ""]
    shown: set[str] = set()
    # Iterative depth-first walk: (depth, edge label or None for the root, node name).
    stack: list[tuple[int, str | None, str]] = [(0, None, flow.start)]
    while stack:
        depth, label, target = stack.pop()
        pad = "    " * depth
        head = f"{pad}{label} → " if label is not None else pad
        node = flow.nodes.get(target)
        if node is None:
            lines.append(f"{head}{target} (missing!)")
            continue
        if target in shown:
            lines.append(f"{head}{target} (see above)")
            continue
        shown.add(target)
        extra = ""
        if node.is_terminal:
            extra = " ■"
        lines.append(f"{head}{target} [{node.kind}]{extra}")
        for edge in reversed(node.edges()):
            stack.append((depth + 1, _edge_label(edge), edge.target))
    rest = [n for n in flow.nodes if n not in shown]
    if rest:
        lines += ["", "unreachable:"]
        lines += [f"    {n} [{flow.nodes[n].kind}]" for n in rest]
    return "\n".join(lines) + "\n"


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _q(*lines: str) -> str:
    """A quoted dot string; several lines are joined with dot's \\n."""
    return '"' + "\\n".join(_esc(x) for x in lines) + '"'


_SHAPES = {
    "menu": "box, style=rounded",
    "collect": "box, style=rounded",
    "branch": "diamond",
    "hours": "diamond",
    "set": "note",
    "lookup": "cylinder",
    "queue": "doubleoctagon",
    "transfer": "doubleoctagon",
    "hangup": "doubleoctagon",
}


def render_dot(flow: Flow, *, name: str | None = None) -> str:
    """Graphviz dot: one node per flow node (label ``name\\nkind``, shape by kind), one edge per transition
    labelled with the option key or outcome, an entry arrow into ``start``, missing targets in red."""
    title = name if name is not None else (flow.name or "flow")
    out = [f"digraph {_q(title)} {{", "    rankdir=LR;", "    node [shape=box, fontname=Helvetica];"]
    out.append('    "__start__" [shape=point, label=""];')
    out.append(f"    \"__start__\" -> {_q(flow.start)};")
    missing: set[str] = set()
    for node_name, node in flow.nodes.items():
        shape = _SHAPES.get(node.kind, "box")
        out.append(f"    {_q(node_name)} [label={_q(node_name, node.kind)}, shape={shape}];")
    if flow.start not in flow.nodes:
        missing.add(flow.start)
    for node_name, node in flow.nodes.items():
        for edge in node.edges():
            if edge.target not in flow.nodes:
                missing.add(edge.target)
            out.append(f"    {_q(node_name)} -> {_q(edge.target)} [label={_q(_edge_label(edge))}];")
    for m in sorted(missing):
        out.append(f"    {_q(m)} [label={_q(m, 'missing!')}, color=red, fontcolor=red, style=dashed];")
    out.append("}")
    return "\n".join(out) + "\n"
