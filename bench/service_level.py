"""ACD service-level benchmark: the simulator against Erlang, and callcore's router against two baselines.

Run: ``.venv/bin/python bench/service_level.py`` (well under 3 minutes on one core; pure Python, no I/O).

(a) Sanity, single skill: the published case (100 calls / 30 min, AHT 3 min exponential, 14 agents, target
    20 s, no abandonment) simulated for many hours → SL, ASA, P(wait), occupancy vs Erlang C; and the same
    queue with exponential patience (mean 120 s) and 12 agents vs Erlang A.
(b) A multi-skill center (nl-billing, nl-tech, en-billing, en-tech; every agent has two skills, a primary at
    level 9 and a secondary at level 5; lognormal talk times, 20 s wrap-up, exponential patience with mean
    120 s), 8 hours, several seeds, at equal staffing: callcore's router (its two policies with the skills
    required at level 1, and its default policy with relaxation: level 9 required, lowered to 5 after 10 s;
    plus a sweep of that delay) vs the BASELINES
    ``app_queue_like`` (Asterisk app_queue style) and ``naive_fifo``: SL 80/20 per call type, ASA,
    abandonment, and the ratios.
(c) Staffing: with the skill mix fixed in proportion, the smallest total head count that meets 80/20 for
    every call type (counts pooled over the seeds), per router, divided by the fully pooled Erlang C bound
    (one queue, all traffic, every agent able to take every call).

Options: ``--seeds N`` (b, c; default 20), ``--hours H`` (b, c; default 8), ``--quick``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from callcore.acd.model import QueueConfig, RelaxationStep  # noqa: E402
from callcore.acd.router import DEFAULT_POLICY, POLICIES  # noqa: E402
from callcore.kpi.erlang import agents_for_service_level, asa, erlang_a, erlang_c, occupancy, service_level  # noqa: E402
from callcore.sim import (  # noqa: E402
    AgentGroup,
    CallType,
    Constant,
    Exponential,
    LogNormal,
    Router,
    Scenario,
    SimResult,
    app_queue_like,
    callcore_router,
    combine,
    naive_fifo,
    queue_configs,
    simulate,
)

TARGET = 20.0
SL_GOAL = 0.80
WRAP = 20.0

# name, calls per hour, mean talk seconds
CALL_TYPES = [
    ("nl-billing", 170, 220.0),
    ("nl-tech", 110, 400.0),
    ("en-billing", 60, 250.0),
    ("en-tech", 36, 460.0),
]
# group, head count at the equal-staffing point, skills (primary 9, secondary 5)
GROUPS = [
    ("nl-billing+nl-tech", 12, {"nl-billing": 9, "nl-tech": 5}),
    ("nl-tech+nl-billing", 13, {"nl-tech": 9, "nl-billing": 5}),
    ("en-billing+nl-billing", 5, {"en-billing": 9, "nl-billing": 5}),
    ("en-tech+nl-tech", 5, {"en-tech": 9, "nl-tech": 5}),
    ("en-billing+en-tech", 4, {"en-billing": 9, "en-tech": 5}),
]


def multi_skill(hours: float, counts: dict[str, int] | None = None) -> Scenario:
    cts = tuple(
        CallType(name, rate, LogNormal(talk, 0.9), patience=Exponential(120.0), wrap_up=Constant(WRAP))
        for name, rate, talk in CALL_TYPES
    )
    groups = tuple(AgentGroup(g, (counts or {}).get(g, n), skills) for g, n, skills in GROUPS)
    return Scenario(cts, groups, horizon_seconds=hours * 3600.0, target_seconds=TARGET)


RELAX_AFTER = 10.0


def relaxed_queues(scenario: Scenario, after: float) -> dict[str, QueueConfig]:
    """Each queue asks for its skill at level 9 (the primaries), lowered by 4 (to 5: the secondaries) once the
    caller has waited ``after`` seconds."""
    return {
        q: cfg.model_copy(update={"required_skills": {s: 9 for s in cfg.required_skills},
                                  "relaxation": [RelaxationStep(after=after, lower_levels_by=4)]})
        for q, cfg in queue_configs(scenario).items()
    }


def routers(scenario: Scenario) -> dict[str, Router]:
    queues = queue_configs(scenario)
    out: dict[str, Router] = {}
    for name, policy in POLICIES.items():
        out[f"callcore {name}"] = callcore_router(queues, policy)
    out[f"callcore {DEFAULT_POLICY.name} + relax {RELAX_AFTER:g} s"] = callcore_router(
        relaxed_queues(scenario, RELAX_AFTER), DEFAULT_POLICY)
    out["app_queue_like (baseline)"] = app_queue_like()
    out["naive_fifo (baseline)"] = naive_fifo
    return out


def run(scenario: Scenario, router: Router, seeds: int) -> tuple[SimResult, list[SimResult]]:
    runs = [simulate(scenario, router, seed=s) for s in range(1, seeds + 1)]
    return combine(runs), runs


def ci95(values: list[float]) -> float:
    return 1.96 * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |")
    print()


# ------------------------------------------------------------------------------------------------------- (a)


def part_a(quick: bool) -> None:
    seeds, hours = (4, 50) if quick else (10, 100)
    print(f"## (a) single skill: simulator vs Erlang C / Erlang A ({seeds} seeds × {hours} h, 1 h warm-up each)\n")
    rate, aht = 200.0, 180.0  # 100 calls per 30 min, 3 min
    traffic = rate * aht / 3600.0
    rows = []
    for label, n, patience in (("Erlang C, 14 agents", 14, None), ("Erlang A, 12 agents, patience 120 s", 12, 120.0)):
        ct = CallType("q", rate, Exponential(aht), patience=Exponential(patience) if patience else None)
        sc = Scenario((ct,), (AgentGroup("g", n, {"q": 5}),), horizon_seconds=hours * 3600.0, warmup_seconds=3600.0)
        total, runs = run(sc, naive_fifo, seeds)
        o = total.overall
        sl_ci = ci95([r.overall.service_level for r in runs])
        asa_ci = ci95([r.overall.asa for r in runs])
        pw_ci = ci95([r.overall.p_wait for r in runs])
        if patience is None:
            theory = dict(sl=service_level(traffic, n, aht, TARGET), asa=asa(traffic, n, aht),
                          ab=0.0, occ=occupancy(traffic, n), pw=erlang_c(traffic, n))
        else:
            ea = erlang_a(rate / 3600.0, 1 / aht, n, patience, TARGET)
            theory = dict(sl=ea.service_level, asa=ea.asa, ab=ea.p_abandon, occ=ea.occupancy, pw=ea.p_wait)
        rows.append([label, "theory", f"{theory['pw']:.4f}", f"{theory['sl']:.4f}", f"{theory['asa']:.2f} s",
                     pct(theory["ab"]), f"{theory['occ']:.3f}", ""])
        rows.append(["", "simulated", f"{o.p_wait:.4f} ± {pw_ci:.4f}", f"{o.service_level:.4f} ± {sl_ci:.4f}",
                     f"{o.asa:.2f} ± {asa_ci:.2f} s", pct(o.abandon_rate), f"{total.occupancy['g']:.3f}",
                     f"{o.offered:,}"])
    table(["case", "", "P(wait)", "SL 80/20", "ASA", "abandoned", "occupancy", "calls"], rows)
    n14 = agents_for_service_level(100, 1800, 180, 20, 0.80)
    print(f"Erlang C staffing for 80/20: {n14} agents; P(wait) = {erlang_c(traffic, 14):.4f}. "
          "± = 95 % confidence half-width over the seeds.\n")


# ------------------------------------------------------------------------------------------------------- (b)


def part_b(seeds: int, hours: float) -> dict[str, SimResult]:
    sc = multi_skill(hours)
    staff = sum(g.count for g in sc.agent_groups)
    load = sum(rate * (talk + WRAP) / 3600.0 for _, rate, talk in CALL_TYPES)
    print(f"## (b) multi-skill center, equal staffing: {staff} agents, {load:.1f} erlangs offered, "
          f"{seeds} seeds × {hours:g} h\n")
    for name, rate, talk in CALL_TYPES:
        print(f"- {name}: {rate} calls/h, talk {talk:.0f} s (lognormal, cv 0.9) + wrap {WRAP:.0f} s, "
              f"{rate * (talk + WRAP) / 3600:.2f} erl")
    print("- groups: " + ", ".join(f"{g} ×{n}" for g, n, _ in GROUPS) + " (primary level 9, secondary 5)\n")
    results: dict[str, SimResult] = {}
    rows = []
    for name, router in routers(sc).items():
        t0 = time.perf_counter()
        total, runs = run(sc, router, seeds)
        elapsed = time.perf_counter() - t0
        results[name] = total
        o = total.overall
        per = [f"{total.per_type[c].service_level:.3f}" for c, _, _ in CALL_TYPES]
        worst = min(total.per_type[c].service_level for c, _, _ in CALL_TYPES)
        rows.append([name, *per, f"{worst:.3f}", f"{o.service_level:.3f}", f"{o.asa:.1f} s",
                     pct(o.abandon_rate), f"{elapsed / seeds:.2f} s"])
    table(["router", *[f"SL {c}" for c, _, _ in CALL_TYPES], "worst SL", "SL overall", "ASA", "abandoned",
           "s per run"], rows)
    print(f"Relaxation sensitivity ({DEFAULT_POLICY.name}; queues ask for level 9, lowered to 5 after the wait "
          "below):\n")
    rows = []
    for after in (3.0, 5.0, 10.0, 20.0, 30.0):
        total, _ = run(sc, callcore_router(relaxed_queues(sc, after), DEFAULT_POLICY), seeds)
        o = total.overall
        per = [f"{total.per_type[c].service_level:.3f}" for c, _, _ in CALL_TYPES]
        worst = min(total.per_type[c].service_level for c, _, _ in CALL_TYPES)
        rows.append([f"relax after {after:g} s", *per, f"{worst:.3f}", f"{o.service_level:.3f}", f"{o.asa:.1f} s",
                     pct(o.abandon_rate)])
    table(["callcore", *[f"SL {c}" for c, _, _ in CALL_TYPES], "worst SL", "SL overall", "ASA", "abandoned"], rows)
    base = results["app_queue_like (baseline)"].overall
    naive = results["naive_fifo (baseline)"].overall
    rows = []
    for name, total in results.items():
        o = total.overall
        rows.append([name, f"{o.service_level / base.service_level:.3f}", f"{o.asa / base.asa:.2f}",
                     f"{o.abandon_rate / base.abandon_rate:.2f}", f"{o.service_level / naive.service_level:.3f}",
                     f"{o.asa / naive.asa:.2f}", f"{o.abandon_rate / naive.abandon_rate:.2f}"])
    table(["router", "SL ÷ app_queue", "ASA ÷ app_queue", "aband. ÷ app_queue", "SL ÷ naive", "ASA ÷ naive",
           "aband. ÷ naive"], rows)
    return results


# ------------------------------------------------------------------------------------------------------- (c)


def proportional(total: int) -> dict[str, int]:
    """Head counts per group for ``total`` agents, in the proportions of GROUPS (largest remainder)."""
    base = sum(n for _, n, _ in GROUPS)
    exact = {g: total * n / base for g, n, _ in GROUPS}
    counts = {g: math.floor(x) for g, x in exact.items()}
    left = total - sum(counts.values())
    for g in sorted(exact, key=lambda g: (-(exact[g] - counts[g]), g))[:left]:
        counts[g] += 1
    return counts


def meets(total: SimResult) -> bool:
    return all(st.service_level >= SL_GOAL for st in total.per_type.values())


def part_c(seeds: int, hours: float) -> None:
    load = sum(rate * (talk + WRAP) / 3600.0 for _, rate, talk in CALL_TYPES)
    calls = sum(rate for _, rate, _ in CALL_TYPES)
    pooled = agents_for_service_level(calls, 3600, load * 3600 / calls, TARGET, SL_GOAL)
    print(f"## (c) staffing for 80/20 on every call type (skill mix fixed in proportion, {seeds} seeds × "
          f"{hours:g} h)\n")
    aht_all = load * 3600 / calls
    pooled_a = math.floor(load) + 1
    while erlang_a(calls / 3600, 1 / aht_all, pooled_a, 120.0, TARGET).service_level < SL_GOAL:
        pooled_a += 1
    print(f"Fully pooled Erlang C bound: {load:.2f} erl, {calls} calls/h, AHT {aht_all:.0f} s → "
          f"{pooled} agents (no abandonment; every agent takes every call). For reference, the pooled Erlang A "
          f"figure with the same exponential patience (mean 120 s) is {pooled_a} agents, but at "
          f"{pct(erlang_a(calls / 3600, 1 / aht_all, pooled_a, 120.0, TARGET).p_abandon)} abandonment.\n")
    rows = []
    for name in routers(multi_skill(hours)):
        n = math.floor(load) + 1
        while True:
            sc = multi_skill(hours, proportional(n))
            total, _ = run(sc, routers(sc)[name], seeds)
            if meets(total):
                break
            n += 1
        worst = min(st.service_level for st in total.per_type.values())
        rows.append([name, str(n), f"{n / pooled:.3f}", f"{worst:.3f}", pct(total.overall.abandon_rate)])
    table(["router", "min staff", "÷ pooled Erlang C", "worst SL there", "abandoned there"], rows)
    print("Goal for callcore's router: ≤ 1.05 × the pooled bound.\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--quick", action="store_true", help="fewer seeds and hours (a smoke test)")
    args = ap.parse_args()
    seeds, hours = (3, 4.0) if args.quick else (args.seeds, args.hours)
    t0 = time.perf_counter()
    part_a(args.quick)
    part_b(seeds, hours)
    part_c(seeds, hours)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
