"""Static checks of IVR flows that need the whole config (pydantic checks single values in model.py).

``validate_ivr`` returns ``(errors, warnings)``, each a list of ``ConfigIssue`` with the dotted YAML path
(``flows.main.nodes.main_menu.options.7``) and the line of the deepest part of that path found in the file.

Errors: unknown node targets (start, next, options, on_failure, on_error, rules, default, open, closed,
holiday), unknown schedules, menu option keys that are not one DTMF key, sounds missing from
``known_sounds``, loops made only of instant nodes (no prompt, no input), variables that shadow a built-in.
Warnings: nodes unreachable from ``start``, schedules that are never open, confirmations without
``confirm_options_prompt``.

Time zones, time ranges, regular expressions, URLs and field types are checked by pydantic while the model is
built; ``check_ivr`` runs both stages on raw YAML data and returns every issue of both.
"""

from __future__ import annotations

from typing import Any

from callcore.config.loader import ConfigError, ConfigIssue, IssueCollector, unknown_name
from callcore.config.loader import validate as validate_model
from callcore.ivr.media import sound_name
from callcore.ivr.model import BUILTIN_VARIABLES, DTMF_KEYS, BranchNode, CollectNode, Flow, HoursNode, IvrConfig, MenuNode

Loc = tuple[str | int, ...]




def validate_ivr(
    ivr: IvrConfig,
    *,
    lines: dict[Any, int],
    file: str,
    known_sounds: set[str] | None = None,
    root: Loc = (),
) -> tuple[list[ConfigIssue], list[ConfigIssue]]:
    """Cross-checks of a validated IvrConfig → ``(errors, warnings)``, each sorted by line.

    ``lines`` comes from ``callcore.config.loader.load_yaml``; ``root`` is the YAML path under which
    ``flows``/``schedules`` live (``()`` when they are top-level sections). ``known_sounds`` (names such as
    ``hello-world``, ``callcore/welcome``) enables the missing-sound check."""
    out = IssueCollector(lines, file, root)
    for sname, schedule in ivr.schedules.items():
        if not any(getattr(schedule.weekly, day) for day in type(schedule.weekly).model_fields):
            out.warn(("schedules", sname, "weekly"), "this schedule is never open (no opening ranges)")
    for fname, flow in ivr.flows.items():
        _check_flow(out, ("flows", fname), flow, ivr, known_sounds)
    key = lambda i: (i.line or 0, i.path)  # noqa: E731
    return sorted(out.errors, key=key), sorted(out.warnings, key=key)


def _check_flow(out: IssueCollector, base: Loc, flow: Flow, ivr: IvrConfig, known_sounds: set[str] | None) -> None:
    nodes = flow.nodes
    if flow.start not in nodes:
        out.error(base + ("start",), "start node: " + unknown_name("node", flow.start, nodes))
    if flow.resume_at is not None and flow.resume_at not in nodes:
        out.error(base + ("resume_at",), "resume_at: " + unknown_name("node", flow.resume_at, nodes))
    for name, node in nodes.items():
        at = base + ("nodes", name)
        for edge in node.edges():
            if edge.target not in nodes:
                out.error(at + edge.loc, unknown_name("node", edge.target, nodes))
        if isinstance(node, MenuNode):
            for key in node.options:
                if key not in DTMF_KEYS:
                    out.error(at + ("options", key), f"option {key!r} is not one DTMF key (0-9, * or #)")
        if isinstance(node, HoursNode) and node.schedule not in ivr.schedules:
            out.error(at + ("schedule",), unknown_name("schedule", node.schedule, ivr.schedules))
        if isinstance(node, BranchNode):
            for i, rule in enumerate(node.rules):
                if rule.schedule is not None and rule.schedule not in ivr.schedules:
                    out.error(at + ("rules", i, "schedule"), unknown_name("schedule", rule.schedule, ivr.schedules))
        if isinstance(node, CollectNode) and node.confirm and not node.confirm_options_prompt:
            out.warn(at + ("confirm",), "confirm without confirm_options_prompt: callers are not told to press 1 or 2")
        for var, loc in node.assigned_variables():
            if var in BUILTIN_VARIABLES:
                out.error(at + loc, f"{var!r} is a built-in variable and cannot be set")
        if known_sounds is not None:
            for field_name, items in node.media_fields().items():
                for i, item in enumerate(items):
                    sound = sound_name(item)
                    if sound is not None and sound not in known_sounds:
                        out.error(at + (field_name, i), f"unknown sound {sound!r} (not found in the sounds directory)")
    _check_reachable(out, base, flow)
    _check_instant_cycles(out, base, flow)


def _check_reachable(out: IssueCollector, base: Loc, flow: Flow) -> None:
    if flow.start not in flow.nodes:
        return
    seen = {flow.start}
    todo = [flow.start]
    while todo:
        for edge in flow.nodes[todo.pop()].edges():
            if edge.target in flow.nodes and edge.target not in seen:
                seen.add(edge.target)
                todo.append(edge.target)
    for name in flow.nodes:
        if name not in seen:
            out.warn(base + ("nodes", name), f"node {name!r} is unreachable from start {flow.start!r}")


def instant_cycles(flow: Flow) -> list[list[str]]:
    """Loops made only of instant nodes (branch, hours, set, callback without prompt): each as a node list
    ``[a, b, a]``, one per strongly connected component."""
    instant = {n for n, node in flow.nodes.items() if node.is_instant}
    graph = {n: [e.target for e in flow.nodes[n].edges() if e.target in instant] for n in instant}
    order = list(flow.nodes)  # deterministic
    # Kosaraju, iterative.
    visited: set[str] = set()
    finish: list[str] = []
    for root in (n for n in order if n in instant):
        if root in visited:
            continue
        visited.add(root)
        stack = [(root, iter(graph[root]))]
        while stack:
            node, it = stack[-1]
            nxt = next((t for t in it if t not in visited), None)
            if nxt is None:
                finish.append(node)
                stack.pop()
            else:
                visited.add(nxt)
                stack.append((nxt, iter(graph[nxt])))
    reverse: dict[str, list[str]] = {n: [] for n in instant}
    for n, targets in graph.items():
        for t in targets:
            reverse[t].append(n)
    assigned: set[str] = set()
    cycles: list[list[str]] = []
    for root in reversed(finish):
        if root in assigned:
            continue
        comp = {root}
        todo = [root]
        assigned.add(root)
        while todo:
            for t in reverse[todo.pop()]:
                if t not in assigned:
                    assigned.add(t)
                    comp.add(t)
                    todo.append(t)
        first = next(n for n in order if n in comp)
        if len(comp) == 1 and first not in graph[first]:
            continue
        cycles.append(_cycle_through(first, comp, graph))
    cycles.sort(key=lambda c: order.index(c[0]))
    return cycles


def _cycle_through(first: str, comp: set[str], graph: dict[str, list[str]]) -> list[str]:
    """A shortest path first → ... → first inside ``comp`` (BFS)."""
    parent: dict[str, str] = {}
    queue = [first]
    while queue:
        cur = queue.pop(0)
        for t in graph[cur]:
            if t not in comp:
                continue
            if t == first:
                path = [cur]
                while path[-1] != first:
                    path.append(parent[path[-1]])
                return [*reversed(path), first]
            if t not in parent:
                parent[t] = cur
                queue.append(t)
    return [first, first]  # pragma: no cover (a component always has a cycle through each node)


def _check_instant_cycles(out: IssueCollector, base: Loc, flow: Flow) -> None:
    for cycle in instant_cycles(flow):
        out.error(
            base + ("nodes", cycle[0]),
            "loop without caller input (only branch/hours/set/callback-without-prompt nodes): "
            + " → ".join(cycle),
        )


def check_ivr(
    data: Any,
    *,
    lines: dict[Any, int],
    file: str,
    known_sounds: set[str] | None = None,
) -> tuple[IvrConfig | None, list[ConfigIssue], list[ConfigIssue]]:
    """Raw YAML data holding ``flows`` and ``schedules`` (other top-level keys are ignored) → the model (None
    if invalid), errors, warnings. Pydantic errors come first; the cross-checks run only on a valid model."""
    section = {k: data[k] for k in ("flows", "schedules") if isinstance(data, dict) and k in data}
    try:
        ivr = validate_model(IvrConfig, section, lines, file)
    except ConfigError as exc:
        return None, list(exc.issues), []
    errors, warnings = validate_ivr(ivr, lines=lines, file=file, known_sounds=known_sounds)
    return ivr, errors, warnings
