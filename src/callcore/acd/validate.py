"""Static checks of the ACD config that need the whole config (pydantic checks single values in model.py).

``validate_acd`` returns ``(errors, warnings)``, each a list of ``ConfigIssue`` with the dotted YAML path
(``agents.agent01.skills.sales``) and the line of the deepest part of that path found in the file.

Errors: skills not declared in ``skills`` (agent skills, queue ``required_skills``, relaxation ``drop_skills``,
static IVR queue ``skills``), levels outside 1-10, empty or duplicate skill names in ``skills``, unknown queues
(agent ``queues``, overflow ``target``, ``add_agents_from``, IVR ``queue`` / ``callback`` nodes), an overflow to
the queue itself, empty endpoints, relaxation steps whose ``after`` does not increase, a queue ``survey`` that is
not a flow.
Warnings: queues no agent serves, queues whose requirements no serving agent meets (callers wait for relaxation or
overflow), agents serving no queue, overflow loops between queues, ``max_wait`` / ``max_length`` without
``overflow`` (callers are hung up), ``add_agents_from`` naming the queue itself, a survey flow with a queue node.

``check_acd`` runs both stages (pydantic, then these checks) on raw YAML data and returns every issue.
"""

from __future__ import annotations

from typing import Any

from callcore.acd.model import MAX_LEVEL, MIN_LEVEL, AcdConfig, QueueConfig
from callcore.config.loader import ConfigError, ConfigIssue, IssueCollector, dotted, line_for, unknown_name
from callcore.config.loader import validate as validate_model

Loc = tuple[str | int, ...]
SECTIONS = ("skills", "agents", "queues")




def _check_levels(out: IssueCollector, at: Loc, levels: dict[str, int], skills: set[str]) -> None:
    for skill, level in levels.items():
        if skill not in skills:
            out.error(at + (skill,), unknown_name("skill", skill, skills) + " (declare it under 'skills')")
        if not MIN_LEVEL <= level <= MAX_LEVEL:
            out.error(at + (skill,), f"level {level} is outside {MIN_LEVEL}-{MAX_LEVEL}")


def validate_acd(
    acd: AcdConfig,
    *,
    lines: dict[Any, int],
    file: str,
    root: Loc = (),
    ivr: Any = None,
    ivr_root: Loc = (),
) -> tuple[list[ConfigIssue], list[ConfigIssue]]:
    """Cross-checks of a validated AcdConfig → ``(errors, warnings)``, each sorted by line.

    ``lines`` comes from ``callcore.config.loader.load_yaml``; ``root`` is the YAML path under which
    ``skills``/``agents``/``queues`` live (``()`` when they are top-level sections). ``ivr`` (an
    ``IvrConfig``, optional, its ``flows`` under ``ivr_root``) enables the checks of IVR queue and callback nodes:
    their queues must exist, and their skills without ``${...}`` must be declared."""
    out = IssueCollector(lines, file, root)
    skills = set(acd.skills)
    queues = acd.queues

    seen: set[str] = set()
    for i, name in enumerate(acd.skills):
        if not name.strip():
            out.error(("skills", i), "empty skill name")
        elif name in seen:
            out.error(("skills", i), f"skill {name!r} is declared twice")
        seen.add(name)

    for aname, agent in acd.agents.items():
        at: Loc = ("agents", aname)
        if not agent.endpoint.strip():
            out.error(at + ("endpoint",), "empty endpoint (an Asterisk dial string such as PJSIP/agent01)")
        _check_levels(out, at + ("skills",), agent.skills, skills)
        for i, qname in enumerate(agent.queues):
            if qname not in queues:
                out.error(at + ("queues", i), unknown_name("queue", qname, queues))
        if not agent.queues:
            out.warn(at + ("queues",), "this agent serves no queue: it never gets calls")

    for qname, queue in queues.items():
        _check_queue(out, qname, queue, acd, skills)
    _check_overflow_loops(out, acd)

    if ivr is not None:
        _check_ivr_nodes(out, ivr, ivr_root, acd, skills)
        _check_surveys(out, ivr, acd)

    key = lambda i: (i.line or 0, i.path)  # noqa: E731
    return sorted(out.errors, key=key), sorted(out.warnings, key=key)


def _check_queue(out: IssueCollector, qname: str, queue: QueueConfig, acd: AcdConfig, skills: set[str]) -> None:
    at: Loc = ("queues", qname)
    queues = acd.queues
    _check_levels(out, at + ("required_skills",), queue.required_skills, skills)
    overflow = queue.overflow
    if overflow is not None and overflow.target is not None:
        if overflow.target not in queues:
            out.error(at + ("overflow", "target"), unknown_name("queue", overflow.target, queues))
        elif overflow.target == qname and overflow.action == "queue":
            out.error(at + ("overflow", "target"), "a queue cannot overflow to itself")
    if overflow is None and (queue.max_wait is not None or queue.max_length is not None):
        out.warn(at, "max_wait/max_length without 'overflow': callers past them are hung up")
    previous: float | None = None
    for i, step in enumerate(queue.relaxation):
        sat: Loc = at + ("relaxation", i)
        if previous is not None and step.after <= previous:
            out.error(sat + ("after",), f"after {step.after:g} must be larger than the step before ({previous:g})")
        previous = step.after
        for j, skill in enumerate(step.drop_skills):
            if skill not in skills:
                out.error(sat + ("drop_skills", j), unknown_name("skill", skill, skills))
        for j, other in enumerate(step.add_agents_from):
            if other not in queues:
                out.error(sat + ("add_agents_from", j), unknown_name("queue", other, queues))
            elif other == qname:
                out.warn(sat + ("add_agents_from", j), "the queue's own agents are always eligible")

    serving = [a for a in acd.agents.values() if qname in a.queues]
    borrowed = {o for s in queue.relaxation for o in s.add_agents_from}
    if not serving:
        if not any(set(a.queues) & borrowed for a in acd.agents.values()):
            out.warn(at, "no agent serves this queue: its callers are never answered by an agent")
    elif queue.required_skills and not any(
        all(a.skills.get(s, 0) >= lvl for s, lvl in queue.required_skills.items()) for a in serving
    ):
        out.warn(
            at + ("required_skills",),
            "no agent of this queue meets these requirements: callers wait for a relaxation step or overflow",
        )


def _check_overflow_loops(out: IssueCollector, acd: AcdConfig) -> None:
    """Warn once per loop of queue overflows (a → b → a): callers could bounce between them for ever."""
    nxt = {
        q: cfg.overflow.target
        for q, cfg in acd.queues.items()
        if cfg.overflow is not None and cfg.overflow.action == "queue" and cfg.overflow.target in acd.queues
    }
    reported: set[str] = set()
    for start in acd.queues:
        path: list[str] = []
        cur: str | None = start
        while cur is not None and cur not in path and cur not in reported:
            path.append(cur)
            cur = nxt.get(cur)
        if cur is not None and cur in path and cur not in reported:
            loop = path[path.index(cur):]
            if len(loop) > 1:
                out.warn(("queues", loop[0], "overflow", "target"), "overflow loop: " + " → ".join([*loop, loop[0]]))
            reported.update(loop)
        reported.update(path)


def _check_ivr_nodes(out: IssueCollector, ivr: Any, ivr_root: Loc, acd: AcdConfig, skills: set[str]) -> None:
    from callcore.ivr.model import CallbackNode, QueueNode

    for fname, flow in ivr.flows.items():
        for nname, node in flow.nodes.items():
            at: Loc = (*ivr_root, "flows", fname, "nodes", nname)
            if isinstance(node, (QueueNode, CallbackNode)) and node.queue not in acd.queues:
                out.errors.append(_abs(out, at + ("queue",), unknown_name("queue", node.queue, acd.queues)))
            if isinstance(node, QueueNode):
                for i, item in enumerate(node.skills):
                    name = item.rpartition("=")[0].strip() if "=" in item else item.strip()
                    if "${" not in item and name and not name.endswith(":") and name not in skills:
                        out.errors.append(_abs(out, at + ("skills", i), unknown_name("skill", name, skills)))


def _check_surveys(out: IssueCollector, ivr: Any, acd: AcdConfig) -> None:
    """A queue's post-call ``survey`` must be a flow; a survey that sends the caller to a queue again would start
    another conversation (and another survey), so that is flagged too."""
    from callcore.ivr.model import QueueNode

    for qname, queue in acd.queues.items():
        if queue.survey is None:
            continue
        at: Loc = ("queues", qname, "survey")
        flow = ivr.flows.get(queue.survey)
        if flow is None:
            out.error(at, unknown_name("flow", queue.survey, ivr.flows))
        elif any(isinstance(node, QueueNode) for node in flow.nodes.values()):
            out.warn(at, f"the survey flow {queue.survey!r} sends callers to a queue: after a survey they would "
                         "wait for an agent again")


def _abs(out: IssueCollector, loc: Loc, message: str) -> ConfigIssue:
    """An issue at ``loc`` from the YAML root (not under ``root``)."""
    return ConfigIssue(out.file, line_for(tuple(str(p) for p in loc), out.lines), dotted(loc), message)


def check_acd(
    data: Any, *, lines: dict[Any, int], file: str, ivr: Any = None
) -> tuple[AcdConfig | None, list[ConfigIssue], list[ConfigIssue]]:
    """Raw YAML data holding ``skills``, ``agents`` and ``queues`` at the top level (other keys are ignored) →
    the model (None if invalid), errors, warnings. Pydantic errors come first; the cross-checks run only on a
    valid model."""
    section = {k: data[k] for k in SECTIONS if isinstance(data, dict) and k in data}
    try:
        acd = validate_model(AcdConfig, section, lines, file)
    except ConfigError as exc:
        return None, list(exc.issues), []
    errors, warnings = validate_acd(acd, lines=lines, file=file, ivr=ivr)
    return acd, errors, warnings


__all__ = ["check_acd", "validate_acd"]
