"""``callcore sim dialer``: simulate one outbound campaign under callcore's pacer and the baselines (planning).

``add_sim_parser(subparsers)`` registers ``sim`` (with ``dialer`` under it) on the ``callcore`` subparsers;
``add_dialer_parser(sim_subparsers)`` registers only ``dialer`` on an existing ``sim`` group. The handler
:func:`cmd_sim_dialer` runs the scenario (several seeds, common random numbers) and prints, side by side:
progressive 1:1, a VICIdial-style ADAPT dial level, the best fixed dial ratio found by searching (optional), and
callcore's pacer. Pure simulation: no database, no Asterisk. Exit code 0, or 2 for invalid arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_dialer_parser", "add_sim_parser", "cmd_sim_dialer"]


def add_sim_parser(subparsers: Any) -> None:
    """Register ``sim`` → ``dialer`` on the ``callcore`` subparsers."""
    p = subparsers.add_parser("sim", help="simulators (no database, no Asterisk)")
    add_dialer_parser(p.add_subparsers(dest="sim_kind", required=True))


def _pair(text: str) -> tuple[float, float]:
    try:
        a, b = text.split(":")
        return float(a), float(b)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOURS:VALUE, got {text!r}") from None


def add_dialer_parser(sim_subparsers: Any) -> None:
    """Register ``dialer`` on a ``sim`` subparsers group."""
    p = sim_subparsers.add_parser(
        "dialer", help="an outbound campaign: callcore's pacer against progressive, VICIdial-style and fixed ratio",
        description="Simulate an outbound campaign shift and compare dial policies on the same calls.")
    p.add_argument("--agents", type=int, default=20)
    p.add_argument("--answer-rate", type=float, default=0.3, help="P(a live person answers), default 0.3")
    p.add_argument("--answer-rate-after", type=_pair, action="append", default=[], metavar="HOURS:RATE",
                   help="the answer rate changes at this hour (repeatable)")
    p.add_argument("--talk", type=float, default=180.0, help="mean talk time, seconds (log-normal)")
    p.add_argument("--talk-cv", type=float, default=1.0, help="talk time coefficient of variation")
    p.add_argument("--wrap", type=float, default=30.0, help="wrap-up seconds")
    p.add_argument("--ring", type=float, default=8.0, help="mean seconds from dial to a live answer")
    p.add_argument("--no-answer", type=float, default=30.0, help="seconds before an unanswered call is given up")
    p.add_argument("--hours", type=float, default=8.0)
    p.add_argument("--logout", type=_pair, action="append", default=[], metavar="HOURS:SHARE",
                   help="this share of the agents logs out at this hour (repeatable)")
    p.add_argument("--inbound-per-hour", type=float, default=0.0, help="blended inbound calls on the same agents")
    p.add_argument("--preset", choices=["us_ftc", "uk_ofcom"], default="us_ftc")
    p.add_argument("--max-lines", type=float, default=3.0, help="pacer: calls ringing per agent, at most")
    p.add_argument("--seeds", type=int, default=3, help="replications (seeds 1..N)")
    p.add_argument("--ratio", type=float, help="compare with this fixed dial ratio (VICIdial line count) "
                                               "instead of searching for the best one")
    p.add_argument("--no-search", action="store_true", help="no fixed-ratio baseline (faster)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sim_dialer)


def _scenario(args: argparse.Namespace) -> Any:
    from callcore.dialer.compliance import preset
    from callcore.sim.model import Constant, LogNormal
    from callcore.sim.outbound import OutboundScenario

    hour = 3600.0
    answer: Any = args.answer_rate
    if args.answer_rate_after:
        answer = ((0.0, args.answer_rate), *((h * hour, r) for h, r in sorted(args.answer_rate_after)))
    other = ((0.60, Constant(args.no_answer)), (0.15, LogNormal(4.0, 0.5)), (0.25, LogNormal(12.0, 0.4)))
    return OutboundScenario(
        agents=args.agents, hours=args.hours, answer_rate=answer, talk=LogNormal(args.talk, args.talk_cv),
        wrap=Constant(args.wrap), live_ring=LogNormal(args.ring, 0.5), other_outcomes=other,
        logouts=tuple((h * hour, s) for h, s in args.logout), inbound_per_hour=args.inbound_per_hour,
        policy=preset(args.preset))


def _check(args: argparse.Namespace) -> str | None:
    if args.agents < 1 or args.seeds < 1 or args.hours <= 0:
        return "--agents, --seeds and --hours must be positive"
    rates = [args.answer_rate, *(r for _, r in args.answer_rate_after)]
    if not all(0.0 < r <= 1.0 for r in rates):
        return "answer rates must be in (0, 1]"
    if min(args.talk, args.ring, args.no_answer) <= 0 or args.wrap < 0 or args.talk_cv <= 0:
        return "durations must be positive (wrap-up may be 0)"
    if not all(0.0 <= s <= 1.0 for _, s in args.logout):
        return "--logout shares must be in [0, 1]"
    if args.max_lines < 1 or (args.ratio is not None and args.ratio < 1):
        return "--max-lines and --ratio must be >= 1"
    return None


def _best_ratio(sc: Any, seeds: list[int], tally: str, limit: float) -> tuple[float, list[Any]]:
    """The largest fixed level (to 0.05) whose shift abandonment stays within ``limit`` on every seed."""
    from callcore.sim.dialer_baselines import FixedRatio
    from callcore.sim.outbound import simulate_outbound

    def runs(level: float) -> list[Any]:
        return [simulate_outbound(sc, FixedRatio(level, tally), s) for s in seeds]

    step = 0.1 if tally == "incall" else 0.5
    lo, lo_runs = 1.0, runs(1.0)
    hi = None
    level = 1.0
    while level < 8.0:
        level = round(level + step, 2)
        r = runs(level)
        if all(x.abandon_rate <= limit for x in r):
            lo, lo_runs = level, r
        else:
            hi = level
            break
    while hi is not None and hi - lo > 0.051:
        mid = round((lo + hi) / 2, 3)
        r = runs(mid)
        if all(x.abandon_rate <= limit for x in r):
            lo, lo_runs = mid, r
        else:
            hi = mid
    return lo, lo_runs


def _summary(label: str, results: list[Any]) -> dict[str, Any]:
    n = len(results)
    return {
        "policy": label,
        "utilization": sum(r.utilization for r in results) / n,
        "occupancy": sum(r.occupancy for r in results) / n,
        "abandoned": sum(r.abandon_rate for r in results) / n,
        "abandoned_worst_run": max(r.abandon_rate for r in results),
        "worst_hour_after_first": max(r.worst_hour_rate for r in results),
        "worst_15min_after_first_hour": max(r.worst_quarter_rate for r in results),
        "connects_per_agent_hour": sum(r.connects_per_agent_hour for r in results) / n,
    }


def cmd_sim_dialer(args: argparse.Namespace) -> int:
    from callcore.dialer.pacing import PacerConfig
    from callcore.sim.dialer_baselines import FixedRatio, Progressive, VicidialAdapt
    from callcore.sim.outbound import CallcorePacer, simulate_outbound

    problem = _check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    sc = _scenario(args)
    seeds = list(range(1, args.seeds + 1))
    limit = sc.policy.limit
    rows = []
    rows.append(_summary("(a) progressive 1:1", [simulate_outbound(sc, Progressive(), s) for s in seeds]))
    rows.append(_summary("(b) VICIdial-style ADAPT_HARD_LIMIT",
                         [simulate_outbound(sc, VicidialAdapt("HARD_LIMIT"), s) for s in seeds]))
    if args.ratio is not None:
        rows.append(_summary(f"(c) fixed ratio {args.ratio:.2f} (VICIdial line count)",
                             [simulate_outbound(sc, FixedRatio(args.ratio), s) for s in seeds]))
    elif not args.no_search:
        print("searching the best fixed dial ratios ...", file=sys.stderr)
        for tally, what in (("incall", "VICIdial line count"), ("available", "ready agents only")):
            level, runs = _best_ratio(sc, seeds, tally, limit)
            rows.append(_summary(f"(c) best fixed ratio {level:.2f} ({what})", runs))
    config = PacerConfig(max_lines_per_agent=args.max_lines)
    rows.append(_summary("(d) callcore pacer", [simulate_outbound(sc, CallcorePacer(config), s) for s in seeds]))

    if args.json:
        print(json.dumps({"seeds": seeds, "limit": limit, "results": rows}, indent=2))
        return 0
    print(f"{args.agents} agents, answer rate {args.answer_rate:g}, talk {args.talk:g} s (cv {args.talk_cv:g}), "
          f"wrap-up {args.wrap:g} s, {args.hours:g} h, preset {args.preset}, seeds {seeds[0]}..{seeds[-1]}")
    head = f"{'policy':48} {'util':>6} {'occup':>6} {'aband':>7} {'worst run':>9} {'worst h':>8} {'worst 15m':>9} {'conn/ag-h':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['policy']:48} {r['utilization']:6.3f} {r['occupancy']:6.3f} {100 * r['abandoned']:6.2f}% "
              f"{100 * r['abandoned_worst_run']:8.2f}% {100 * r['worst_hour_after_first']:7.2f}% "
              f"{100 * r['worst_15min_after_first_hour']:8.2f}% {r['connects_per_agent_hour']:9.2f}")
    print("utilization = talk time / logged-in time; occupancy = (talk + wrap-up) / logged-in time; "
          "abandoned = no agent within 2 s of a live answer, per live answer; worst h / worst 15m: worst clock "
          "hour / 15 minutes after the first hour, over the runs.")
    return 0
